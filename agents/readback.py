"""Read a topic back from the beginning (no consumer group): how a stateless stage
recovers what it already published after a restart."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from agents.kafka_auth import NO_AUTH, KafkaAuth

log = logging.getLogger(__name__)


async def read_all(bootstrap: str, topic: str, visit: Callable[[dict[str, Any]], None],
                   auth: KafkaAuth = NO_AUTH) -> int:
    """Call visit(obj) for every JSON object on the topic now; return how many were read."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None,
                                **auth.aiokafka_kwargs())
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic, auth)]
        if not parts:
            return 0
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        remaining = {tp: off for tp, off in end.items() if off > 0}
        count = 0
        while remaining:
            batches = await consumer.getmany(*remaining.keys(), timeout_ms=2000)
            for tp, messages in batches.items():
                for msg in messages:
                    count += _visit(msg.value, visit)
                if messages and messages[-1].offset + 1 >= remaining[tp]:
                    del remaining[tp]
        return count
    finally:
        await consumer.stop()


async def partitions_of(bootstrap: str, topic: str, auth: KafkaAuth = NO_AUTH) -> list[int]:
    """The topic's partitions ([] when it does not exist). A broker of a cluster that goes
    away mid-request (its connection closed) is not an answer: asked again, within 30 s."""
    async for attempt in AsyncRetrying(stop=stop_after_delay(30), reraise=True,
                                       wait=wait_exponential(multiplier=0.2, max=2),
                                       retry=retry_if_exception_type(KafkaConnectionError)):
        with attempt:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **auth.aiokafka_kwargs())
            await admin.start()
            try:
                described = await admin.describe_topics([topic])
            finally:
                await admin.close()
    return sorted(p["partition"] for d in described if d["error_code"] == 0
                  for p in d["partitions"])


def _visit(raw: bytes | None, visit: Callable[[dict[str, Any]], None]) -> int:
    try:
        obj = json.loads(raw or b"")
    except ValueError:
        return 0
    if isinstance(obj, dict):
        visit(obj)
        return 1
    return 0


Feed = Callable[[str, bytes | None], int]  # (topic, raw value) -> records taken


async def read_to(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int],
                  feed: Feed) -> int:
    """Feed every record of the assigned partitions up to `ends` (exclusive; a partition
    already at its end is skipped); how many records the feed took."""
    remaining = dict(ends)
    read = 0
    while remaining:
        batches = await consumer.getmany(*remaining.keys(), timeout_ms=1000)
        for tp, messages in batches.items():
            read += sum(feed(tp.topic, m.value) for m in messages)
            if messages and messages[-1].offset + 1 >= remaining.get(tp, 0):
                remaining.pop(tp, None)
    return read


async def follow(consumer: AIOKafkaConsumer, feed: Feed, what: str) -> None:
    """Feed records as they arrive, for good; a failed read is logged and retried."""
    while True:
        try:
            batches = await consumer.getmany(timeout_ms=500)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: read failed; retrying", what)
            await asyncio.sleep(1.0)
            continue
        for tp, messages in batches.items():
            for msg in messages:
                feed(tp.topic, msg.value)
