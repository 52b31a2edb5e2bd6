"""The writer's Arrow tables, made when records are added: what a flush inserts is exactly the
rows it seals (all columns, the duplicate flag last), while the next records are being added
slice by slice, and rows that Arrow cannot hold go as rows (and are isolated as before)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from store.synthetic import synthetic_trade
from store.writer import (
    DUPLICATE,
    EVENT_COLUMNS,
    AuditWriter,
    EventRecord,
    body_table,
    mark_duplicates,
    rows_of,
)


class ArrowFake:
    """Takes Arrow tables (insert_arrow) or rows (insert); keeps what each insert carried."""

    def __init__(self) -> None:
        self.inserts: list[tuple[str, list[list[Any]], str | None]] = []
        self.hwm: list[dict[str, Any]] = []

    async def query(self, sql: str, parameters: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.hwm if "max(offset)" in sql else []

    async def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None
                           ) -> int:
        await asyncio.sleep(0.001)  # a real insert lets the event loop run meanwhile
        if table == "events":
            assert tuple(data.column_names) == EVENT_COLUMNS
            rows = [[r[c] for c in EVENT_COLUMNS] for r in data.to_pylist()]
            self.inserts.append(("arrow", rows, dedup_token))
        return int(data.num_rows)

    async def insert(self, table: str, rows: Sequence[Sequence[Any]],
                     column_names: Sequence[str], dedup_token: str | None = None) -> int:
        if table == "events":
            self.inserts.append(("rows", [list(r) for r in rows], dedup_token))
        return len(rows)

    def stored(self) -> list[tuple[str, int, int]]:
        return [(r[0], r[1], r[2]) for _, rows, _ in self.inserts for r in rows]


def records(trades: int, first: int = 0, offsets: dict[tuple[str, int], int] | None = None,
            partitions: int = 3) -> list[EventRecord]:
    """Trades first.. as records, their offsets after those in `offsets` (updated)."""
    offsets = {} if offsets is None else offsets
    out = []
    for n in range(first, first + trades):
        part = n % partitions
        for topic, cid, value in synthetic_trade(n):
            off = offsets.get((topic, part), 0)
            offsets[(topic, part)] = off + 1
            out.append(EventRecord(topic, part, off, str(cid).encode(), value.encode(), None))
    return out


def writer(ch: ArrowFake) -> AuditWriter:
    return AuditWriter(ch, max_batch_rows=10_000, max_batch_seconds=60)  # type: ignore[arg-type]


def _same(a: list[Any], b: list[Any]) -> bool:
    """A row as inserted from Arrow equals its row (a payload is bytes in Arrow, whether the
    row held the value's bytes or its text)."""
    def text(row: list[Any]) -> list[Any]:
        return [x.decode() if isinstance(x, bytes) else x for x in row]

    return text(a) == text(b)


async def test_each_insert_carries_exactly_the_rows_it_seals() -> None:
    ch = ArrowFake()
    w = writer(ch)
    recs = records(400)
    w.add_many(recs)
    expected = {(r[0], r[1], r[2]): r for buf in w._buffers.values() for r in buf.rows}
    await w.flush()
    assert all(kind == "arrow" for kind, _, _ in ch.inserts)
    assert sorted(ch.stored()) == sorted((r.topic, r.partition, r.offset) for r in recs)
    for _, rows, _ in ch.inserts:
        for row in rows:
            assert _same(row, expected[(row[0], row[1], row[2])])


async def test_records_added_slice_by_slice_during_a_flush_wait_for_the_next() -> None:
    """The bulk loop: the last chunk's flush runs while this one is added in slices."""
    ch = ArrowFake()
    w = writer(ch)
    offsets: dict[tuple[str, int], int] = {}
    first, second = records(300, 0, offsets), records(300, 300, offsets)
    w.add_many(first)
    flushing = asyncio.ensure_future(w.flush())
    await w.add_many_yielding(second, slice_rows=50)  # the flush's awaits interleave
    await flushing
    assert sorted(ch.stored()) == sorted((r.topic, r.partition, r.offset) for r in first)
    await w.flush()
    assert sorted(ch.stored()) == sorted(
        (r.topic, r.partition, r.offset) for r in first + second
    )
    # per partition, offsets stored in order and once
    seen: dict[tuple[str, int], list[int]] = {}
    for topic, part, off in ch.stored():
        seen.setdefault((topic, part), []).append(off)
    assert all(offs == sorted(set(offs)) for offs in seen.values())


async def test_a_flush_called_between_slices_seals_what_was_added_so_far() -> None:
    ch = ArrowFake()
    w = writer(ch)
    recs = records(200)
    adding = asyncio.ensure_future(w.add_many_yielding(recs, slice_rows=100))
    await asyncio.sleep(0)  # one slice in: its rows have no Arrow table yet
    assert 0 < w.buffered_rows < len(recs)
    await w.flush()
    await adding
    await w.flush()
    assert sorted(ch.stored()) == sorted((r.topic, r.partition, r.offset) for r in recs)
    assert all(kind == "arrow" for kind, _, _ in ch.inserts)


async def test_rows_arrow_cannot_hold_go_as_rows() -> None:
    """A partition number out of UInt32's range: no Arrow table for that partition's rows,
    which the insert then encodes itself (and a real engine refuses, to be isolated)."""
    ch = ArrowFake()
    w = writer(ch)
    offsets: dict[tuple[str, int], int] = {}
    good = records(10, 0, offsets)
    topic, _, value = next(synthetic_trade(99))
    bad = EventRecord(topic, 2**33, 0, None, value.encode(), None)
    w.add_many([*good, bad])
    await w.flush()
    kinds = {kind for kind, _, _ in ch.inserts}
    assert kinds == {"rows"}  # one insert for the partitions together: any part without
    assert (topic, 2**33, 0) in ch.stored()  # Arrow sends the group as rows
    w.add_many(records(10, 10, offsets))  # later records of good partitions: Arrow again
    await w.flush()
    assert ch.inserts[-1][0] == "arrow"


class LookupFake:
    """Answers the duplicate-fill look-up with `stored` ids; keeps the ids and days asked."""

    def __init__(self, stored: set[str]) -> None:
        self.stored = stored
        self.asked: list[tuple[list[str], list[Any]]] = []
        self._ids: list[str] = []

    async def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None
                           ) -> int:
        self._ids = data.column("id").to_pylist()
        return int(data.num_rows)

    async def query(self, sql: str, parameters: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        assert parameters is not None
        self.asked.append((self._ids, parameters["days"]))
        return [{"event_id": eid} for eid in sorted(self.stored)]


async def test_duplicate_fills_are_flagged_alike_from_arrow_tables_and_from_rows() -> None:
    """mark_duplicates reads a flush's fills from its Arrow tables (typed_rows): the same
    rows flagged, the same ids and days looked up, as when it reads the rows themselves."""
    recs = records(60)
    fills = [r for r in recs if r.topic == "fills"]
    # fills produced again at later offsets of their partitions, in the same part and in the
    # next one, and three of them dated a month later (another day to look up)
    again = [EventRecord(r.topic, r.partition, 10_000 + i, r.key, r.value, None)
             for i, r in enumerate(fills[:3] + fills[40:42])]
    later = [EventRecord(r.topic, r.partition, 20_000 + i, r.key,
                         r.value.replace(b"2026-03-0", b"2026-04-0"), None)
             for i, r in enumerate(fills[5:8])]
    now = datetime.now(UTC)
    first = rows_of(recs[:200] + again[:2], now)
    second = rows_of(recs[200:] + again[2:] + later, now)
    stored = {fills[10].value.decode().split('"event_id":"')[1][:36]}

    outcomes = []
    for with_tables in (True, False):
        parts = [list(first), list(second)]
        tables = [body_table(p) for p in parts] if with_tables else None
        ch = LookupFake(stored)
        await mark_duplicates(ch, *parts, tables=tables)  # type: ignore[arg-type]
        outcomes.append((parts, ch.asked))
    (arrow_parts, arrow_asked), (row_parts, row_asked) = outcomes
    assert arrow_parts == row_parts
    assert arrow_asked == row_asked
    flagged = [r for part in arrow_parts for r in part if r[DUPLICATE]]
    assert len(flagged) == 9  # eight produced again, one stored before
    assert len(arrow_asked[0][1]) > 1  # several days looked up
