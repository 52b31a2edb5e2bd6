"""The audit sink, over a fake consumer and a fake writer: what it reads goes to the writer
under the logical topic name, an offset is committed only once its row is stored, and
nothing it meets (a refused flush, a failed commit or read, a rebalance) loses a record."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from agents.audit_sink import AuditSink
from store.exceptions import FlushError
from store.writer import EventRecord

PREFIX = "p-"


@dataclass
class Message:
    offset: int
    value: bytes | None = b"{}"
    key: bytes | None = b"k"
    timestamp: int | None = 1_700_000_000_000


@dataclass
class FakeWriter:
    max_batch_rows: int = 3
    max_batch_seconds: float = 0.5
    added: list[EventRecord] = field(default_factory=list)
    stored: list[EventRecord] = field(default_factory=list)
    refuse: list[FlushError] = field(default_factory=list)  # raised by the next flushes
    forgotten: list[tuple[str, int]] = field(default_factory=list)

    @property
    def buffered_rows(self) -> int:
        return len(self.added)

    def add_many(self, records: Any) -> None:
        self.added.extend(records)

    def flush(self) -> Any:
        taken = len(self.added)  # as the writer: its marks are taken when flush() is called

        async def storing() -> dict[tuple[str, int], int]:
            await asyncio.sleep(0)
            if self.refuse:
                raise self.refuse.pop(0)
            last: dict[tuple[str, int], int] = {}
            for r in self.added[:taken]:
                key = (r.topic, r.partition)
                last[key] = max(last.get(key, -1), r.offset)
            self.stored.extend(self.added[:taken])
            del self.added[:taken]
            return last

        return storing()

    def forget(self, keys: list[tuple[str, int]]) -> None:
        self.forgotten.extend(keys)


@dataclass
class FakeConsumer:
    fetches: list[dict[TopicPartition, list[Message]]] = field(default_factory=list)
    held: set[TopicPartition] = field(default_factory=set)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    fail_commits: int = 0
    fail_reads: int = 0
    started: bool = False
    stopped: bool = False
    listener: Any = None
    topics: list[str] = field(default_factory=list)
    waits: list[int] = field(default_factory=list)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.topics, self.listener = list(topics), listener

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Message]]:
        self.waits.append(timeout_ms)
        if self.fail_reads:
            self.fail_reads -= 1
            raise ConnectionError("broker gone")
        await asyncio.sleep(0)
        return self.fetches.pop(0) if self.fetches else {}

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.fail_commits:
            self.fail_commits -= 1
            raise ConnectionError("coordinator moved")
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def assignment(self) -> set[TopicPartition]:
        return set(self.held)

    def highwater(self, partition: TopicPartition) -> int | None:
        return 10 if partition in self.held else None


def tp(topic: str, partition: int = 0) -> TopicPartition:
    return TopicPartition(PREFIX + topic, partition)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sink_of(writer: FakeWriter, consumer: FakeConsumer, clock: Clock | None = None
            ) -> AuditSink:
    sink = AuditSink(writer, lambda: consumer, [PREFIX + "orders", PREFIX + "fills"],
                     logical=lambda t: t.removeprefix(PREFIX), physical=lambda t: PREFIX + t,
                     call_seconds=1.0, max_wait=0.01, clock=clock or Clock())
    sink.consumer = consumer
    return sink


async def flushed(sink: AuditSink) -> None:
    """One step more (a batch due is stored at the start of a step), then its end."""
    await sink.step()
    await sink.settle()


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    sleeps: list[float] = []
    real = asyncio.sleep

    async def fake(seconds: float) -> None:
        sleeps.append(seconds)
        await real(0)

    monkeypatch.setattr("agents.audit_sink.asyncio.sleep", fake)
    return sleeps


async def test_records_reach_the_writer_under_their_logical_topic_and_are_committed_once_stored(
) -> None:
    writer, consumer = FakeWriter(), FakeConsumer(held={tp("orders"), tp("fills", 1)})
    consumer.fetches = [{tp("orders"): [Message(5), Message(6)]}, {tp("fills", 1): [Message(0)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    assert [(r.topic, r.partition, r.offset) for r in writer.added] == [("orders", 0, 5),
                                                                         ("orders", 0, 6)]
    await sink.step()
    await sink.settle()
    assert consumer.commits == []  # full, but not yet stored: nothing committed
    await flushed(sink)
    assert [r.offset for r in writer.stored] == [5, 6, 0]
    assert consumer.commits == [{tp("orders"): 7, tp("fills", 1): 1}]  # the next to read
    record = writer.stored[0]
    assert (record.key, record.value, record.timestamp) == (b"k", b"{}", 1_700_000_000_000)


async def test_the_next_batch_is_read_while_one_is_stored_and_waits_for_it() -> None:
    writer, consumer = FakeWriter(max_batch_rows=2), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(0), Message(1)]},
                        {tp("orders"): [Message(2), Message(3)]},
                        {tp("orders"): [Message(4)]}]
    gate = asyncio.Event()
    flush = writer.flush

    def slow_flush() -> Any:
        inner = flush()

        async def held() -> Any:
            await gate.wait()
            return await inner

        return held()

    writer.flush = slow_flush  # type: ignore[method-assign]
    sink = sink_of(writer, consumer)
    await sink.step()  # reads 0, 1
    await sink.step()  # stores 0, 1 (held) and reads 2, 3 meanwhile
    assert [r.offset for r in writer.added] == [0, 1, 2, 3]
    reading = asyncio.create_task(sink.step())  # 2, 3 due: waits for 0, 1 first
    await asyncio.sleep(0)
    assert not reading.done()
    gate.set()
    await reading
    await sink.settle()
    assert [r.offset for r in writer.stored] == [0, 1, 2, 3]
    assert consumer.commits == [{tp("orders"): 2}, {tp("orders"): 4}]
    assert [r.offset for r in writer.added] == [4]


async def test_an_empty_value_is_stored_as_empty_bytes_not_dropped() -> None:
    writer, consumer = FakeWriter(max_batch_rows=1), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(3, value=None)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    await flushed(sink)
    assert writer.stored[0].value == b""


async def test_a_batch_is_stored_when_its_oldest_row_is_old_enough() -> None:
    clock = Clock()
    writer, consumer = FakeWriter(max_batch_rows=100), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(0)]}]
    sink = sink_of(writer, consumer, clock)
    await sink.step()
    assert consumer.waits == [500]  # nothing buffered: the whole window
    clock.now += 0.4
    await flushed(sink)
    assert writer.stored == []
    assert consumer.waits[-1] == 100  # waits only what the window has left
    clock.now += 0.1
    await flushed(sink)
    assert [r.offset for r in writer.stored] == [0]
    assert consumer.commits == [{tp("orders"): 1}]


async def test_while_clickhouse_refuses_the_offsets_are_held(no_sleep: list[float]) -> None:
    writer, consumer = FakeWriter(max_batch_rows=2), FakeConsumer(held={tp("orders")})
    writer.refuse = [FlushError("down", {}), FlushError("down", {}), FlushError("down", {})]
    consumer.fetches = [{tp("orders"): [Message(0), Message(1)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    await flushed(sink)
    assert [s for s in no_sleep if s] == [0.5, 0.01, 0.01]  # backs off, never gives up
    assert [r.offset for r in writer.stored] == [0, 1]
    assert consumer.commits == [{tp("orders"): 2}]


async def test_what_a_partial_flush_stored_is_committed_even_while_the_rest_is_retried() -> None:
    writer, consumer = FakeWriter(max_batch_rows=1), FakeConsumer(held={tp("orders"), tp("fills")})
    writer.refuse = [FlushError("fills refused", {("orders", 0): 8})]
    consumer.fetches = [{tp("orders"): [Message(8)], tp("fills"): [Message(2)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    await flushed(sink)
    assert consumer.commits == [{tp("orders"): 9, tp("fills"): 3}]


async def test_a_failed_commit_is_tried_again_at_the_next_flush_and_never_raises() -> None:
    writer, consumer = FakeWriter(max_batch_rows=1), FakeConsumer(held={tp("orders")})
    consumer.fail_commits = 1
    consumer.fetches = [{tp("orders"): [Message(0)]}, {tp("orders"): [Message(1)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    await flushed(sink)  # stores 0, commit fails; reads 1
    assert consumer.commits == []
    assert sink.committed == {}
    await flushed(sink)
    assert consumer.commits == [{tp("orders"): 2}]


async def test_a_failed_read_is_reported_and_the_loop_goes_on() -> None:
    writer, consumer = FakeWriter(max_batch_rows=1), FakeConsumer(held={tp("orders")})
    consumer.fail_reads = 1
    consumer.fetches = [{tp("orders"): [Message(0)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    await sink.step()
    await flushed(sink)
    assert [r.offset for r in writer.stored] == [0]


async def test_a_partition_not_held_is_not_committed() -> None:
    writer, consumer = FakeWriter(max_batch_rows=1), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(0)], tp("fills"): [Message(4)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    await flushed(sink)
    assert consumer.commits == [{tp("orders"): 1}]


async def test_before_a_rebalance_the_buffer_is_stored_and_the_revoked_partitions_committed(
) -> None:
    writer, consumer = FakeWriter(max_batch_rows=100), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(0), Message(1)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    await sink.revoked({tp("orders")})
    assert [r.offset for r in writer.stored] == [0, 1]
    assert consumer.commits == [{tp("orders"): 2}]
    sink.assigned({tp("orders"), tp("fills", 2)})
    assert sorted(writer.forgotten) == [("fills", 2), ("orders", 0)]
    assert sink.committed == {}  # a new owner may have committed since


async def test_a_rebalance_waits_for_the_batch_being_stored() -> None:
    writer, consumer = FakeWriter(max_batch_rows=1), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(0)]}, {tp("orders"): [Message(1)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    await sink.step()  # 0 being stored, 1 read
    await sink.revoked({tp("orders")})
    assert [r.offset for r in writer.stored] == [0, 1]
    assert consumer.commits[-1] == {tp("orders"): 2}


async def test_a_rebalance_that_cannot_store_in_time_gives_up_without_raising() -> None:
    class Down(FakeWriter):
        def flush(self) -> Any:
            async def refused() -> Any:
                await asyncio.sleep(0)
                raise FlushError("down", {})

            return refused()

    writer, consumer = Down(max_batch_rows=100), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(0)]}]
    sink = sink_of(writer, consumer)
    sink.call_seconds = 0.05
    await sink.step()
    await sink.revoked({tp("orders")})
    assert consumer.commits == []  # the new owner reads it again


async def committed_through_3() -> AuditSink:
    """A sink that stored and committed orders[0] up to offset 3 (its highwater: 10)."""
    writer, consumer = FakeWriter(max_batch_rows=1), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(3)]}]
    sink = sink_of(writer, consumer)
    await sink.step()
    await flushed(sink)
    return sink


async def test_lag_is_the_highwater_less_what_is_committed() -> None:
    sink = await committed_through_3()
    assert sink.lag() == [("orders", 0, 6)]


async def test_run_subscribes_every_topic_and_commits_on_the_way_out() -> None:
    writer, consumer = FakeWriter(max_batch_rows=1), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(0)]}]
    sink = sink_of(writer, consumer)
    sink.consumer = None
    committed = asyncio.Event()
    commit = consumer.commit

    async def noted(offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        await commit(offsets)
        committed.set()

    consumer.commit = noted  # type: ignore[method-assign]
    task = asyncio.create_task(sink.run())
    await asyncio.wait_for(committed.wait(), 1)
    sink.stop()
    await asyncio.wait_for(task, 1)
    assert consumer.topics == [PREFIX + "fills", PREFIX + "orders"]
    assert consumer.started
    assert consumer.stopped
    assert consumer.commits == [{tp("orders"): 1}]


async def test_a_bug_in_the_writer_stops_the_sink_loudly_with_offsets_uncommitted() -> None:
    class Broken(FakeWriter):
        def add_many(self, records: Any) -> None:
            raise TypeError("a bug")

    consumer = FakeConsumer(held={tp("orders")}, fetches=[{tp("orders"): [Message(0)]}])
    sink = sink_of(Broken(), consumer)
    sink.consumer = None
    with pytest.raises(TypeError):
        await asyncio.wait_for(sink.run(), 1)
    assert consumer.commits == []
    assert consumer.stopped


async def test_a_bug_in_a_flush_is_raised_by_the_loop() -> None:
    class Broken(FakeWriter):
        def flush(self) -> Any:
            async def bug() -> Any:
                raise TypeError("a bug")

            return bug()

    consumer = FakeConsumer(held={tp("orders")}, fetches=[{tp("orders"): [Message(0)]}])
    sink = sink_of(Broken(max_batch_rows=1), consumer)
    await sink.step()
    await sink.step()
    with pytest.raises(TypeError):
        await sink.settle()


async def test_close_stores_what_is_buffered_commits_it_and_waits_for_the_loop() -> None:
    writer, consumer = FakeWriter(max_batch_rows=100), FakeConsumer(held={tp("orders")})
    consumer.fetches = [{tp("orders"): [Message(0), Message(1)]}]
    sink = sink_of(writer, consumer)
    sink.consumer = None
    task = asyncio.create_task(sink.run())
    while not writer.added:  # noqa: ASYNC110 - the fake has no event to wait on
        await asyncio.sleep(0)
    await sink.close(within=1)
    assert task.done()
    assert [r.offset for r in writer.stored] == [0, 1]
    assert consumer.commits == [{tp("orders"): 2}]
    assert consumer.stopped


async def test_close_of_a_sink_never_started_returns_at_once() -> None:
    await sink_of(FakeWriter(), FakeConsumer()).close(within=5)


async def test_the_workers_consumer_lag_includes_the_sinks_partitions() -> None:
    from types import SimpleNamespace

    from agents.metrics import consumer_lag

    sink = await committed_through_3()
    audit_only = SimpleNamespace(agents=[], consumer=None)  # faust starts no consumer there
    assert consumer_lag(audit_only, SimpleNamespace(audit_sink=sink)) == [("orders", 0, 6)]
    assert consumer_lag(audit_only, SimpleNamespace()) == []
