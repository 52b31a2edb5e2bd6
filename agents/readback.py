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
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from agents.kafka_auth import NO_AUTH, KafkaAuth

log = logging.getLogger(__name__)


# Reading back stops, with TimeoutError, when this long passes without a record or a partition
# reaching its end: a broker that stopped answering, never a wait for good.
STALL_SECONDS = 30.0


async def read_all(bootstrap: str, topic: str, visit: Callable[[dict[str, Any]], None],
                   auth: KafkaAuth = NO_AUTH, stall_seconds: float = STALL_SECONDS) -> int:
    """Call visit(obj) for every JSON object on the topic now; return how many were read.
    Raises TimeoutError when the broker stops answering (read_to)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None,
                                **auth.aiokafka_kwargs())
    await asyncio.wait_for(consumer.start(), stall_seconds)
    try:
        parts = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic, auth)]
        if not parts:
            return 0
        consumer.assign(parts)
        await asyncio.wait_for(consumer.seek_to_beginning(*parts), stall_seconds)
        end = await asyncio.wait_for(consumer.end_offsets(parts), stall_seconds)
        return await read_to(consumer, end, lambda _, raw: _visit(raw, visit), stall_seconds)
    finally:
        try:
            await asyncio.wait_for(consumer.stop(), 10)
        except TimeoutError:
            log.warning("%s: the read-back consumer did not stop within 10 s; left", topic)


def _retriable(exc: BaseException) -> bool:
    """A Kafka error that asking again may clear (aiokafka's own mark): a closed connection, a
    node not ready, a request timed out."""
    return isinstance(exc, KafkaError) and exc.retriable


async def partitions_of(bootstrap: str, topic: str, auth: KafkaAuth = NO_AUTH,
                        within: float = 30.0) -> list[int]:
    """The topic's partitions ([] when it does not exist). A broker of a cluster that goes
    away mid-request (its connection closed), or that the client's metadata still names after
    it stopped (NodeNotReadyError: the broker-failure test's SIGTERM case), is not an answer:
    asked again, within `within` seconds."""
    async for attempt in AsyncRetrying(stop=stop_after_delay(within), reraise=True,
                                       wait=wait_exponential(multiplier=0.2, max=2),
                                       retry=retry_if_exception(_retriable)):
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
                  feed: Feed, stall_seconds: float = STALL_SECONDS) -> int:
    """Feed every record of the assigned partitions up to `ends` (exclusive; a partition
    already at its end is skipped); how many records the feed took.

    A partition is read once the consumer's position reaches its end, not once a record at
    end - 1 is seen: the last offsets may hold no record (a transaction's commit marker has
    an offset of its own), and waiting for one waited for good. Raises TimeoutError after
    `stall_seconds` without a record or a partition read to its end."""
    remaining = dict(ends)
    read = 0
    clock = asyncio.get_running_loop().time
    progress = clock()
    while remaining:
        batches = await consumer.getmany(*remaining.keys(), timeout_ms=1000)
        for tp, messages in batches.items():
            read += sum(feed(tp.topic, m.value) for m in messages)
            progress = clock() if messages else progress
        for tp, end in list(remaining.items()):
            if await asyncio.wait_for(consumer.position(tp), stall_seconds) >= end:
                del remaining[tp]
                progress = clock()
        if remaining and clock() - progress > stall_seconds:
            raise TimeoutError(
                f"reading back {', '.join(sorted({tp.topic for tp in remaining}))}: no record "
                f"for {stall_seconds:.0f} s with {len(remaining)} partitions short of their end"
            )
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
