"""Reading a topic back from the beginning ends at the topic's end as it was, on the real
broker, whatever holds the last offsets: a transaction's commit marker has an offset and no
record, and a read that waited for a record at end - 1 waited for good."""

from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.readback import read_all
from tests.integration.harness import BOOTSTRAP


async def _topic(partitions: int) -> str:
    name = f"t{uuid.uuid4().hex[:10]}-readback"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def test_a_topic_written_in_transactions_is_read_to_its_end() -> None:
    topic = await _topic(3)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP,
                                transactional_id=f"readback-{uuid.uuid4().hex}")
    await producer.start()
    try:
        for first in (0, 5):  # two transactions; partition 2 stays empty
            async with producer.transaction():
                for n in range(first, first + 5):
                    for partition in (0, 1):
                        await producer.send(topic, json.dumps({"n": n}).encode(),
                                            partition=partition)
    finally:
        await producer.stop()
    seen: list[dict[str, int]] = []
    # the bound only keeps a regression from hanging the run; read_all itself returns
    read = await asyncio.wait_for(read_all(BOOTSTRAP, topic, seen.append), 120)
    assert read == 20
    assert sorted(obj["n"] for obj in seen) == sorted(list(range(10)) * 2)


async def test_an_empty_topic_reads_nothing() -> None:
    topic = await _topic(2)
    assert await asyncio.wait_for(read_all(BOOTSTRAP, topic, lambda obj: None), 120) == 0
