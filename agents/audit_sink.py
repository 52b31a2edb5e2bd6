"""The audit stage's consumer: every topic's records into ClickHouse, a batch at a time.

Not a faust agent. faust hands a stream one event at a time, through its conductor, its
channel and an Event object each: on this machine its audit agent took about 12,000 records
a second while it was not flushing, and the stage drained a backlog at about 4,000 events a
second whatever AUDIT_BATCH_ROWS said. aiokafka's getmany hands over whole fetches (290,000
records a second here), and its fetcher keeps reading while a flush runs.

What the sink promises is the agent's: an offset is committed only after its row is stored;
while ClickHouse refuses, the sink waits and retries and holds its offsets (back-pressure, not
loss); nothing escapes the loop. A record read twice (after a rebalance, a restart, a commit
that failed) is skipped by the writer, which knows the last offset stored per partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from store.exceptions import StoreError
from store.writer import EventRecord, gc_paused

log = logging.getLogger("jax.audit")

Key = tuple[str, int]  # (logical topic, partition), as the writer keys its buffers


class Consumer(Protocol):
    """What the sink uses of aiokafka's AIOKafkaConsumer (a fake in unit tests)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def subscribe(self, topics: Sequence[str], listener: ConsumerRebalanceListener) -> None: ...
    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]: ...
    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...


