"""The writer's upkeep of pnl_daily (0008): exact differences, one token per flush's change,
a change that could not be read or stored goes first at the next flush, a repair at start."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal, localcontext
from typing import Any

import pytest

from store.exceptions import FlushError, StoreUnavailableError
from store.synthetic import T0, trading_day
from store.writer import (
    PNL_COLUMNS,
    AuditWriter,
    Batch,
    EventRecord,
    PnlDaily,
    PnlSums,
    pnl_delta,
    to_row,
)

DAY = date(2026, 3, 2)
NEXT = date(2026, 3, 3)
# 31 significant digits: more than Decimal's default context keeps
R = Decimal("1.000000000000000160670982300464")


def sums(trades: int, pnl: str, r: Decimal = R) -> tuple[Any, ...]:
    with localcontext() as ctx:
        ctx.prec = 100
        return (trades, trades, 0, Decimal(pnl), Decimal(2 * trades), r * trades, trades)


class FakePnl:
    """pnl_daily_of and pnl_daily_since answer from `state`; pnl_rollup holds rows of the
    ids in `old`; records every call; fails the next `fail` calls of a kind ('query',
    'insert', 'command')."""

    def __init__(self) -> None:
        self.state: PnlSums = {}
        self.old: list[str] = [str(signal_batch().rows[0][5])]
        self.calls: list[str] = []
        self.inserted: list[tuple[str, list[list[Any]], str | None]] = []
        self.fail: dict[str, int] = {}
        self.reads: list[dict[str, Any]] = []
        self.several = 0  # the lean read's flag: a round trip of several symbols

    def _maybe_fail(self, kind: str) -> None:
        if self.fail.get(kind, 0) > 0:
            self.fail[kind] -= 1
            raise StoreUnavailableError(f"{kind} down")

    async def query(self, sql: str, parameters: dict[str, Any] | None = None
                    ) -> list[dict[str, Any]]:
        what = ("pnl_of" if "several" in sql  # the writer's own read
                else "pnl_view" if "pnl_daily_of" in sql or "pnl_daily_since" in sql
                else "block" if "system.parts" in sql
                else "old" if "FROM pnl_rollup" in sql else "query")
        self.calls.append(what)
        self._maybe_fail("query")
        if what == "block":
            return [{"n": 41}]
        if what == "old":
            return [{"correlation_id": i} for i in self.old]
        if what not in ("pnl_of", "pnl_view"):
            return []
        self.reads.append(dict(parameters or {}))
        return [{**dict(zip(PNL_COLUMNS, (*key, *value), strict=True)), "several": self.several}
                for key, value in self.state.items()]

    async def insert(self, table: str, rows: Sequence[Sequence[Any]],
                     column_names: Sequence[str], dedup_token: str | None = None) -> int:
        if table == "pnl_ids":  # the ids a read takes
            self.calls.append("ids")
            return len(rows)
        self.calls.append(f"insert {table}")
        self._maybe_fail("insert")
        self.inserted.append((table, [list(r) for r in rows], dedup_token))
        return len(rows)

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        self.calls.append("repair" if "pnl_daily_all" in sql else "command")
        self._maybe_fail("command")


def signal_batch() -> Batch:
    event = trading_day().events[0]
    record = EventRecord("signals", 0, 0, b"k", event.model_dump_json().encode(), 1.0)
    row = to_row(record, T0)
    return Batch("signals", 0, [row], 0.0, [record])


def test_delta_is_exact_and_leaves_out_what_did_not_move() -> None:
    before = {(DAY, "momo", 1): sums(3, "10.5"), (DAY, "meanrev", 1): sums(1, "4")}
    after = {(DAY, "momo", 1): sums(2, "7.25"), (NEXT, "momo", 1): sums(1, "3.25"),
             (DAY, "meanrev", 1): sums(1, "4")}
    rows = pnl_delta(before, after)
    assert rows == [
        [DAY, "momo", 1, -1, -1, 0, Decimal("-3.25"), Decimal(-2), R.copy_negate(), -1],
        [NEXT, "momo", 1, 1, 1, 0, Decimal("3.25"), Decimal(2), R, 1],
    ]
    assert pnl_delta(after, after) == []


async def test_a_flush_change_is_after_minus_before_under_its_own_token() -> None:
    ch = FakePnl()
    pnl = PnlDaily(ch)  # type: ignore[arg-type]
    await pnl.settle()
    assert ch.calls == ["repair"]
    ch.state = {(DAY, "momo", 1): sums(1, "5")}
    await pnl.begin([signal_batch()])
    ch.state = {(NEXT, "momo", 1): sums(1, "7")}  # the exit moved to the next day
    await pnl.settle()
    [(table, rows, token)] = ch.inserted
    assert table == "pnl_daily"
    assert [r[:4] for r in rows] == [[DAY, "momo", 1, -1], [NEXT, "momo", 1, 1]]
    await pnl.begin([signal_batch()])  # the same records again: nothing moves
    await pnl.settle()
    assert len(ch.inserted) == 1
    assert ch.calls.count("repair") == 1
    assert str(token).startswith("pnl-")


async def test_no_signal_or_fill_no_read() -> None:
    ch = FakePnl()
    pnl = PnlDaily(ch)  # type: ignore[arg-type]
    batch = signal_batch()
    row = batch.rows[0]
    batch.rows[0] = (*row[:4], "order", *row[5:])
    await pnl.begin([batch])
    await pnl.settle()
    assert ch.calls == ["repair"]


async def test_a_change_not_stored_keeps_its_rows_and_token() -> None:
    ch = FakePnl()
    pnl = PnlDaily(ch)  # type: ignore[arg-type]
    await pnl.settle()
    await pnl.begin([signal_batch()])
    ch.state = {(DAY, "momo", 1): sums(1, "5")}
    ch.fail["insert"] = 1
    with pytest.raises(StoreUnavailableError):
        await pnl.settle()
    ch.state = {(DAY, "momo", 1): sums(9, "99")}  # what a later flush stored: not this change's
    await pnl.settle()
    [(_, rows, _)] = ch.inserted
    assert rows == [[DAY, "momo", 1, *sums(1, "5")]]
    assert ch.calls[-2:] == ["insert pnl_daily", "insert pnl_daily"]  # no second read


async def test_after_not_read_is_read_first_at_the_next_settle() -> None:
    ch = FakePnl()
    pnl = PnlDaily(ch)  # type: ignore[arg-type]
    await pnl.settle()
    await pnl.begin([signal_batch()])
    ch.state = {(DAY, "momo", 1): sums(1, "5")}
    ch.fail["query"] = 1
    with pytest.raises(StoreUnavailableError):
        await pnl.settle()
    await pnl.settle()
    assert [rows for _, rows, _ in ch.inserted] == [[[DAY, "momo", 1, *sums(1, "5")]]]
    # the ids are written again before the retried read (they expire in pnl_ids)
    assert ch.calls == ["repair", "ids", "pnl_of", "pnl_of", "ids", "pnl_of", "insert pnl_daily"]


async def test_ids_pnl_rollup_does_not_hold_are_not_read_before_and_read_after_from_new_parts(
) -> None:
    ch = FakePnl()
    ch.old = []  # a new round trip: pnl_rollup holds no row of it
    pnl = PnlDaily(ch, by_part_from=1)  # type: ignore[arg-type]
    await pnl.settle()
    await pnl.begin([signal_batch()])
    assert ch.calls == ["repair", "block", "ids", "old"]  # its sums before are none: no read
    ch.state = {(DAY, "momo", 1): sums(1, "5")}
    await pnl.settle()
    [after] = ch.reads
    assert after["token"] == ""  # no id read from every part
    assert after["recent"].startswith("pnl-")  # the flush's ids, from the parts written since
    assert after["since"] == 41  # the highest block number before the flush
    assert [rows for _, rows, _ in ch.inserted] == [[[DAY, "momo", 1, *sums(1, "5")]]]


async def test_ids_pnl_rollup_holds_are_read_from_every_part_before_and_after() -> None:
    ch = FakePnl()
    pnl = PnlDaily(ch, by_part_from=1)  # type: ignore[arg-type]
    await pnl.settle()
    await pnl.begin([signal_batch()])
    await pnl.settle()
    before, after = ch.reads
    assert before == {"token": f"{after['recent']}-old", "recent": "", "since": 0}
    assert after == {"token": before["token"], "recent": after["recent"], "since": 41}
    # a retried read writes both sets of ids again (they expire in pnl_ids)
    await pnl.begin([signal_batch()])
    ch.fail["query"] = 1
    with pytest.raises(StoreUnavailableError):
        await pnl.settle()
    calls = len(ch.calls)
    await pnl.settle()
    assert ch.calls[calls:] == ["ids", "ids", "pnl_of"]


async def test_a_small_flush_reads_its_ids_from_every_part_before_and_after() -> None:
    ch = FakePnl()
    pnl = PnlDaily(ch)  # type: ignore[arg-type]
    await pnl.settle()
    await pnl.begin([signal_batch()])
    await pnl.settle()
    assert ch.calls == ["repair", "ids", "pnl_of", "pnl_of"]  # no look-up of old ids
    before, after = ch.reads
    assert before == after == {"token": after["token"], "recent": "", "since": 0}


@pytest.mark.parametrize("by_part_from", [1, 1000])
async def test_a_round_trip_of_several_symbols_is_read_again_through_the_views(
    by_part_from: int,
) -> None:
    ch = FakePnl()
    ch.several = 1  # the writer's own read cannot split it per symbol: the views' read can
    pnl = PnlDaily(ch, by_part_from=by_part_from)  # type: ignore[arg-type]
    await pnl.settle()
    await pnl.begin([signal_batch()])
    ch.state = {(DAY, "momo", 1): sums(1, "5")}
    await pnl.settle()
    # before: no row, nothing to split; after: a row of several symbols, read again
    assert [c for c in ch.calls if c.startswith("pnl_")] == ["pnl_of", "pnl_of", "pnl_view"]
    own, view = ch.reads[1:]
    # the views' read takes what the writer's own read took: the same ids, the same parts
    assert view == (own if by_part_from == 1 else {"token": own["token"]})
    assert [rows for _, rows, _ in ch.inserted] == [[[DAY, "momo", 1, *sums(1, "5")]]]


class ViewsRun(FakePnl):
    """Storing the events moves the sums (as the views do); the first change insert fails."""

    async def insert(self, table: str, rows: Sequence[Sequence[Any]],
                     column_names: Sequence[str], dedup_token: str | None = None) -> int:
        if table == "events":
            self.state = {(DAY, "momo", 1): sums(1, "5")}
        elif table == "pnl_daily" and "lost" not in self.fail:
            self.fail.update(insert=1, lost=1)
        return await super().insert(table, rows, column_names, dedup_token)


async def test_writer_reads_before_and_after_its_inserts_and_retries_a_lost_change() -> None:
    ch = ViewsRun()
    w = AuditWriter(ch, 100, 1.0, retry_attempts=1, pnl_daily=True)  # type: ignore[arg-type]
    w.add(signal_batch().records[0])
    with pytest.raises(FlushError) as failed:
        await w.flush()
    assert failed.value.transient
    assert failed.value.stored == {("signals", 0): 0}  # the events are stored all the same
    assert ch.calls == ["query", "repair", "ids", "pnl_of", "insert events", "pnl_of",
                        "insert pnl_daily"]
    assert await w.flush() == {}  # nothing new: the kept change goes in, nothing is read
    assert ch.calls[7:] == ["insert pnl_daily"]
    assert [(t, rows) for t, rows, _ in ch.inserted if t == "pnl_daily"] == [
        ("pnl_daily", [[DAY, "momo", 1, *sums(1, "5")]])]


def test_a_fake_clickhouse_keeps_no_pnl_daily_unless_asked() -> None:
    assert AuditWriter(FakePnl(), 10, 1.0)._pnl is None  # type: ignore[arg-type]
