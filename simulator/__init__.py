"""A synthetic province: cases, their events as one-stop systems send them, and its own oracle."""