class AuditSink:
    """Consume `topics` (physical names) into `writer`; `logical` maps a physical topic name
    to the one stored. `make_consumer()` returns a consumer not yet started."""

    def __init__(self, writer: Any, make_consumer: Callable[[], Consumer], topics: Iterable[str],
                 logical: Callable[[str], str], physical: Callable[[str], str],
                 call_seconds: float = 30.0, max_wait: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.writer = writer
        self._make = make_consumer
        self.topics = sorted(topics)
        self._logical = logical
        self._physical = physical
        self.call_seconds = call_seconds  # commit, start and stop of the consumer
        self.max_wait = max_wait  # longest pause between two tries of a refused flush
        self._clock = clock
        self.consumer: Consumer | None = None
        self.committed: dict[TopicPartition, int] = {}  # next offset to read, as committed
        self._stored: dict[TopicPartition, int] = {}  # next offset to read, as stored
        self._lock = asyncio.Lock()  # one store-and-commit at a time (the loop, a rebalance)
        self._flushing: asyncio.Task[None] | None = None  # the batch being stored, if any
        self._fresh = 0  # rows added since the last flush began
        self._fresh_since = 0.0  # when the first of them was added (clock)
        self._stopping = asyncio.Event()
        self._finished: asyncio.Event | None = None  # made when run() starts, set at its end

    async def run(self) -> None:
        """Consume until stop() (or cancellation). On stop, what is buffered is stored (within
        call_seconds) and committed; on cancellation, what is already stored is committed."""
        finished = self._finished = asyncio.Event()
        try:
            consumer = self.consumer = self._make()
            consumer.subscribe(self.topics, listener=_Listener(self))
            await asyncio.wait_for(consumer.start(), self.call_seconds)
            try:
                while not self._stopping.is_set():
                    await self.step()
                await asyncio.wait_for(self._last(), self.call_seconds)
            except TimeoutError:
                log.warning("audit: the buffered rows could not be stored before the stop; "
                            "they are read again at the next start")
            finally:
                if self._flushing is not None:
                    self._flushing.cancel()
                try:
                    await asyncio.shield(self._commit())
                finally:
                    await asyncio.wait_for(consumer.stop(), self.call_seconds)
        finally:
            finished.set()

    async def _last(self) -> None:
        """On stop: the batch being stored, then what is left."""
        await self.settle()
        await self._store_and_commit()

    def stop(self) -> None:
        self._stopping.set()

    async def close(self, within: float) -> None:
        """stop(), then wait up to `within` seconds for run() to store, commit and leave."""
        self.stop()
        if self._finished is None:  # never started
            return
        try:
            await asyncio.wait_for(self._finished.wait(), within)
        except TimeoutError:
            log.warning("audit: the sink did not stop within %gs", within)

    async def step(self) -> None:
        """Start storing the batch if it is full or its oldest row old enough (one batch is
        stored while the next is read and decoded; a third waits for the first), then take
        what has arrived, waiting no longer than the batch window has left. Never raises but
        for cancellation and a bug: a bad record is the writer's to record, a refused flush
        is retried, a failed read is tried again."""
        assert self.consumer is not None
        writer, now = self.writer, self._clock()
        due = self._fresh >= writer.max_batch_rows or (
            self._fresh > 0 and now - self._fresh_since >= writer.max_batch_seconds)
        if self._flushing is not None and (due or self._flushing.done()):
            await self.settle()  # back-pressure when due: one batch stored at a time
        if due:
            self._start_flush()
        room = max(1, writer.max_batch_rows - self._fresh)
        wait = writer.max_batch_seconds
        if self._fresh:
            wait = max(0.0, self._fresh_since + writer.max_batch_seconds - now)
        # aiokafka makes an object per record, tens of thousands at a time, alive until the
        # writer has them: the cyclic collector they set off took 15% of the stage (py-spy)
        failed = False
        with gc_paused():
            try:
                fetched = await self.consumer.getmany(timeout_ms=round(wait * 1000),
                                                      max_records=room)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the fetcher reconnects by itself: say so, and go on
                log.warning("audit: reading Kafka failed (%r); trying again", exc)
                fetched, failed = {}, True
            if fetched:
                if not self._fresh:
                    self._fresh_since = self._clock()
                before = writer.buffered_rows
                writer.add_many(self._records(fetched))
                self._fresh += max(0, writer.buffered_rows - before)
                fetched.clear()  # the records go now, before the collector is back
        if failed:
            await asyncio.sleep(0.5)

    def _start_flush(self) -> None:
        """Store what is buffered now: the writer takes its marks when flush() is called, so
        rows added while it runs wait for the next flush."""
        first = self.writer.flush()
        self._fresh = 0
        self._flushing = asyncio.get_running_loop().create_task(self._store_and_commit(first))

    async def settle(self) -> None:
        """Wait for the batch being stored, if any (a bug in it is raised here)."""
        flushing, self._flushing = self._flushing, None
        if flushing is not None:
            await flushing

    async def _store_and_commit(self, first: Any = None,
                                only: set[TopicPartition] | None = None) -> None:
        """Store everything buffered (beginning with the flush `first`, already called) and
        commit; `only`: those partitions."""
        try:
            async with self._lock:
                if first is not None or self.writer.buffered_rows:
                    await self._store(first)
                    first = None
                await self._commit(only)
        finally:
            if first is not None:  # cancelled before it ran: nothing of it happened
                first.close()

    def _records(self, fetched: dict[TopicPartition, list[Any]]) -> Iterable[EventRecord]:
        for tp, messages in fetched.items():
            topic = self._logical(tp.topic)
            for m in messages:
                yield EventRecord(topic=topic, partition=tp.partition, offset=m.offset,
                                  key=m.key, value=m.value or b"", timestamp=m.timestamp)

    async def _store(self, first: Any = None) -> None:
        """Flush until everything buffered is stored (`first`: a flush already called): while
        ClickHouse refuses, wait longer each time (up to max_wait) and try again, holding the
        offsets."""
        delay = 0.5
        while True:
            attempt, first = (first if first is not None else self.writer.flush()), None
            try:
                self._note(await attempt)
                return
            except StoreError as exc:
                self._note(getattr(exc, "stored", None) or {})
                if getattr(exc, "transient", False):
                    log.warning("audit: ClickHouse insert failed (%s); retrying in %.1fs",
                                exc, delay)
                else:
                    log.error("audit: ClickHouse refuses the batch for a reason no retry fixes "
                              "(%s); holding offsets, retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_wait)

    def _note(self, stored: dict[Key, int]) -> None:
        for (topic, partition), offset in stored.items():
            tp = TopicPartition(self._physical(topic), partition)
            self._stored[tp] = max(self._stored.get(tp, 0), offset + 1)

    async def _commit(self, only: Iterable[TopicPartition] | None = None) -> None:
        """Commit the stored offsets of the partitions this consumer holds. A failed commit
        is not a loss: those records are read again and skipped by the writer."""
        consumer = self.consumer
        if consumer is None:
            return
        held = consumer.assignment() if only is None else set(only)
        due = {tp: OffsetAndMetadata(n, "") for tp, n in self._stored.items()
               if tp in held and self.committed.get(tp) != n}
        if not due:
            return
        try:
            await asyncio.wait_for(consumer.commit(due), self.call_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("audit: committing %d partition(s) failed (%r); their stored records "
                        "are read again and skipped", len(due), exc)
            return
        self.committed.update({tp: meta.offset for tp, meta in due.items()})

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Before partitions go to another worker: store what is buffered and commit it, so
        the new owner starts after it. Bounded: a store that stays down leaves the rows to be
        read again by the new owner."""
        async def store_and_commit() -> None:
            if self._flushing is not None:  # its outcome is the loop's to see
                await asyncio.wait([self._flushing])
            self._fresh = 0
            await self._store_and_commit(only=partitions)

        try:
            await asyncio.wait_for(store_and_commit(), self.call_seconds)
        except TimeoutError:
            log.warning("audit: could not store and commit %d partition(s) before a "
                        "rebalance within %gs; their new owner reads them again",
                        len(partitions), self.call_seconds)

    def assigned(self, partitions: set[TopicPartition]) -> None:
        """Another audit worker may have stored these partitions meanwhile: the writer reads
        their stored offsets again before adding."""
        self.writer.forget([(self._logical(tp.topic), tp.partition) for tp in partitions])
        for tp in partitions:
            self.committed.pop(tp, None)

    def lag(self) -> list[tuple[str, int, int]]:
        """(logical topic, partition, highwater - committed) for each partition held."""
        consumer = self.consumer
        if consumer is None:
            return []
        out = []
        for tp in sorted(consumer.assignment()):
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = self.committed.get(tp, self._stored.get(tp, 0))
            out.append((self._logical(tp.topic), tp.partition, max(0, int(high) - done)))
        return out


class _Listener(ConsumerRebalanceListener):
    def __init__(self, sink: AuditSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.sink.revoked(set(revoked))
        except Exception:  # a rebalance must go on
            log.exception("audit: storing before a rebalance failed")

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.sink.assigned(set(assigned))
