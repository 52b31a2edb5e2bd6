"""Feeds the deciding stages' memory from Kafka: the signal ledger (compacted, read whole),
`order-intents` and `rejections` from `ttl` ago, every partition, and then as they arrive (no
consumer group: every process sees every decision, whoever made it)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from agents.decisions.ledger import SignalLedger
from agents.decisions.reservations import ReservationBook
from agents.kafka_auth import NO_AUTH, KafkaAuth
from agents.readback import follow, partitions_of, read_to
from schemas.events import OrderIntent, Rejection, SignalRecord

log = logging.getLogger(__name__)


class DecisionMemory:
    """A background tail of the decision topics into a ReservationBook and a SignalLedger;
    `start()` returns once everything that was on the topics at start has been read (decide
    only after that)."""

    def __init__(self, bootstrap: str, book: ReservationBook, ledger: SignalLedger,
                 topic: Callable[[str], str], timeout: float = 30.0,
                 auth: KafkaAuth = NO_AUTH) -> None:
        self.bootstrap = bootstrap
        self.auth = auth
        self.book = book
        self.ledger = ledger
        self.intents, self.rejections = topic("order-intents"), topic("rejections")
        self.ledger_topic = topic("signal-ledger")
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Assign every partition (the ledger from its beginning, decisions from `ttl` ago)
        and read up to the current end."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    **self.auth.aiokafka_kwargs())
        await asyncio.wait_for(consumer.start(), self.timeout)
        self._consumer = consumer
        parts = [TopicPartition(t, p) for t in (self.intents, self.rejections, self.ledger_topic)
                 for p in await partitions_of(self.bootstrap, t, self.auth)]
        consumer.assign(parts)
        since_ms = int((time.time() - self.book.ttl.total_seconds()) * 1000)
        recent = [tp for tp in parts if tp.topic != self.ledger_topic]
        found = await consumer.offsets_for_times(dict.fromkeys(recent, since_ms))
        ends = await consumer.end_offsets(parts)
        starts = {tp: 0 for tp in parts}
        for tp in recent:
            hit = found.get(tp)
            starts[tp] = hit.offset if hit is not None else ends[tp]
        for tp in parts:
            consumer.seek(tp, starts[tp])
        remaining = {tp: end for tp, end in ends.items() if end > starts[tp]}
        read = await read_to(consumer, remaining, self._feed)
        log.info("decision memory: %d records read back, %d reservations open, %d signals",
                 read, len(self.book.intents), len(self.ledger.records))
        self._task = asyncio.create_task(self._tail(), name="jax.decision-memory")

    async def _tail(self) -> None:
        assert self._consumer is not None
        await follow(self._consumer, self._feed, "decision memory")

    def _feed(self, topic: str, raw: bytes | None) -> int:
        try:
            if topic == self.intents:
                self.book.on_intent(OrderIntent.model_validate_json(raw or b""))
            elif topic == self.rejections:
                self.book.on_rejection(Rejection.model_validate_json(raw or b""))
            else:
                self.ledger.on_record(SignalRecord.model_validate_json(raw or b""))
        except (ValidationError, ValueError):
            return 0  # not ours to judge: the stage that consumes it dead-letters it
        return 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
