"""The signed go-live decisions, read from `rollout` for the live guard (the sizing stage).

Like the trading gate (agents.control.TradingGate): read from the beginning before the stage
consumes anything, then tailed, so a GO_LIVE or RAMP takes effect on every worker as soon as it
arrives. Unlike the gate it does not stop the worker when the topic cannot be read: paper
accounts keep trading, and a live account is refused (LIVE_NOT_GRANTED) until the decisions
are read to the end and while the topic goes unread for `stale_after`; it keeps trying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.background import cancel_and_wait
from agents.context import utc_now
from agents.decisions.rollout import LiveGrant, RolloutBook, RolloutThresholds
from agents.decisions.signatures import KeyRing
from agents.kafka_auth import NO_AUTH, KafkaAuth
from agents.readback import follow, partitions_of, read_to

log = logging.getLogger(__name__)


class RolloutReader:
    """Each live account's grant, from the signed decisions on `rollout` (agents.decisions.
    rollout.RolloutBook); implements agents.decisions.rollout.LiveGrants."""

    def __init__(self, bootstrap: str, topic: Callable[[str], str], keyring: KeyRing,
                 thresholds: RolloutThresholds, timeout: float = 30.0,
                 stale_after: float = 10.0, retry_seconds: float = 5.0,
                 auth: KafkaAuth = NO_AUTH, clock: Callable[[], datetime] = utc_now) -> None:
        self.bootstrap = bootstrap
        self.auth = auth
        self.topic = topic("rollout")
        self.timeout = timeout
        self.stale_after = stale_after
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.book = RolloutBook(keyring, thresholds)
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()  # set on every decision applied (tests wait on it)
        self.error: str | None = None  # why the last attempt to read failed
        self._consumer: AIOKafkaConsumer | None = None
        self._parts: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._confirmed = 0.0

    async def start(self) -> None:
        """One attempt to read every decision now; on failure keep trying in the background
        (live refused meanwhile), never fail the worker."""
        try:
            await self._catch_up()
        except Exception as exc:
            self._failed(exc)
            self._task = asyncio.create_task(self._retry(), name="jax.rollout-retry")
            return
        self._task = asyncio.create_task(self._tail(), name="jax.rollout")

    def _failed(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        log.error("rollout: %s unreadable (%s): live accounts will not trade until it is read",
                  self.topic, self.error)

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(self.retry_seconds)
            try:
                await self._catch_up()
            except Exception as exc:
                self._failed(exc)
                continue
            await self._tail()
            return

    async def _catch_up(self) -> None:
        await self._close_consumer()
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_wait_ms=200, **self.auth.aiokafka_kwargs())
        await asyncio.wait_for(consumer.start(), self.timeout)
        self._consumer = consumer
        async with asyncio.timeout(self.timeout):
            parts = await partitions_of(self.bootstrap, self.topic, self.auth)
            if not parts:
                raise RuntimeError(f"topic {self.topic} does not exist: run `jax-exec topics`")
            self._parts = [TopicPartition(self.topic, p) for p in parts]
            consumer.assign(self._parts)
            await consumer.seek_to_beginning(*self._parts)
            ends = await consumer.end_offsets(self._parts)
            self.book = RolloutBook(self.book.keyring, self.book.thresholds)
            read = await read_to(consumer, {tp: e for tp, e in ends.items() if e > 0},
                                 self._feed)
        self._confirmed = time.time()
        self.error = None
        log.info("rollout: %d decisions read; live grants: %s", read, ", ".join(
            f"{g.account_id} x{g.ramp_factor} cap {g.max_order_notional}"
            for g in self.book.grants.values()) or "none")
        self.ready.set()

    async def _tail(self) -> None:
        assert self._consumer is not None
        await follow(self._consumer, self._feed, "rollout")

    def _feed(self, topic: str, raw: bytes | None) -> int:
        if raw is None:
            return 0
        before = dict(self.book.grants)
        refusal = self.book.on_record(raw, self.clock())
        if refusal is not None:
            log.warning("rollout: decision ignored: %s %s", refusal.code, refusal.message)
            return 0
        for grant in (g for a, g in self.book.grants.items() if before.get(a) != g):
            log.warning("rollout: live grant %s: factor %s, cap %s (decision %s by %s)",
                        grant.account_id, grant.ramp_factor, grant.max_order_notional,
                        grant.event_id, grant.decided_by)
        self.changed.set()
        return 1

    def _last_read(self) -> float:
        last = self._confirmed
        if self._consumer is not None:
            for tp in self._parts:
                polled = self._consumer.last_poll_timestamp(tp)
                if polled is not None:
                    last = max(last, polled / 1000)
        return last

    def unavailable(self) -> str | None:
        """Why the grants are not known now; None while they are."""
        if not self.ready.is_set():
            why = f": {self.error}" if self.error else ""
            return f"{self.topic} has not been read to its end{why}"
        age = time.time() - self._last_read()
        if age > self.stale_after:
            return f"{self.topic} unread for {age:.1f}s (limit {self.stale_after:g}s)"
        return None

    def grant(self, account_id: str) -> LiveGrant | None:
        return self.book.grant(account_id)

    async def _close_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._close_consumer()
