"""The writer never stalls on rows ClickHouse refuses and never skips: a fake engine.

The fake keeps what ClickHouse does that matters here: an insert deduplication token is
remembered only when the `events` part is written; a view that throws fails the insert
after the `events` part is written (`commit_then_fail`), and re-runs on a deduplicated
retry; DELETE removes rows but not remembered tokens.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Sequence
from typing import Any

import pytest

from store.exceptions import (
    FlushError,
    StoreBusyError,
    StoreDataError,
    StoreError,
    StoreUnavailableError,
)
from store.synthetic import trading_day
from store.writer import UNSTORABLE, AuditWriter, EventRecord

POISON = b'"poison"'


class KilledError(Exception):
    """The process dies here (not a StoreError: it escapes flush)."""


class FakeEngine:
    """An `events` table with dedup tokens, a throwing view, DELETE and crash points."""

    def __init__(self, *, commit_then_fail: bool = True) -> None:
        self.commit_then_fail = commit_then_fail
        self.rows: list[list[Any]] = []
        self.tokens: set[str] = set()
        self.calls: list[str] = []
        self.transient: list[StoreError] = []
        self.kill_at: int | None = None  # die at this call number (1-based)

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if self.kill_at is not None and len(self.calls) >= self.kill_at:
            raise KilledError(what)

    @staticmethod
    def _refused(row: Sequence[Any]) -> bool:
        return row[4] != UNSTORABLE and POISON in str(row[13]).encode()

    async def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        dedup_token: str | None = None,
    ) -> int:
        self._call(f"insert {dedup_token}")
        if self.transient:
            raise self.transient.pop(0)
        refused = any(self._refused(r) for r in rows)
        if dedup_token in self.tokens:
            if refused:  # the views still run on a deduplicated block
                raise StoreDataError("view refused", clickhouse_code=69)
            return 0
        if refused and not self.commit_then_fail:
            raise StoreDataError("cannot encode", clickhouse_code=None)
        self.rows.extend(list(r) for r in rows)
        self.tokens.add(str(dedup_token))
        if refused:
            raise StoreDataError("Code: 69. Decimal value is too big", clickhouse_code=69)
        return len(rows)

    def _in_range(self, row: list[Any], p: dict[str, Any]) -> bool:
        return (row[0], row[1]) == (p["topic"], p["partition"]) and (
            p["first"] <= row[2] <= p["last"]
        )

    async def query(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        self._call("query")
        p = parameters or {}
        if "max(offset)" in sql:
            hwm: dict[tuple[str, int], int] = {}
            for r in self.rows:
                hwm[(r[0], r[1])] = max(hwm.get((r[0], r[1]), -1), r[2])
            return [{"topic": t, "partition": n, "hwm": o} for (t, n), o in hwm.items()]
        return [{"n": sum(1 for r in self.rows if self._in_range(r, p))}]

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        self._call("delete")
        assert sql.startswith("DELETE FROM events")
        p = parameters or {}
        self.rows = [r for r in self.rows if not self._in_range(r, p)]

    def offsets(self) -> list[int]:
        return sorted(r[2] for r in self.rows)

    def unstorable(self) -> list[int]:
        return sorted(r[2] for r in self.rows if r[4] == UNSTORABLE)


def records(n: int, poison: set[int]) -> list[EventRecord]:
    """n distinct valid signals on signals[0]; `poison` offsets carry a value the view refuses."""
    base = json.loads(trading_day().events[0].model_dump_json())
    out = []
    for off in range(n):
        data = {**base, "id": f"s{off}", "event_id": f"00000000-0000-4000-8000-{off:012d}"}
        if off in poison:
            data["strategy_id"] = "poison"
        out.append(EventRecord("signals", 0, off, b"k", json.dumps(data).encode(), 1772400000.0))
    return out


def make_writer(engine: FakeEngine, rows: int = 64) -> AuditWriter:
    return AuditWriter(
        engine,  # type: ignore[arg-type]
        rows,
        1.0,
        retry_attempts=3,
        retry_initial_seconds=0.001,
        retry_max_seconds=0.002,
    )


async def write(engine: FakeEngine, recs: list[EventRecord], rows: int = 64) -> AuditWriter:
    w = make_writer(engine, rows)
    for r in recs:
        w.add(r)
    await w.flush()
    return w


@pytest.mark.parametrize("commit_then_fail", [True, False])
@pytest.mark.parametrize("poison", [set(), {0}, {63}, {5, 6}, {1, 30, 31, 62}, set(range(64))])
async def test_refused_rows_stand_alone_and_every_offset_is_stored_once(
    commit_then_fail: bool, poison: set[int]
) -> None:
    engine = FakeEngine(commit_then_fail=commit_then_fail)
    recs = records(64, poison)
    w = make_writer(engine)
    for r in recs:
        w.add(r)
    assert await w.flush() == {("signals", 0): 63}
    assert engine.offsets() == list(range(64))
    assert engine.unstorable() == sorted(poison)
    assert (w.stats.rows_written, w.stats.unstorable) == (64, len(poison))
    inserts = sum(1 for c in engine.calls if c.startswith("insert"))
    deletes = engine.calls.count("delete")
    print(f"64 rows, {len(poison)} refused: {inserts} inserts, {deletes} deletes")


async def test_unstorable_row_keeps_bytes_error_and_provenance() -> None:
    engine = FakeEngine()
    recs = records(4, {2})
    await write(engine, recs)
    [row] = [r for r in engine.rows if r[4] == UNSTORABLE]
    assert (row[0], row[1], row[2]) == ("signals", 0, 2)
    kept = json.loads(row[13])
    assert base64.b64decode(kept["raw_base64"]) == recs[2].value
    assert kept["clickhouse_code"] == 69
    assert kept["event_type"] == "signal"
    assert "Decimal value is too big" in kept["error"]
    assert POISON not in row[13].encode()  # no view can read the refused value again


async def test_halves_take_the_tokens_of_their_own_offsets() -> None:
    engine = FakeEngine(commit_then_fail=False)
    await write(engine, records(4, {3}))
    tokens = [c.split(" ", 1)[1] for c in engine.calls if c.startswith("insert")]
    assert tokens == [
        "signals-0-0-3",
        "signals-0-0-1",
        "signals-0-2-3",
        "signals-0-2-2",
        "signals-0-3-3",
        "signals-0-3-3-unstorable",
    ]


@pytest.mark.parametrize("error", [StoreUnavailableError("reset"), StoreBusyError("parts")])
async def test_transient_error_is_retried_with_the_same_token(error: StoreError) -> None:
    engine = FakeEngine()
    engine.transient = [error, error]
    w = await write(engine, records(5, set()))
    assert engine.calls == ["query"] + ["insert signals-0-0-4"] * 3
    assert engine.offsets() == list(range(5))
    assert w.stats.unstorable == 0


async def test_outage_holds_offsets_and_a_later_flush_stores_once() -> None:
    engine = FakeEngine()
    engine.transient = [StoreUnavailableError("refused")] * 3
    w = make_writer(engine)
    for r in records(6, {2}):
        w.add(r)
    with pytest.raises(FlushError) as info:
        await w.flush()
    assert info.value.transient
    assert info.value.stored == {}
    assert engine.rows == []
    assert await w.flush() == {("signals", 0): 5}
    assert engine.offsets() == list(range(6))
    assert engine.unstorable() == [2]


async def test_outage_mid_bisect_resumes_where_it_stopped() -> None:
    engine = FakeEngine()
    w = make_writer(engine)
    for r in records(8, {6}):
        w.add(r)
    original = engine.insert
    seen = {"n": 0}

    async def flaky(*args: Any, **kwargs: Any) -> int:
        seen["n"] += 1
        if seen["n"] in (3, 4, 5, 6):  # down after the first half is stored
            raise StoreUnavailableError("reset")
        return await original(*args, **kwargs)

    engine.insert = flaky  # type: ignore[method-assign]
    with pytest.raises(FlushError):
        await w.flush()
    assert engine.offsets() == [0, 1, 2, 3]
    assert await w.flush() == {("signals", 0): 7}
    assert engine.offsets() == list(range(8))
    assert engine.unstorable() == [6]


@pytest.mark.parametrize("kill_at", range(1, 40))
async def test_killed_anywhere_then_restarted_stores_nothing_twice(kill_at: int) -> None:
    engine = FakeEngine()
    recs = records(16, {5, 11})
    engine.kill_at = kill_at
    killed = None
    try:
        await write(engine, recs, 16)
    except KilledError as exc:
        killed = (kill_at, str(exc))
    engine.kill_at = None
    await write(engine, recs, 16)  # the restarted process: Kafka redelivers from the start
    assert engine.offsets() == list(range(16))  # nothing twice, nothing lost from events
    # Killed between a refused insert that wrote `events` and its undo: the piece stays in
    # `events` as it came (the restarted writer sees its offsets stored), views lack it.
    in_window = killed is not None and killed[0] > 1 and not killed[1].startswith("insert")
    if not in_window:
        assert engine.unstorable() == [5, 11]


async def test_a_stand_in_row_that_is_refused_stalls_instead_of_skipping() -> None:
    class Broken(FakeEngine):
        @staticmethod
        def _refused(row: Sequence[Any]) -> bool:
            return True  # e.g. a view without an event_type filter that always throws

    engine = Broken(commit_then_fail=False)
    w = make_writer(engine)
    w.add(records(1, set())[0])
    with pytest.raises(FlushError) as info:
        await w.flush()
    assert not info.value.transient
    assert info.value.stored == {}
    assert w.buffered_rows == 1  # held, offsets not committed


def spread(n: int, partitions: int, poison: set[tuple[int, int]]) -> list[EventRecord]:
    """n signals on each of `partitions` partitions of signals; (partition, offset) poisoned."""
    out = []
    for p in range(partitions):
        for r in records(n, {o for q, o in poison if q == p}):
            value = r.value.replace(b"-8000-", f"-8{p:03d}-".encode())
            out.append(EventRecord("signals", p, r.offset, r.key, value, r.timestamp))
    return out


def stored(engine: FakeEngine) -> list[tuple[int, int]]:
    return sorted((r[1], r[2]) for r in engine.rows)


def inserts(engine: FakeEngine) -> list[str]:
    return [c.split(" ", 1)[1] for c in engine.calls if c.startswith("insert")]


async def test_partitions_share_one_insert() -> None:
    """Every insert runs every view once, so a flush's partitions go in one insert."""
    engine = FakeEngine()
    w = await write(engine, spread(5, 3, set()))
    assert inserts(engine) == ["signals-0-0-4+signals-1-0-4+signals-2-0-4"]
    assert stored(engine) == [(p, o) for p in range(3) for o in range(5)]
    assert w.stats.batches_written == 3


