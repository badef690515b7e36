"""Rebuild the deadline projection: replay tthc.case-events from offset 0 into a fresh collection.

    python -m services.deadline.rebuild --into cases_rebuilt

The same fold over the same events gives the same documents (a test compares them). A replay
publishes no derived events and dead-letters nothing again. The timers are rebuilt beside it
(`<into>_timers`) without their marks: transitions already published keep their ids, so re-arming
them publishes nothing new downstream.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer

from services.deadline.context import DeadlineContext, ensure_case_indexes
from shared.kafka import topic_partitions
from shared.settings import Settings, get_settings


async def rebuild(settings: Settings, into: str, batch: int = 2000) -> dict[str, float]:
    context = DeadlineContext(settings, collection=into, replay=True)
    context.documents.hold()  # the only writer of the fresh collection
    await context.cases.drop()
    await context.timers.drop()
    await ensure_case_indexes(context.cases, context.timers)
    # the registry as the services hold it (the seed and the registry topic): a dissolution put
    # through the admin route hands cases over in the rebuild as in the live projection
    context.follower.start()
    await context.follower.wait_caught_up(settings.registry_catch_up_s)
    topic = settings.case_events_topic
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    started, applied = time.perf_counter(), 0
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while True:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                break
            records = [r for rs in (await consumer.getmany(timeout_ms=500, max_records=batch)).values() for r in rs]
            if records:
                applied += (await context.projection.apply(records)).applied
    finally:
        await consumer.stop()
        await context.follower.stop()
        context.mongo.close()
    return {"events_applied": applied, "seconds": round(time.perf_counter() - started, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--into", default="cases_rebuilt", help="collection to (re)create")
    args = parser.parse_args()
    print(asyncio.run(rebuild(get_settings(), args.into)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
