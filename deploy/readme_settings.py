"""Rewrites the README's settings table from shared.settings (`make readme`)."""

from __future__ import annotations

import re

from deploy.local.infra import REPO
from shared.settings import markdown_table


def main() -> None:
    path = REPO / "README.md"
    text = path.read_text(encoding="utf-8")
    updated = re.sub(r"\| variable \| default \| meaning \|\n(?:\|.*\|\n)+", markdown_table() + "\n", text)
    path.write_text(updated, encoding="utf-8")


if __name__ == "__main__":
    main()
