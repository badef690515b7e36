"""Rebuild the metrics projection from the log into a new generation and switch to it (ADR 0020).

    python -m services.metrics.rebuild                # the next generation, then the switch
    python -m services.metrics.rebuild --no-switch    # built and caught up, the pointer left as it is

tthc.case-events is replayed from offset 0 into the next generation's facts and aggregate buckets
(`facts_g<n>`, `agg_*_g<n>`, `meta_g<n>`), each batch's facts and bucket deltas in one transaction
as live, while the service keeps answering from the live generation, up to where its consumer group
has committed; the offsets reached are committed for the new generation's group and the pointer is
moved. The running service then switches (shared/service.py). Nothing is dead-lettered again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiokafka import ConsumerRecord

from services.metrics.context import MetricsContext
from shared.generations import Progress, commit_offsets, group_named, live_generation_of, replay, switch_to
from shared.settings import Settings, get_settings

SERVICE = "metrics"


async def rebuild_and_switch(
    settings: Settings, switch: bool = True, progress: Progress | None = None
) -> dict[str, float]:
    """The next generation built from the log; with `switch`, the pointer moved to it."""
    progress = progress or Progress(report=lambda line: print(line, flush=True))
    live = await live_generation_of(settings, SERVICE)
    following = group_named(MetricsContext.group_id, live)  # the live generation's consumer group
    context = MetricsContext(settings, generation=live + 1)
    for collection in (context.collection, context.meta, context.quarantine.marks, *context.aggregates.values()):
        await collection.drop()
    await context.ensure_indexes()  # the live generation's, the store profile's list indexes included
    await context.backfill()  # nothing to fill: marks the fresh buckets as of the current layout
    context.documents.hold()  # the only writer of the fresh collections
    context.follower.start()
    await context.follower.wait_caught_up(settings.registry_catch_up_s)

    async def apply(records: list[ConsumerRecord]) -> int:
        return (await context.quiet_projection.apply(records)).applied

    try:
        offsets = await replay(settings, apply, progress, following)
        await commit_offsets(settings.kafka_bootstrap, context.group_id, settings.case_events_topic, offsets)
        if switch:
            await switch_to(context.db, SERVICE, context.generation, context.group_id, following)
    finally:
        await context.follower.stop()
        await context.mongo.close()
    progress.report(f"metrics generation {context.generation} built{' and switched to' if switch else ''}")
    return {**progress.summary(), "generation": context.generation}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-switch", action="store_true", help="build the next generation, leave the pointer")
    args = parser.parse_args()
    print(asyncio.run(rebuild_and_switch(get_settings(), switch=not args.no_switch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