async def test_a_group_that_fails_is_retried_as_it_was() -> None:
    """Same batches, same token: a group whose insert may have landed is deduplicated."""
    engine = FakeEngine()
    engine.transient = [StoreUnavailableError("reset")] * 3
    w = make_writer(engine)
    for r in spread(4, 2, set()):
        w.add(r)
    with pytest.raises(FlushError):
        await w.flush()
    for r in spread(6, 3, set()):  # more arrives meanwhile: not in the group retried
        w.add(r)
    await w.flush()
    group = "signals-0-0-3+signals-1-0-3"
    assert inserts(engine) == [group] * 4 + ["signals-0-4-5+signals-1-4-5+signals-2-0-5"]
    assert stored(engine) == [(p, o) for p in range(3) for o in range(6)]


@pytest.mark.parametrize("commit_then_fail", [True, False])
async def test_a_refused_group_is_undone_and_its_partitions_isolate_the_row(
        commit_then_fail: bool) -> None:
    engine = FakeEngine(commit_then_fail=commit_then_fail)
    await write(engine, spread(4, 3, {(1, 2)}))
    assert stored(engine) == [(p, o) for p in range(3) for o in range(4)]
    assert [(r[1], r[2]) for r in engine.rows if r[4] == UNSTORABLE] == [(1, 2)]
    assert inserts(engine)[0] == "signals-0-0-3+signals-1-0-3+signals-2-0-3"


@pytest.mark.parametrize("kill_at", range(1, 24))
async def test_killed_anywhere_in_a_group_then_restarted_stores_nothing_twice(
        kill_at: int) -> None:
    engine = FakeEngine()
    recs = spread(6, 3, {(2, 4)})
    engine.kill_at = kill_at
    with contextlib.suppress(KilledError):
        await write(engine, recs, 16)
    engine.kill_at = None
    await write(engine, recs, 16)  # the restarted process: Kafka redelivers from the start
    assert stored(engine) == [(p, o) for p in range(3) for o in range(6)]

