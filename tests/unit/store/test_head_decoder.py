"""The audit writer's head decoder (msgspec, envelope fields only) against its general path
(the whole value parsed, the model deriving what is missing): wherever the head decoder takes
a value it gives the same envelope, and it raises where the general path raises. And the
writer's batch decoding (rows_of: ids checked for a whole batch at once) against to_row, one
value at a time: the same rows."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from store.synthetic import TOPIC_OF, trading_day
from store.writer import (
    EVENT_COLUMNS,
    AuditWriter,
    Envelope,
    EventRecord,
    Row,
    _head_envelope,
    decode_envelope,
    general_envelope,
    rows_of,
    to_row,
)

Edit = Callable[[dict[str, Any]], None]
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _set(key: str, value: Any) -> Edit:
    return lambda data: data.__setitem__(key, value)


def _drop(key: str) -> Edit:
    return lambda data: data.pop(key, None)


EDITS: dict[str, Edit] = {
    "as produced": lambda data: None,
    "upper-case id": lambda data: data.__setitem__("event_id", data["event_id"].upper()),
    "braced id": lambda data: data.__setitem__("event_id", "{" + data["event_id"] + "}"),
    "id without hyphens": lambda data: data.__setitem__(
        "correlation_id", data["correlation_id"].replace("-", "")
    ),
    "id not a uuid": _set("event_id", "not-a-uuid"),
    "id a number": _set("event_id", 12),
    "upper-case causation": lambda data: data.__setitem__(
        "causation_id", str(data.get("causation_id") or data["event_id"]).upper()
    ),
    "causation not a uuid": _set("causation_id", "not-a-uuid"),
    "no causation": _drop("causation_id"),
    "empty causation": _set("causation_id", ""),
    "null causation": _set("causation_id", None),
    "offset timestamp": _set("occurred_at", "2026-03-02T16:30:00.5+02:00"),
    "space separator": _set("occurred_at", "2026-03-02 14:30:00Z"),
    "lower-case t and z": _set("occurred_at", "2026-03-02t14:30:00z"),
    "nine fraction digits": _set("occurred_at", "2026-03-02T14:30:00.123456789Z"),
    "naive timestamp": _set("occurred_at", "2026-03-02T14:30:00"),
    "timestamp a number": _set("occurred_at", 1772461800),
    "hour 24": _set("occurred_at", "2026-03-02T24:00:00Z"),
    "no recorded_at": _drop("recorded_at"),
    "empty recorded_at": _set("recorded_at", ""),
    "naive recorded_at": _set("recorded_at", "2026-03-02T14:30:00"),
    "schema version 0": _set("schema_version", 0),
    "schema version text": _set("schema_version", "2"),
    "schema version float": _set("schema_version", 2.0),
    "no event_type": _drop("event_type"),
    "empty event_type": _set("event_type", ""),
    "event_type a number": _set("event_type", 7),
    "unknown event_type": _set("event_type", "something_else"),
    "no event_id": _drop("event_id"),
    "no occurred_at": _drop("occurred_at"),
    "extra field": _set("note", {"nested": [1, 2.5, None, "x"]}),
    "huge number elsewhere": _set("note", 1e999),
}


def _cases() -> Iterator[Any]:
    seen: set[str] = set()
    for event in trading_day().events:
        kind = str(getattr(event, "event_type", ""))
        if kind in seen:
            continue
        seen.add(kind)
        for name, edit in EDITS.items():
            yield pytest.param(event.model_dump_json(), TOPIC_OF.get(kind, "audit"), edit,
                               id=f"{kind}-{name}")


def _text(env: Envelope) -> Envelope:
    payload = env.payload
    return env._replace(payload=payload.decode() if isinstance(payload, bytes) else payload)


def _outcome(decode: Callable[[EventRecord], Envelope | None], record: EventRecord) -> Any:
    try:
        env = decode(record)
    except (ValueError, TypeError) as exc:
        return type(exc), str(exc)
    return None if env is None else _text(env)


@pytest.mark.parametrize(("value", "topic", "edit"), list(_cases()))
def test_the_head_decoder_agrees_with_the_general_path(value: str, topic: str, edit: Edit) -> None:
    data = json.loads(value)
    edit(data)
    record = EventRecord(topic, 0, 1, None, json.dumps(data).encode(), None)
    head = _outcome(_head_envelope, record)
    if head is not None:  # taken (or refused) by the head decoder: as the general path does
        assert head == _outcome(general_envelope, record)
        assert _outcome(decode_envelope, record) == head


def test_the_head_decoder_takes_what_the_pipeline_produces() -> None:
    for event in trading_day().events:
        record = EventRecord("audit", 0, 1, None, event.model_dump_json().encode(), None)
        env = _head_envelope(record)
        assert env is not None
        assert env.payload == record.value  # stored byte for byte, as it came


def _edited(value: str, topic: str, edit: Edit, offset: int = 1) -> EventRecord:
    data = json.loads(value)
    edit(data)
    return EventRecord(topic, 0, offset, b"k", json.dumps(data).encode(), 1772461800.5)


def _as_to_row(rows: list[Row], records: list[EventRecord]) -> None:
    """Each row is to_row's, but in the fields to_row itself makes anew at each call (a model
    deriving a missing occurred_at from the clock, a missing event_id at random)."""
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        first, second = to_row(record, NOW), to_row(record, NOW)
        same = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a == b]
        assert [row[i] for i in same] == [first[i] for i in same]


@pytest.mark.parametrize(("value", "topic", "edit"), list(_cases()))
def test_batch_decoding_makes_the_rows_to_row_makes(value: str, topic: str, edit: Edit) -> None:
    record = _edited(value, topic, edit)
    _as_to_row(rows_of([record], NOW), [record])


def test_batch_decoding_of_a_mixed_batch_makes_each_row_as_to_row() -> None:
    """Every edit of every kind in one batch (an id to normalise between canonical ones, bad
    values among good ones): each row is the one to_row makes of its record, in order."""
    records = [_edited(*case.values, offset=n) for n, case in enumerate(_cases())]
    records.append(EventRecord("fills", 0, len(records), None, b"\xff not json", None))
    rows = rows_of(records, NOW)
    _as_to_row(rows, records)
    assert [r[2] for r in rows] == list(range(len(records)))
    assert rows_of([], NOW) == []


def test_rows_are_left_alone_by_the_garbage_collector() -> None:
    """A row holds plain values only, in a tuple, so the cyclic garbage collector stops
    tracking it the first time it sees it: buffered rows cost full collections nothing."""
    records = [_edited(*case.values, offset=n) for n, case in enumerate(_cases())]
    records.append(EventRecord("fills", 0, len(records), None, b"\xff not json", None))
    rows = rows_of(records, NOW)
    gc.collect()
    assert [row for row in rows if gc.is_tracked(row)] == []


def test_bytes_beyond_ascii_are_taken_as_utf8_and_refused_otherwise() -> None:
    """The batch decoder asks UTF-8 only of values that are not ASCII: a non-ASCII value that
    is UTF-8 is stored as it came, and one with bytes that are not (in a field the head
    decoder skips unread) is what to_row makes of it: undecodable."""
    value = trading_day().events[0].model_dump_json().encode()
    assert value.isascii()
    records = [EventRecord("signals", 0, n, None, value[:-1] + extra + b"}", None)
               for n, extra in enumerate([b"", b',"note":"caf\xc3\xa9"', b',"note":"\xff"'])]
    rows = rows_of(records, NOW)
    _as_to_row(rows, records)
    assert [r[4] for r in rows] == ["signal", "signal", "undecodable"]
    assert rows[1][13] == records[1].value


class _RowsSink:
    """A ClickHouse that takes the events inserts as rows (no Arrow): keeps them."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    async def query(self, sql: str, parameters: Any = None, settings: Any = None) -> list[Any]:
        return []  # nothing stored: no offsets, no fills

    async def insert(self, table: str, rows: Any, column_names: Any,
                     dedup_token: str | None = None) -> int:
        if table == "events":
            self.rows += [tuple(r) for r in rows]
        return len(rows)


