"""An in-memory copy (shared/sole_writer.py) whose load waits until the test releases it."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Gauge

from shared.sole_writer import SoleWriterCopy


class HeldCopy(SoleWriterCopy):
    name = "held"

    def __init__(self) -> None:
        super().__init__(Gauge("held_usable", "test", registry=CollectorRegistry()))
        self.release = asyncio.Event()

    async def load(self) -> None:
        await self.release.wait()
