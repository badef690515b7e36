"""The running intake: the shared service context plus its rate limiter, door bounds, memory of
recent event ids and pull-mode pollers; it is the `IntakePorts` the use cases (submission.py) need."""

from __future__ import annotations

from fastapi import Request

from services.intake.dedupe import RecentEventIds
from services.intake.door import DoorBounds
from services.intake.owner_turns import OwnerTurns
from services.intake.pull import Poller, PullSource
from shared.limits import RateLimiter
from shared.service import ServiceContext
from shared.settings import Settings


class IntakeContext(ServiceContext):
    service = "intake"
    rate_limit_in_principal = False  # submissions are charged in events.authorized_submission

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self.recent_ids = RecentEventIds(settings.dedupe_memory)
        self.owner_turns = OwnerTurns()  # requests of this process write a case-owner bucket in turn
        self.door = DoorBounds(settings.earliest_event)  # bounds at the door (contract v1.1)
        self.pollers: list[Poller] = []

    async def start(self) -> None:
        await super().start()
        self.pollers = [Poller(self, source) for source in PullSource.load_all(self.settings.pull_config)]
        for poller in self.pollers:
            poller.start()

    async def stop(self) -> None:
        for poller in self.pollers:
            await poller.stop()
        await super().stop()


def get_context(request: Request) -> IntakeContext:
    context: IntakeContext = request.app.state.context
    return context
