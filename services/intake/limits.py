"""The intake's request limits: moved to shared/limits.py (every service uses them); kept importable."""

from __future__ import annotations

from shared.limits import RATE_LIMITED, RateLimiter, request_time_limit

__all__ = ["RATE_LIMITED", "RateLimiter", "request_time_limit"]
