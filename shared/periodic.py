"""A background job that runs every few seconds until stopped, and survives its own errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, interval_s: float, job: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval_s = interval_s
        self.job = job
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, timeout: float = 30) -> None:
        """Graceful: the round in hand finishes first."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.job()
            except Exception as exc:
                log.warning("periodic job failed; retrying", extra={"job": self.name, "error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
