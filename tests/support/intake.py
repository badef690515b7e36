"""Posting as a one-stop system does: resend until the intake acknowledges."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import AUTH


async def post_until_acknowledged(client: httpx.AsyncClient, url: str, body: Any) -> list[dict[str, Any]]:
    """Resend until the intake says 202 (bounded); a 503 or a refused connection means try again."""
    for _ in range(120):
        try:
            response = await client.post(url, json=body, headers=AUTH)
            if response.status_code == 202:
                accepted: list[dict[str, Any]] = response.json()["accepted"]
                return accepted
            assert response.status_code == 503, response.text
        except httpx.TransportError:
            pass  # the intake is down: try again
        await asyncio.sleep(0.5)
    raise AssertionError("the intake never acknowledged the batch")