class _ArrowSink(_RowsSink):
    """The same, taking them as Arrow tables (the writer then makes a table as rows come)."""

    async def insert_arrow(self, table: str, data: Any, dedup_token: str | None = None) -> int:
        if table == "events":
            self.rows += [tuple(r.values()) for r in data.to_pylist()]
        return int(data.num_rows)


@pytest.mark.parametrize("sink", [_ArrowSink, _RowsSink], ids=["arrow", "rows"])
async def test_the_writer_stores_each_row_as_to_row_makes_it(sink: type[_RowsSink]) -> None:
    """The writer's own path: the ids' canonical form is checked on the Arrow table's columns
    when a table is made (on the rows otherwise), added a few records at a time. Every edit of
    every kind, each stored as to_row makes it, and each undecodable one counted once."""
    records = [_edited(*case.values, offset=n) for n, case in enumerate(_cases())]
    records.append(EventRecord("fills", 0, len(records), None, b"\xff not json", None))
    ch = sink()
    writer = AuditWriter(ch, max_batch_rows=100_000, max_batch_seconds=60,  # type: ignore[arg-type]
                         pnl_daily=False)
    await writer.add_many_yielding(records, slice_rows=7)
    await writer.flush()
    stored = sorted(ch.rows, key=lambda r: r[2])
    assert len(stored) == len(records)
    payload = EVENT_COLUMNS.index("payload")
    made = []
    for row, record in zip(stored, records, strict=True):
        now = row[EVENT_COLUMNS.index("ingested_at")]  # the writer's clock when taken in
        first, second = to_row(record, now), to_row(record, now)
        made.append(first)
        # the payload in to_row's type (text or bytes), and not the duplicate flag (the edits
        # of one fill share its event_id: copies, flagged)
        row = (*row[:payload], _like(row[payload], first[payload]), 0)
        same = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a == b]
        assert [row[i] for i in same] == [first[i] for i in same]
    undecodable = sum(1 for m in made if m[4] == "undecodable")
    assert undecodable > 5
    assert writer.stats.undecodable == undecodable


def _like(value: str | bytes, model: str | bytes) -> str | bytes:
    if isinstance(value, bytes) and isinstance(model, str):
        return value.decode()
    return value.encode() if isinstance(value, str) and isinstance(model, bytes) else value
