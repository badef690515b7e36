"""Rebuild the deadline projection from the log into a new generation and switch to it (ADR 0020).

    python -m services.deadline.rebuild                # the next generation, then the switch
    python -m services.deadline.rebuild --no-switch    # built and caught up, the pointer left as it is
    python -m services.deadline.rebuild --into cases_rebuilt   # a check: a collection beside the live one

After a rule changes every case is judged again: tthc.case-events is replayed from offset 0 into the
next generation's collections (`cases_g<n>`, its timers and quarantine) while the service keeps
answering from the live one, up to where the live consumer group has committed; the offsets reached
are committed for the new generation's consumer group and the pointer is moved. The running service
then switches (shared/service.py). A replay publishes no derived events and dead-letters nothing
again; the timers are rebuilt without their marks, which the service copies from the previous
generation when it switches, so a transition already published is not published again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiokafka import ConsumerRecord

from services.deadline.context import DeadlineContext, ensure_case_indexes
from shared.generations import Progress, commit_offsets, group_named, live_generation_of, replay, switch_to
from shared.settings import Settings, get_settings

SERVICE = "deadline"


async def rebuild(settings: Settings, into: str) -> dict[str, float]:
    """A check: the projection replayed to the log's end into `into` (and its timers), no switch."""
    context = DeadlineContext(settings, collection=into, replay=True)
    progress = Progress(report=lambda _: None)
    try:
        await _build(context, None, progress)
    finally:
        await context.mongo.close()
    return progress.summary()


async def rebuild_and_switch(
    settings: Settings, switch: bool = True, progress: Progress | None = None
) -> dict[str, float]:
    """The next generation built from the log; with `switch`, the pointer moved to it."""
    progress = progress or Progress(report=lambda line: print(line, flush=True))
    live = await live_generation_of(settings, SERVICE)
    following = group_named(DeadlineContext.group_id, live)  # the live generation's consumer group
    context = DeadlineContext(settings, replay=True, generation=live + 1)
    try:
        offsets = await _build(context, following, progress)
        await commit_offsets(settings.kafka_bootstrap, context.group_id, settings.case_events_topic, offsets)
        if switch:
            await switch_to(context.db, SERVICE, context.generation, context.group_id, following)
    finally:
        await context.mongo.close()
    progress.report(f"deadline generation {context.generation} built{' and switched to' if switch else ''}")
    return {**progress.summary(), "generation": context.generation}


async def _build(context: DeadlineContext, follow: str | None, progress: Progress) -> dict[int, int]:
    """The context's fresh collections filled from the log, up to `follow`'s offsets or the end;
    the offsets reached."""
    context.documents.hold()  # the only writer of the fresh collections
    await context.cases.drop()
    await context.timers.drop()
    await context.quarantine.marks.drop()
    await ensure_case_indexes(context.cases, context.timers)
    # the registry as the services hold it (the seed and the registry topic): a dissolution put
    # through the admin route hands cases over in the rebuild as in the live projection
    context.follower.start()
    await context.follower.wait_caught_up(context.settings.registry_catch_up_s)

    async def apply(records: list[ConsumerRecord]) -> int:
        return (await context.projection.apply(records)).applied

    try:
        return await replay(context.settings, apply, progress, follow)
    finally:
        await context.follower.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--into", help="a check: replay into this collection beside the live one, no switch")
    parser.add_argument("--no-switch", action="store_true", help="build the next generation, leave the pointer")
    args = parser.parse_args()
    if args.into:
        print(asyncio.run(rebuild(get_settings(), args.into)))
    else:
        print(asyncio.run(rebuild_and_switch(get_settings(), switch=not args.no_switch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
