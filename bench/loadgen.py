"""Open-loop load and what comes back: send times are fixed before the first send, so a slow
pipeline cannot slow the load (no coordinated omission); every latency is measured from the
message's SCHEDULED send time to the moment the benchmark's own consumer sees the outcome."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

NOT_YET_ACKED = {"pending_submit", "submitted"}


def coid_of(correlation_id: str) -> str:
    return f"jx-{uuid.UUID(correlation_id).hex}"


@dataclass
class Seen:
    """First sightings per client order id (consumer wall-clock time, seconds)."""

    ledger: dict[str, float] = field(default_factory=dict)
    intent: dict[str, float] = field(default_factory=dict)
    ack: dict[str, float] = field(default_factory=dict)
    ack_venue: dict[str, float] = field(default_factory=dict)  # the event's occurred_at
    fill: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    produced: dict[str, float] = field(default_factory=dict)  # event id -> Kafka timestamp
    sizes: dict[str, int] = field(default_factory=dict)  # topic -> a record's size
    alerts: dict[str, int] = field(default_factory=dict)  # alert kind -> how many


def _iso_seconds(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def note(seen: Seen, topic: str, value: bytes, timestamp_ms: int, now: float) -> None:
    """Record what one output record says about its order."""
    try:
        event = json.loads(value)
        if topic == "alerts":
            kind = str(event.get("kind"))
            seen.alerts[kind] = seen.alerts.get(kind, 0) + 1
            return
        coid = coid_of(event["correlation_id"])
    except (ValueError, KeyError, TypeError):
        return
    seen.sizes.setdefault(topic, len(value))
    if "event_id" in event and topic in ("orders", "fills"):
        seen.produced.setdefault(event["event_id"], timestamp_ms / 1000)
    if topic == "signal-ledger":
        seen.ledger.setdefault(coid, now)
    elif topic == "order-intents":
        seen.intent.setdefault(coid, now)
    elif topic == "rejections":
        seen.rejected.setdefault(coid, str(event.get("reason_code")))
    elif topic == "orders" and event.get("leg") == "entry":
        if event.get("status") not in NOT_YET_ACKED and coid not in seen.ack:
            seen.ack[coid] = now
            seen.ack_venue[coid] = _iso_seconds(event["occurred_at"])
    elif topic == "fills" and event.get("leg") == "entry":
        seen.fill.setdefault(coid, now)


async def collect(bootstrap: str, prefix: str, topics: Iterable[str], seen: Seen,
                  stop: asyncio.Event, ready: asyncio.Event) -> None:
    """Tail the output topics from their beginning (the prefix is this run's own)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=5)
    await consumer.start()
    try:
        parts = []
        for t in topics:
            ps = consumer.partitions_for_topic(f"{prefix}{t}") or set()
            if not ps:
                await consumer._client.force_metadata_update()
                ps = consumer.partitions_for_topic(f"{prefix}{t}") or set()
            parts += [TopicPartition(f"{prefix}{t}", p) for p in ps]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ready.set()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50, max_records=2000)
            now = time.time()
            for tp, records in batch.items():
                logical = tp.topic.removeprefix(prefix)
                for r in records:
                    note(seen, logical, r.value or b"", r.timestamp, now)
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after t0
    key: bytes
    value: bytes


async def open_loop(producer: AIOKafkaProducer, topic: str, plan: list[Planned], t0: float,
                    on_sent: Callable[[int], None] | None = None) -> float:
    """Send each message at t0 + its offset, never waiting for an answer; the largest lateness
    of the sender itself (seconds), so a reader can see it kept the schedule."""
    futures = []
    late = 0.0
    for i, item in enumerate(plan):
        delay = t0 + item.at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        late = max(late, time.time() - (t0 + item.at))
        futures.append(await producer.send(topic, item.value, key=item.key))
        if on_sent is not None:
            on_sent(i + 1)
    await asyncio.gather(*futures)
    return late


def schedule(rate: float, count: int) -> list[float]:
    """Evenly spaced send offsets (a fixed rate, decided before the first send)."""
    return [i / rate for i in range(count)]


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds (nearest rank), None when there is nothing."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50": round(rank(0.50) * 1000, 2),
            "p95": round(rank(0.95) * 1000, 2), "p99": round(rank(0.99) * 1000, 2),
            "max": round(ordered[-1] * 1000, 2)}


GROWTH_SLACK_S = 0.100  # what a few slow reads near a step's end can add to a quarter's median


def growing(latencies_in_send_order: list[float]) -> bool:
    """Latency that keeps growing over the step: a queue building up. The last quarter's
    median against the first quarter's: more than 1.5x it plus GROWTH_SLACK_S. (A queue that
    builds up grows by the excess rate times the step's length, seconds in a step of seconds
    above capacity; the slack keeps a step far below capacity, whose medians are tens of ms,
    from being failed by a few slow venue reads at its end.)"""
    n = len(latencies_in_send_order)
    if n < 8:
        return False
    q = n // 4
    first = sorted(latencies_in_send_order[:q])[q // 2]
    last = sorted(latencies_in_send_order[-q:])[q // 2]
    return last > 1.5 * first + GROWTH_SLACK_S


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
