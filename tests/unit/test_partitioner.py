"""Our C murmur2 partitioner puts every key where aiokafka's (Kafka's default) partitioner does."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import partition_for


def test_same_partition_as_the_kafka_default_partitioner() -> None:
    rng = random.Random(11)
    reference = DefaultPartitioner()
    keys = [b"", b"000.00.02.H99-261123-0000001", "Hồ sơ đất đai".encode()]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 48))) for _ in range(3000)]
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        assert [partition_for(k, partitions) for k in keys] == [reference(k, partitions, partitions) for k in keys]
