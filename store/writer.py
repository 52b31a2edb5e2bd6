"""The audit sink core: Kafka records in, idempotent ClickHouse batches out, offsets back.

Independent of faust and Kafka clients. The caller adds records, flushes when
`should_flush()` says so, and commits Kafka offsets only up to what `flush()` returned.
Exactly-once comes from two layers: a retried batch keeps its dedup token (the server
drops the copy), and a restarted writer skips offsets the table already holds.

Never stall, never skip: a batch that ClickHouse refuses for its data (StoreDataError: a
value a materialized view cannot convert, a decimal overflow, a value the client cannot
encode) is split in halves until the refused rows stand alone; every other row is stored
once, and each refused row is stored as an `unstorable` event (its bytes in base64, the
error, its topic/partition/offset) that no view parses, so its offset advances too.

Daily P&L (pnl_daily, 0008) is kept here, not by a view: a round trip's exit day and P&L move
as its fills arrive, so each flush inserts the change of its round trips' sums (PnlDaily).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import itertools
import json
import logging
import re
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from importlib import resources
from operator import attrgetter
from typing import Any, NamedTuple
from uuid import UUID, uuid4

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError
from pydantic_core import from_json
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from schemas.events import EVENT_TYPES, Event
from schemas.ids import derive_id
from schemas.topics import TOPICS
from store.client import ARROW_TYPES, ENCODE_ERRORS, TIMESTAMP_MS, ClickHouse, arrow_table
from store.exceptions import FlushError, StoreDataError, StoreError

log = logging.getLogger(__name__)

# The GIL switch interval of a process whose work is this writer (the audit stage alone:
# jax_exec.runner.switch_interval; the ingest benchmark). A flush's steps run on the embedded
# engine's thread, which needs the GIL between steps (a result handed back, the Arrow table
# read in place) while the event loop decodes the next records; at Python's 5 ms it waits up
# to that long each time. bench/bench_clickhouse.py, runs interleaved: 2,000,000 events at a
# mean of 73,451 events/s at 5 ms against 78,519 at 0.5 to 1 ms; 10,000,000 at 71,195 against
# 75,876. The audit stage's drain (bench/bench_audit_drain.py) was within its noise (README).
WRITER_SWITCH_SECONDS = 0.0005

EVENT_COLUMNS: tuple[str, ...] = (
    "topic",
    "partition",
    "offset",
    "event_id",
    "event_type",
    "correlation_id",
    "causation_id",
    "occurred_at",
    "recorded_at",
    "ingested_at",
    "kafka_timestamp",
    "schema_version",
    "key",
    "payload",
    "duplicate",
)
DUPLICATE = EVENT_COLUMNS.index("duplicate")
# An events row (EVENT_COLUMNS): a tuple of plain values, which the cyclic garbage collector
# stops tracking the first time it sees it. Rows wait in a buffer until their flush, a batch
# at a time; as lists they were scanned by every full collection (measured: about 0.5 us
# per event of a bulk ingest).
Row = tuple[Any, ...]
# The columns made when a record is added; the duplicate flag (the last) is set just before
# the insert
BODY_COLUMNS = EVENT_COLUMNS[:DUPLICATE]
_US = pa.timestamp("us", tz="UTC")
# How the client encodes events rows: ids travel as canonical strings, ClickHouse parses them
_TEXT = pa.string()
ARROW_TYPES["events"] = {
    "topic": _TEXT,
    "partition": pa.uint32(),
    "offset": pa.uint64(),
    "event_id": _TEXT,
    "event_type": _TEXT,
    "correlation_id": _TEXT,
    "causation_id": _TEXT,
    "occurred_at": _US,
    "recorded_at": _US,
    "ingested_at": _US,
    "kafka_timestamp": TIMESTAMP_MS,
    "schema_version": pa.uint16(),
    "key": _TEXT,
    # bytes: a value is stored as it came once decoded as UTF-8 (to_row), and Arrow would check
    # its UTF-8 again for a string column (0.2 to 0.4 us of the payload's 1.5 per event)
    "payload": pa.binary(),
    "duplicate": pa.uint8(),
}
# The form str(UUID(x)) gives; any other spelling is normalised through UUID()
_UUID_FORM = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_CANONICAL_UUID = re.compile(_UUID_FORM)
_UUID_PATTERN = f"^{_UUID_FORM}$"  # RE2 (Arrow): $ is the end of the text, as fullmatch
# Event types whose copies the pre-aggregates must not count twice (0006_preaggregates.sql)
SUMMED_TYPES = frozenset({"fill"})
# The ids go first to flush_ids (0010) under a token of the look-up's, as Arrow: bound as a
# parameter the client escapes them character by character, and inlined as one literal the
# engine takes 70 ms to parse 40,000 of them.
_STORED_FILLS = (
    "SELECT DISTINCT event_id FROM fill_firsts "
    "WHERE day IN {days:Array(Date)} "
    "AND event_id IN (SELECT id FROM flush_ids WHERE token = {token:String})"
)
# Event types whose rows change trade_pnl_pre, so pnl_daily (0008_pnl_daily.sql)
PNL_TYPES = frozenset({"signal", "fill"})
PNL_KEY = ("day", "strategy_id", "closed")
PNL_SUMS = ("trades", "wins", "losses", "realized_pnl", "commission", "r_sum", "r_count")
PNL_COLUMNS = PNL_KEY + PNL_SUMS
_PNL_OF = (
    f"SELECT {', '.join(PNL_COLUMNS)} FROM pnl_daily_of(token = {{token:String}})"  # noqa: S608
)
_PNL_SINCE = (
    f"SELECT {', '.join(PNL_COLUMNS)} FROM pnl_daily_since(token = {{token:String}}, "  # noqa: S608
    "recent = {recent:String}, since = {since:UInt64})"
)
# pnl_daily_since's rows of one-symbol round trips, and a several = 1 row for any other (sent
# without the file's opening comment)
_PNL_READ = "\n".join(
    line for line in (resources.files("store") / "sql" / "pnl_daily_read.sql")
    .read_text("utf-8").splitlines() if not line.startswith("--"))
# From this many round trips in a flush, pnl_daily's reads go by part (pnl_daily_since's
# parameters): below it, one read of every id from every part is cheaper (the primary key
# narrows a few ids to a few granules, and reading by part costs two look-ups more: the
# block number and the ids pnl_rollup holds)
PNL_BY_PART_FROM = 1000
# The ids under {token:String} that pnl_rollup holds rows of (its correlation_id column only)
_ROLLUP_IDS = (
    "SELECT DISTINCT correlation_id FROM pnl_rollup PREWHERE correlation_id IN "
    "(SELECT correlation_id FROM pnl_ids WHERE token = {token:String})"
)
# pnl_rollup's highest block number: the parts written after this read have higher ones
_ROLLUP_BLOCK = (
    "SELECT max(max_block_number) AS n FROM system.parts "
    "WHERE database = currentDatabase() AND table = 'pnl_rollup'"
)
PNL_IDS_COLUMNS = ("token", "correlation_id")
_NEGATED = ", ".join([*PNL_KEY, *(f"-{c}" for c in PNL_SUMS)])
# pnl_daily_all - pnl_daily, inserted: pnl_daily then holds pnl_daily_all. A correction, not a
# TRUNCATE and a copy, so readers see the old sums, not an empty table, while it runs.
_REPAIR_PNL = (
    f"INSERT INTO pnl_daily ({', '.join(PNL_COLUMNS)}) "  # noqa: S608 - constants only
    f"SELECT {', '.join(PNL_KEY)}, {', '.join(f'sum({c})' for c in PNL_SUMS)} FROM "
    f"(SELECT {', '.join(PNL_COLUMNS)} FROM pnl_daily_all UNION ALL "
    f"SELECT {_NEGATED} FROM pnl_daily) GROUP BY {', '.join(PNL_KEY)} "
    f"HAVING {' OR '.join(f'sum({c}) != 0' for c in PNL_SUMS)} "
    "SETTINGS insert_deduplicate = 0"
)
PnlKey = tuple[date, str, int]
PnlSums = dict[PnlKey, tuple[Any, ...]]
ARROW_TYPES["pnl_ids"] = {"token": _TEXT, "correlation_id": _TEXT}
UNDECODABLE = "undecodable"
UNSTORABLE = "unstorable"
_RANGE = (
    "WHERE topic = {topic:String} AND partition = {partition:UInt32} "
    "AND offset BETWEEN {first:UInt64} AND {last:UInt64}"
)
_COUNT_RANGE = f"SELECT count() AS n FROM events {_RANGE}"  # noqa: S608 - constants only
_DELETE_RANGE = f"DELETE FROM events {_RANGE}"  # noqa: S608 - constants only
Key = tuple[str, int]


class EventRecord(msgspec.Struct, frozen=True, gc=False):
    """One Kafka record as consumed; timestamp is a datetime or epoch seconds (faust).

    Not tracked by the cyclic garbage collector (gc=False: its values are text, numbers,
    bytes and a datetime, which make no cycle): a writer buffers a batch of records, and
    every full collection scanned each of them (about 1.4 us per event at 100,000 events
    a flush)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: datetime | float | None = None


class Envelope(NamedTuple):
    """What the events table needs to know about one decoded value (a NamedTuple: made
    once per event, and a frozen dataclass's __init__ costs several times more)."""

    event_id: str  # canonical UUID text (str(UUID(...))): ClickHouse parses it
    event_type: str
    correlation_id: str
    causation_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    schema_version: int
    # the value's JSON text; the record's own UTF-8 bytes when stored as it came (Arrow takes
    # bytes for a string column about ten times faster than a str)
    payload: str | bytes


class _NeedsModel(Exception):
    """The value lacks envelope fields; let the pydantic model derive them."""


def _utc(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"naive timestamp {value!r}")
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def kafka_time(value: datetime | float | None) -> datetime | None:
    """Normalise a Kafka timestamp (epoch seconds or datetime) to aware UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


def model_for(topic: str, event_type: str | None) -> type[Event] | None:
    """The model of an event type, else of the topic (names may carry a test prefix)."""
    if event_type and event_type in EVENT_TYPES:
        return EVENT_TYPES[event_type]
    for spec in TOPICS:
        if topic == spec.name or topic.endswith(spec.name):
            return spec.model
    return None


def uuid_text(value: Any) -> str:
    """str(UUID(value)) without building a UUID when the text is already canonical."""
    if type(value) is str and _CANONICAL_UUID.fullmatch(value):
        return value
    return str(UUID(str(value)))


def _envelope(
    event_id: Any,
    correlation_id: Any,
    occurred_at: Any,
    causation_id: Any,
    recorded_at: Any,
    schema_version: Any,
    event_type: str,
    payload: str | bytes,
) -> Envelope:
    """The envelope of fields as the value gives them (both decoders' one reading of them).
    A recorded_at written as occurred_at is the same instant: parsed once."""
    occurred = _utc(occurred_at)
    recorded = occurred if not recorded_at or recorded_at == occurred_at else _utc(recorded_at)
    return Envelope(uuid_text(event_id), event_type, uuid_text(correlation_id),  # positional
                    uuid_text(causation_id) if causation_id else None, occurred, recorded,
                    int(schema_version or 1), payload)


def _fast_envelope(data: dict[str, Any], event_type: str, text: str) -> Envelope:
    """Read the envelope straight from the JSON (the common, cheap path)."""
    if "event_id" not in data or "correlation_id" not in data or "occurred_at" not in data:
        raise _NeedsModel
    return _envelope(data["event_id"], data["correlation_id"], data["occurred_at"],
                     data.get("causation_id"), data.get("recorded_at"),
                     data.get("schema_version"), event_type, text)


def _model_envelope(model: type[Event], raw: bytes) -> Envelope:
    """Let the model derive missing envelope fields (e.g. a raw upstream signal)."""
    event = model.model_validate_json(raw)
    return Envelope(
        event_id=str(event.event_id),
        event_type=str(getattr(event, "event_type", model.__name__.lower())),
        correlation_id=str(event.correlation_id),
        causation_id=str(event.causation_id) if event.causation_id else None,
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at,
        schema_version=event.schema_version,
        payload=event.model_dump_json(),
    )


def _loads(raw: bytes, text: str) -> Any:
    """Parse JSON with pydantic-core's parser (about 3x json.loads); whatever it refuses
    (a lone surrogate escape, say) goes to json.loads, which decides what is not JSON."""
    try:
        return from_json(raw)
    except ValueError:
        return json.loads(text)


class _Head(msgspec.Struct):
    """The envelope fields, read without building the rest of the value (msgspec skips it
    in C): the common case, where every field is where and what the producer puts it."""

    event_id: str
    correlation_id: str
    occurred_at: str
    causation_id: str | None = None
    recorded_at: str | None = None
    schema_version: int | None = None
    event_type: str | None = None


_HEAD = msgspec.json.Decoder(_Head)
_HEAD_ERRORS = (msgspec.DecodeError, RecursionError)  # ValidationError is a DecodeError


def _head_envelope(record: EventRecord) -> Envelope | None:
    """The envelope through the head decoder, or None for whatever it does not take as it
    is (any other JSON, a missing field, a value of another type): decode_envelope's general
    path decides those. Where both take a value, they give the same envelope: both read the
    fields through _envelope."""
    try:
        head = _HEAD.decode(record.value)
    except _HEAD_ERRORS:
        return None
    record.value.decode("utf-8")  # raises on bytes that are not UTF-8, as the general path
    event_type = head.event_type or _type_name(model_for(record.topic, None))
    return _envelope(head.event_id, head.correlation_id, head.occurred_at, head.causation_id,
                     head.recorded_at, head.schema_version, event_type, record.value)


def decode_envelope(record: EventRecord) -> Envelope:
    """Decode a record's value; raises ValueError when it is not an event."""
    fast = _head_envelope(record)
    return fast if fast is not None else general_envelope(record)


def general_envelope(record: EventRecord) -> Envelope:
    """Any value: parsed whole, missing envelope fields derived by the topic's model."""
    text = record.value.decode("utf-8")
    data = _loads(record.value, text)
    if not isinstance(data, dict):
        raise ValueError("value is not a JSON object")
    declared = data.get("event_type")
    model = model_for(record.topic, declared if isinstance(declared, str) else None)
    event_type = declared if isinstance(declared, str) and declared else None
    try:
        return _fast_envelope(data, event_type or _type_name(model), text)
    except _NeedsModel:
        if model is None:
            raise ValueError("no event_id/correlation_id and no model for this topic") from None
        return _model_envelope(model, record.value)


def _type_name(model: type[Event] | None) -> str:
    if model is None:
        raise ValueError("value has no event_type and the topic has no model")
    return str(model.model_fields["event_type"].default)


def undecodable_envelope(record: EventRecord, error: str, when: datetime) -> Envelope:
    """Keep a bad value byte for byte, under an id derived from where it came from."""
    eid = str(derive_id(UNDECODABLE, record.topic, record.partition, record.offset))
    payload = json.dumps(
        {"error": error[:2000], "raw_base64": base64.b64encode(record.value).decode()},
        separators=(",", ":"),
    )
    return Envelope(eid, UNDECODABLE, eid, None, when, when, 0, payload)


def to_row(record: EventRecord, now: datetime) -> Row:
    """The events-table row of one record; never raises on a bad value."""
    ts = _safe_kafka_time(record)
    try:
        env = decode_envelope(record)
    except (ValueError, TypeError, OverflowError, RecursionError, ValidationError) as exc:
        # ValueError covers UnicodeDecodeError and JSON errors; OverflowError is int(1e999);
        # RecursionError is JSON nested too deep for the parser.
        env = undecodable_envelope(record, f"{type(exc).__name__}: {exc}", ts or now)
    return _row(record, now, ts, *env)


def _row(record: EventRecord, now: datetime, ts: datetime | None, event_id: str,
         event_type: str, correlation_id: str, causation_id: str | None, occurred: datetime,
         recorded: datetime, schema_version: int, payload: str | bytes) -> Row:
    """An events row (EVENT_COLUMNS), the duplicate flag not set."""
    key = record.key.decode("utf-8", "backslashreplace") if record.key is not None else None
    return (record.topic, record.partition, record.offset, event_id, event_type,
            correlation_id, causation_id, occurred, recorded, now, ts, schema_version, key,
            payload, 0)


def rows_of(records: list[EventRecord], now: datetime) -> list[Row]:
    """The events rows of records, each what to_row makes of it, made faster: each value read
    by the head decoder alone, and the ids' canonical form checked for all values at once (in
    Arrow). Whatever that way does not take as it is (an id to normalise, a missing field, a
    value the head decoder refuses) is made by to_row, which decides it."""
    rows = unchecked_rows(records, now)
    remake(rows, records, _not_canonical(rows))
    return rows


def unchecked_rows(records: list[EventRecord], now: datetime) -> list[Row]:
    """rows_of's rows before their ids are checked: a row's ids may still need to_row
    (`remake` the indexes `_not_canonical` or `bad_ids` give)."""
    return [row if row is not None else to_row(record, now)
            for record, row in zip(records, _quick_rows(records, now), strict=True)]


def remake(rows: list[Row], records: Sequence[EventRecord], bad: list[int]) -> int:
    """Make rows[i] again by to_row (at the time it was taken in) for each index in `bad`;
    returns how many of them are undecodable."""
    undecodable = 0
    for i in bad:
        rows[i] = to_row(records[i], rows[i][_INGESTED_AT])
        undecodable += rows[i][4] == UNDECODABLE
    return undecodable


# The id columns whose canonical form bad_ids checks (the causation id may be missing)
ID_COLUMNS = ("event_id", "correlation_id", "causation_id")
_ID_INDEXES = tuple(EVENT_COLUMNS.index(name) for name in ID_COLUMNS)
_INGESTED_AT = EVENT_COLUMNS.index("ingested_at")


def bad_ids(columns: Sequence[pa.Array | pa.ChunkedArray]) -> list[int]:
    """The indexes where an id of these text columns is not in its canonical form: what
    uuid_text would change or refuse (a missing one passes)."""
    every: Any = None
    for ids in columns:
        ok = pc.fill_null(pc.match_substring_regex(ids, _UUID_PATTERN), True)
        every = ok if every is None else pc.and_(every, ok)
    if every is None:
        return []
    return [int(i) for i in pc.indices_nonzero(pc.invert(every)).to_pylist()]


def _not_canonical(rows: list[Row]) -> list[int]:
    """bad_ids of rows (their id columns made into Arrow here)."""
    if not rows:
        return []
    return bad_ids([pa.array([row[column] for row in rows], _TEXT) for column in _ID_INDEXES])


def _quick_rows(records: list[EventRecord], now: datetime) -> list[Row | None]:
    """to_row's row of each record the head decoder takes, its ids left as given (rows_of
    checks them); None for anything else. to_row's steps (_head_envelope, _envelope, _row)
    in one loop: at 100,000 records a flush, each call saved is about 0.1 us per event."""
    rows: list[Row | None] = []
    decode, parse, append = _HEAD.decode, datetime.fromisoformat, rows.append
    for record in records:
        try:
            head = decode(record.value)
            value = record.value
            if not value.isascii():  # ASCII is UTF-8, and no str is made to say so
                value.decode("utf-8")  # raises on bytes that are not UTF-8, as the general path
            occurred = parse(head.occurred_at)
            if occurred.tzinfo is not UTC:
                occurred = _utc(head.occurred_at)
            recorded_at = head.recorded_at
            recorded = (occurred if not recorded_at or recorded_at == head.occurred_at
                        else _utc(recorded_at))
            topic, key, ts = record.topic, record.key, record.timestamp
            append((topic, record.partition, record.offset, head.event_id,
                    head.event_type or _type_name(model_for(topic, None)), head.correlation_id,
                    head.causation_id or None, occurred, recorded, now,
                    None if ts is None else _safe_kafka_time(record),
                    head.schema_version or 1,
                    None if key is None else key.decode("utf-8", "backslashreplace"), value, 0))
        except Exception:  # to_row makes this row, and decides what is wrong
            append(None)
    return rows


def _safe_kafka_time(record: EventRecord) -> datetime | None:
    """A producer-set timestamp out of datetime's range is dropped, not raised."""
    try:
        return kafka_time(record.timestamp)
    except (ValueError, OverflowError, OSError):
        return None


def unstorable_row(
    record: EventRecord, row: Row, error: StoreError, now: datetime
) -> Row:
    """The events row standing for a record ClickHouse refused: raw bytes, error, provenance.

    No view parses it (event_type 'unstorable', the value base64 inside the payload), its
    timestamps are the Kafka ones (or now), and it keeps the correlation id so a trace shows it.
    """
    ts = _safe_kafka_time(record)
    payload = json.dumps(
        {
            "error": str(error)[:2000],
            "clickhouse_code": error.clickhouse_code,
            "event_type": str(row[4]),
            "event_id": str(row[3]),
            "occurred_at": str(row[7]),
            "raw_base64": base64.b64encode(record.value).decode(),
        },
        separators=(",", ":"),
    )
    key = record.key.decode("utf-8", "backslashreplace") if record.key is not None else None
    eid = str(derive_id(UNSTORABLE, record.topic, record.partition, record.offset))
    when = ts or now
    return (record.topic, record.partition, record.offset, eid, UNSTORABLE, row[5], row[6],
            when, when, now, ts, 0, key, payload, 0)


def typed_rows(rows: list[Row], table: pa.Table | None, types: frozenset[str],
               *columns: int) -> tuple[list[int], list[pa.Array]]:
    """The indexes of the rows whose event type is one of `types`, and their values of each
    of EVENT_COLUMNS[column], as Arrow: read from the rows' Arrow table when there is one
    (`table` holds `rows` but the duplicate flag). A loop over a flush's rows costs a cache
    miss or more per row (each row and each of its values is an object of its own); an Arrow
    column is one array. Without a table (a value Arrow could not hold: rare), the rows."""
    if table is None:
        index = [i for i, row in enumerate(rows) if row[4] in types]
        return index, [pa.array([rows[i][c] for i in index]) for c in columns]
    picked = pc.indices_nonzero(pc.is_in(table.column(4), value_set=pa.array(sorted(types))))
    return picked.to_pylist(), [table.column(c).take(picked) for c in columns]


async def mark_duplicates(ch: ClickHouse, *parts: list[Row],
                          tables: Sequence[pa.Table | None] | None = None) -> None:
    """Flag each fill row whose event id is already stored, or earlier in `parts` (several
    batches' rows are checked as one sequence); a flagged row is replaced in its list by its
    flagged copy. `tables`, when given, are the parts' Arrow tables (typed_rows).

    The pre-aggregates (0006) sum only unflagged rows, so a fill stored twice (produced again
    at another offset, or re-inserted under another token) counts once. Whatever inserts
    events rows calls this first; the writer does, once per batch."""
    summed: list[tuple[list[Row], list[int], list[str]]] = []
    days: set[date] = set()
    with gc_paused():
        for rows, table in zip(parts, tables or [None] * len(parts), strict=True):
            index, (ids, occurred) = typed_rows(rows, table, SUMMED_TYPES, 3, 7)
            if index:
                summed.append((rows, index, ids.to_pylist()))
                days.update(pc.unique(pc.cast(occurred, pa.date32())).to_pylist())  # UTC days
        if not summed:
            return
        every = [eid for _, _, ids in summed for eid in ids]
        unique = sorted(set(every))
    token = f"dup-{uuid4().hex}"
    await insert_ids(ch, "flush_ids", ("token", "id"), token, unique)
    stored = await ch.query(_STORED_FILLS, {"days": sorted(days), "token": token})
    seen = {str(r["event_id"]) for r in stored}
    if not seen and len(unique) == len(every):
        return  # no fill stored before, none twice among these: nothing to flag
    with gc_paused():
        for rows, index, ids in summed:
            for i, eid in zip(index, ids, strict=True):
                if eid in seen:
                    row = rows[i]
                    rows[i] = (*row[:DUPLICATE], 1, *row[DUPLICATE + 1:])
                seen.add(eid)


async def insert_ids(
    ch: ClickHouse, table: str, columns: tuple[str, str], token: str, ids: list[str]
) -> None:
    """(token, id) rows, the ids as text (ClickHouse parses them), built as Arrow columns."""
    if not hasattr(ch, "insert_arrow"):  # a test's fake
        await ch.insert(table, [[token, i] for i in ids], columns)
        return
    data = pa.table({columns[0]: pa.array([token] * len(ids), _TEXT),
                     columns[1]: pa.array(ids, _TEXT)})
    await ch.insert_arrow(table, data)


async def pnl_sums(ch: ClickHouse, token: str, recent: str | None = None, since: int = 0
                   ) -> PnlSums:
    """pnl_daily's rows for the round trips whose ids are stored in pnl_ids under `token`
    (read from every part of pnl_rollup), and, given `recent`, those under `recent` and not
    `token` (read from the parts written after block `since`: 0011_pnl_recent.sql).

    Read by store/sql/pnl_daily_read.sql, which plans in a fraction of the views' time; when
    a round trip has fills of several symbols, read again through the views, which split it
    per symbol (pnl_daily_of, pnl_daily_since)."""
    params = {"token": token, "recent": recent or "", "since": since if recent else 0}
    rows = await ch.query(_PNL_READ, params)
    if any(r["several"] for r in rows):
        rows = (await ch.query(_PNL_OF, {"token": token}) if recent is None
                else await ch.query(_PNL_SINCE, params))
    return {
        (r["day"], str(r["strategy_id"]), int(r["closed"])): tuple(r[c] for c in PNL_SUMS)
        for r in rows
    }


_NO_SUMS = (0, 0, 0, Decimal(0), Decimal(0), Decimal(0), 0)


def pnl_delta(before: PnlSums, after: PnlSums) -> list[list[Any]]:
    """after - before per (day, strategy, closed), exactly; keys that did not move left out."""
    rows: list[list[Any]] = []
    with localcontext() as ctx:
        ctx.prec = 100  # Decimal(76, 30) sums; the default 28 digits would round them
        for key in sorted(before.keys() | after.keys()):
            diff = [a - b for a, b in zip(after.get(key, _NO_SUMS), before.get(key, _NO_SUMS),
                                          strict=True)]
            if any(diff):
                rows.append([*key, *diff])
    return rows


async def rebuild_pnl_daily(ch: ClickHouse) -> None:
    """Make pnl_daily equal pnl_daily_all again (inserts the difference; see _REPAIR_PNL)."""
    await ch.command(_REPAIR_PNL)


@dataclass
class _PnlChange:
    """One flush's change of pnl_daily: its ids and token, those of its ids pnl_rollup held
    before (under a token of their own), their sums before, then the rows to insert (None
    until the sums after are read)."""

    token: str
    ids: list[str]
    old_token: str
    old: list[str]
    # pnl_rollup's highest block number before the flush's inserts, when read by part
    # (pnl_daily_since); None: every id read from every part (pnl_daily_of)
    since: int | None
    before: PnlSums
    rows: list[list[Any]] | None = None
    # the ids are in pnl_ids (written again before a retried read: they expire)
    ids_stored: bool = True


class PnlDaily:
    """Keeps pnl_daily equal to pnl_daily_all across one writer's flushes (0008_pnl_daily.sql).

    A flush reads the sums of its signals' and fills' correlation ids before its inserts and
    after them, and inserts the difference under a token of its own. A difference it could
    not read or insert is kept, its rows fixed once read, and goes first at the next flush,
    before anything else is stored: no other change of those ids falls between its two reads.
    The first flush repairs the table first: a process that died between an events insert and
    its difference left that difference out. Exact while one writer sees every signal and fill
    of a correlation id (the audit topics are keyed by it: see README, SQL analytics).

    A flush of `by_part_from` round trips or more reads only what it can change
    (pnl_daily_since, 0011_pnl_recent.sql): one read of pnl_rollup's correlation_id column
    tells the ids it holds rows of (old); the sums before are those of the old ids alone (the
    others have none), and the sums after read the other ids from the parts written since the
    flush began only. A bulk flush's round trips are mostly new, so neither read grows with the
    table. A smaller flush reads its ids from every part, before and after (pnl_daily_of): the
    primary key narrows a few ids to a few granules."""

    def __init__(self, clickhouse: ClickHouse, by_part_from: int = PNL_BY_PART_FROM) -> None:
        self.ch = clickhouse
        self.by_part_from = by_part_from
        self.repaired = False
        self._pending: deque[_PnlChange] = deque()
        self._tag = uuid4().hex
        self._seq = 0

    async def settle(self) -> None:
        """Repair once, then insert what earlier flushes left; raises StoreError."""
        if not self.repaired:
            await rebuild_pnl_daily(self.ch)
            self.repaired = True
        while self._pending:
            change = self._pending[0]
            if change.rows is None:
                if not change.ids_stored:
                    await self._store_ids(change.token, change.ids)
                    await self._store_ids(change.old_token, change.old)
                change.ids_stored = False  # until this read succeeds, a retry writes them
                after = (await pnl_sums(self.ch, change.token) if change.since is None
                         else await pnl_sums(self.ch, change.old_token, change.token,
                                             change.since))
                change.rows = pnl_delta(change.before, after)
            if change.rows:
                await self.ch.insert("pnl_daily", change.rows, PNL_COLUMNS,
                                     dedup_token=change.token)
            self._pending.popleft()

    async def begin(self, batches: list[Batch]) -> None:
        """Read the sums of the batches' round trips before they are stored."""
        with gc_paused():
            ids = sorted({str(cid) for b in batches
                          for cid in pc.unique(typed_rows(b.rows, b.table, PNL_TYPES, 5)[1][0])
                          .to_pylist()})
        if not ids:
            return
        self._seq += 1
        token = f"pnl-{self._tag}-{self._seq}"
        if len(ids) < self.by_part_from:
            await self._store_ids(token, ids)
            self._pending.append(_PnlChange(token, ids, "", [], None,
                                            await pnl_sums(self.ch, token)))
            return
        found = await self.ch.query(_ROLLUP_BLOCK)
        since = int(found[0]["n"] or 0) if found else 0
        await self._store_ids(token, ids)
        old = sorted(str(r["correlation_id"])
                     for r in await self.ch.query(_ROLLUP_IDS, {"token": token}))
        change = _PnlChange(token, ids, f"{token}-old" if old else "", old, since, {})
        if old:
            await self._store_ids(change.old_token, old)
            change.before = await pnl_sums(self.ch, change.old_token)
        self._pending.append(change)

    async def _store_ids(self, token: str, ids: list[str]) -> None:
        if ids:
            await insert_ids(self.ch, "pnl_ids", PNL_IDS_COLUMNS, token, ids)


@dataclass
class Batch:
    """A sealed batch: once tried, its rows and token never change, so retries dedup."""

    topic: str
    partition: int
    rows: list[Row]
    created_at: float
    records: list[EventRecord] = field(default_factory=list)
    unstorable: bool = False
    # duplicate flags set (before the first try, so a retry sends the same rows; the halves
    # of a refused batch are checked again: some of its fills may have reached the sums)
    checked: bool = False
    # the rows as Arrow, all but the duplicate flag (made when they were added), or None
    table: pa.Table | None = None

    @property
    def first_offset(self) -> int:
        return int(self.rows[0][2])

    @property
    def last_offset(self) -> int:
        return int(self.rows[-1][2])

    @property
    def token(self) -> str:
        """The insert_deduplication_token: same records, same token.

        A half of a refused batch gets the token of its own offset range, as if it had
        been sealed that way; an unstorable row gets its own namespace, because its
        original one-row insert may have been committed (then deleted) under the plain one.
        """
        base = f"{self.topic}-{self.partition}-{self.first_offset}-{self.last_offset}"
        return f"{base}-{UNSTORABLE}" if self.unstorable else base

    def halves(self) -> tuple[Batch, Batch]:
        """Split a refused batch in two, in offset order."""
        mid = len(self.rows) // 2
        table = self.table
        left = Batch(
            self.topic, self.partition, self.rows[:mid], self.created_at, self.records[:mid],
            table=table.slice(0, mid) if table is not None else None,
        )
        right = Batch(
            self.topic, self.partition, self.rows[mid:], self.created_at, self.records[mid:],
            table=table.slice(mid) if table is not None else None,
        )
        return left, right


@dataclass
class _Buffer:
    records: list[EventRecord] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)  # rows[i] is records[i]'s row
    # rows[:table.num_rows] as Arrow but the duplicate flag (made on add, completed at seal);
    # a row's ids are checked when its part of the table is made (or on add, without one)
    table: pa.Table | None = None
    no_table: bool = False  # a part of rows could not be made: they are encoded at insert
    since: float | None = None
    sealed: deque[Batch] = field(default_factory=deque)
    last_seen: int = -1


@dataclass(frozen=True)
class WriterStats:
    """How far behind the sink is, for metrics and health checks."""

    buffered_rows: int
    oldest_buffered_seconds: float
    last_flush_seconds: float
    rows_written: int
    batches_written: int
    skipped_duplicates: int
    undecodable: int
    unstorable: int
    last_error: str | None


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch's rows are made: a row makes no cycle, and
    the collections that tens of thousands of new lists set off cost a fifth of the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def body_table(rows: list[Row]) -> pa.Table | None:
    """The rows as Arrow, all columns but the duplicate flag; None when a value does not fit
    (the insert then encodes the rows itself, and a refused row is isolated as always)."""
    try:
        return arrow_table(rows, BODY_COLUMNS, ARROW_TYPES["events"])
    except ENCODE_ERRORS:
        return None


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and exc.transient


class AuditWriter:
    """Buffers records per (topic, partition) and writes them exactly once to `events`.

    A flush stores the head batch of every partition in one insert (each insert runs every
    materialized view once, so one insert per partition made a flush's cost grow with the
    partitions it touched), then what is left partition by partition."""

    def __init__(
        self,
        clickhouse: ClickHouse,
        max_batch_rows: int = 10_000,
        max_batch_seconds: float = 1.0,
        *,
        retry_attempts: int = 5,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        pnl_daily: bool | None = None,
        pnl_by_part_from: int = PNL_BY_PART_FROM,
    ) -> None:
        self.ch = clickhouse
        # pnl_daily kept by default on a real ClickHouse (a test's fake has no such table)
        keep = isinstance(clickhouse, ClickHouse) if pnl_daily is None else pnl_daily
        self._pnl = PnlDaily(clickhouse, pnl_by_part_from) if keep else None
        # rows made into Arrow when added (decoding's other half, off the flush's path)
        self._arrow = hasattr(clickhouse, "insert_arrow")
        self.max_batch_rows = max_batch_rows
        self.max_batch_seconds = max_batch_seconds
        self._retry_attempts = retry_attempts
        self._wait = wait_exponential(multiplier=retry_initial_seconds, max=retry_max_seconds)
        self._clock = clock
        self._buffers: dict[Key, _Buffer] = {}
        self._stored: dict[Key, int] = {}
        self._lock = asyncio.Lock()
        self._last_flush = 0.0
        self._written = 0
        self._batches = 0
        self._skipped = 0
        self._undecodable = 0
        self._unstorable = 0
        self._last_error: str | None = None
        self._group: list[tuple[Key, Batch]] | None = None  # tried together, not yet stored

    def add(self, record: EventRecord) -> None:
        """Buffer one record; an offset at or below one already seen is a redelivery."""
        self.add_many((record,))

    def add_many(self, records: Iterable[EventRecord]) -> None:
        """Buffer records, each decoded to its row now (a flush then only splits them into
        batches, and inserts their Arrow table); an offset at or below one already seen is a
        redelivery."""
        for buf in self._add_rows(records).values():
            self._extend_table(buf)

    async def add_many_yielding(self, records: Iterable[EventRecord], slice_rows: int = 3000
                                ) -> None:
        """add_many, a slice at a time, letting the event loop run between slices: a flush in
        progress keeps ClickHouse busy while the next records are decoded. The Arrow tables
        are made at the end, one per partition (made per slice they cost a third more)."""
        it = iter(records)
        touched: dict[Key, _Buffer] = {}
        while chunk := list(itertools.islice(it, slice_rows)):
            touched.update(self._add_rows(chunk))
            await asyncio.sleep(0)
        for buf in touched.values():
            self._extend_table(buf)
            await asyncio.sleep(0)

    def _add_rows(self, records: Iterable[EventRecord]) -> dict[Key, _Buffer]:
        """Decode records into their buffers' rows; returns the buffers they went to."""
        # per (topic, partition) touched: its buffer, and the highest offset taken or stored
        floors: dict[Key, list[Any]] = {}
        taken: list[EventRecord] = []
        into: list[_Buffer] = []
        with gc_paused():
            for record in records:
                key = (record.topic, record.partition)
                floor = floors.get(key)
                if floor is None:
                    buf = self._buffers.get(key)
                    if buf is None:
                        buf = self._buffers[key] = _Buffer()
                    floor = floors[key] = [buf, max(buf.last_seen, self._stored.get(key, -1))]
                if record.offset <= floor[1]:
                    self._skipped += 1
                    continue
                buf = floor[0]
                floor[1] = buf.last_seen = record.offset
                if not buf.records and buf.since is None:
                    buf.since = self._clock()
                buf.records.append(record)
                taken.append(record)
                into.append(buf)
            rows = unchecked_rows(taken, datetime.now(UTC))
            if not self._arrow or any(buf.no_table for buf in into):
                # rows no Arrow table will be made of (where _extend_table checks the ids)
                remake(rows, taken, _not_canonical(rows))  # counted below
            for buf, row in zip(into, rows, strict=True):
                buf.rows.append(row)
            self._undecodable += sum(1 for row in rows if row[4] == UNDECODABLE)
        return {key: buf for key, (buf, _) in floors.items()}

    def _extend_table(self, buf: _Buffer) -> None:
        """Make the Arrow table of the buffer's rows that have none yet (none at all once a
        part cannot be made: those rows are encoded at insert, and a refused one isolated),
        remaking by to_row first any row with an id not in its canonical form."""
        if not self._arrow or buf.no_table:
            return
        start = buf.table.num_rows if buf.table is not None else 0
        if start == len(buf.rows):
            return
        with gc_paused():
            rows = buf.rows[start:]
            new = body_table(rows)
            # the ids' canonical form, checked on the table's own columns (rows_of's check
            # made them into Arrow a second time)
            bad = _not_canonical(rows) if new is None else bad_ids([new[c] for c in ID_COLUMNS])
            if bad:
                self._undecodable += remake(rows, buf.records[start:], bad)
                buf.rows[start:] = rows
                new = body_table(rows) if new is not None else None
        if new is None:
            buf.table, buf.no_table = None, True
        else:
            buf.table = new if buf.table is None else pa.concat_tables([buf.table, new])

    def forget(self, keys: list[Key]) -> None:
        """On partition (re)assignment: re-read stored offsets, another worker may have written."""
        for key in keys:
            self._stored.pop(key, None)
            buf = self._buffers.get(key)
            if buf is not None and not buf.records and not buf.sealed:
                buf.last_seen = -1

    @property
    def buffered_rows(self) -> int:
        """Rows not yet confirmed stored."""
        return sum(
            len(b.records) + sum(len(x.rows) for x in b.sealed) for b in self._buffers.values()
        )

    def _oldest_age(self) -> float:
        starts = [b.since for b in self._buffers.values() if b.since is not None]
        starts += [x.created_at for b in self._buffers.values() for x in b.sealed]
        return max(0.0, self._clock() - min(starts)) if starts else 0.0

    def should_flush(self) -> bool:
        """True when a batch is full or the oldest buffered row is old enough."""
        if self.buffered_rows >= self.max_batch_rows:
            return True
        return self.buffered_rows > 0 and self._oldest_age() >= self.max_batch_seconds

    @property
    def stats(self) -> WriterStats:
        """Buffered rows, their age, the last flush's duration and running totals."""
        return WriterStats(
            buffered_rows=self.buffered_rows,
            oldest_buffered_seconds=self._oldest_age(),
            last_flush_seconds=self._last_flush,
            rows_written=self._written,
            batches_written=self._batches,
            skipped_duplicates=self._skipped,
            undecodable=self._undecodable,
            unstorable=self._unstorable,
            last_error=self._last_error,
        )

    lag = stats

    async def _load_stored_offsets(self) -> None:
        """Learn, once per partition, the highest offset the table already holds."""
        unknown = [k for k, b in self._buffers.items() if k not in self._stored and b.records]
        if not unknown:
            return
        rows = await self.ch.query(
            "SELECT topic, partition, max(offset) AS hwm FROM events "
            "WHERE topic IN {topics:Array(String)} GROUP BY topic, partition",
            {"topics": sorted({t for t, _ in unknown})},
        )
        found = {(str(r["topic"]), int(r["partition"])): int(r["hwm"]) for r in rows}
        for key in unknown:
            self._stored[key] = found.get(key, -1)

    def _seal(self, key: Key, buf: _Buffer, upto: int) -> None:
        """Turn the first `upto` buffered records into fixed batches, dropping offsets already
        stored; records added after the flush began wait for the next one."""
        self._extend_table(buf)  # rows added by add_many_yielding still being made
        floor = self._stored.get(key, -1)
        # offsets rise (add_many takes only higher ones): those stored are a head
        stored = bisect_right(buf.records, floor, hi=upto, key=attrgetter("offset"))
        self._skipped += stored
        records, rows = buf.records[stored:upto], buf.rows[stored:upto]
        table = buf.table.slice(stored, upto - stored) if buf.table is not None else None
        since = buf.since if buf.since is not None else self._clock()
        del buf.records[:upto], buf.rows[:upto]
        buf.table = buf.table.slice(upto) if buf.table is not None and buf.rows else None
        buf.no_table = buf.no_table and bool(buf.rows)
        buf.since = self._clock() if buf.records else None
        for start in range(0, len(records), self.max_batch_rows):
            end = start + self.max_batch_rows
            part = table.slice(start, self.max_batch_rows) if table is not None else None
            buf.sealed.append(
                Batch(key[0], key[1], rows[start:end], since, records[start:end], table=part)
            )

    async def _insert(self, batch: Batch) -> None:
        """Insert one batch, retrying transient errors with the same token."""
        await self._insert_batches([batch], batch.token)

    async def _insert_batches(self, batches: list[Batch], token: str) -> None:
        """Insert batches as one, retrying transient errors with the same token: their Arrow
        tables made on add and the duplicate flags, or, when a table is missing, the rows."""
        tables = [b.table for b in batches]
        data: pa.Table | None = None
        if all(t is not None for t in tables):  # never without insert_arrow (_extend_table)
            flags = pa.array([row[DUPLICATE] for b in batches for row in b.rows], pa.uint8())
            data = pa.concat_tables(tables).append_column("duplicate", flags)
        rows = [row for b in batches for row in b.rows] if data is None else []
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._retry_attempts),
            wait=self._wait,
            retry=retry_if_exception(_transient),
            reraise=True,
        ):
            with attempt:
                if data is not None:
                    await self.ch.insert_arrow("events", data, dedup_token=token)
                else:
                    await self.ch.insert("events", rows, EVENT_COLUMNS, dedup_token=token)

    async def _mark_duplicates(self, batch: Batch) -> None:
        """Flag the batch's copies of stored fills, once, before its first insert attempt."""
        await mark_duplicates(self.ch, batch.rows, tables=[batch.table])
        batch.checked = True

    async def _drain(self, key: Key, buf: _Buffer) -> int | None:
        """Write a partition's batches in order; stop at the first failure."""
        last: int | None = None
        while buf.sealed:
            batch = buf.sealed[0]
            try:
                if not batch.checked:
                    await self._mark_duplicates(batch)
                await self._insert(batch)
            except StoreDataError as exc:
                if batch.unstorable or not batch.records:
                    raise  # even the stand-in row is refused: a schema bug, stall loudly
                await self._isolate(buf, exc)
                continue
            buf.sealed.popleft()
            self._stored_batch(key, batch)
            last = batch.last_offset
        return last

    async def _drain_together(self, stored: dict[Key, int]) -> None:
        """The head batch of every partition in one insert, while two or more have one: every
        insert runs every materialized view once, whatever its size, so a flush of many
        partitions' small batches costs one round of views, not one per partition.

        A group is retried as it was (same batches, same token: a retry after an insert whose
        outcome was lost is deduplicated) until it is stored; one the engine refuses is undone
        and its batches go through their partitions' own inserts, which isolate the refused
        rows."""
        while True:
            # Never a batch already tried alone: its own token must stay the one it is
            # retried under (it may be stored already).
            group = self._group or [(k, b.sealed[0]) for k, b in self._buffers.items()
                                    if b.sealed and not b.sealed[0].checked]
            if len(group) < 2:
                return
            if self._group is None:
                # across the group's partitions too
                await mark_duplicates(self.ch, *(b.rows for _, b in group),
                                      tables=[b.table for _, b in group])
                for _, batch in group:
                    batch.checked = True
                self._group = group
            try:
                token = "+".join(b.token for _, b in group)
                await self._insert_batches([b for _, b in group], token)
            except StoreDataError:
                for _, batch in group:
                    await self._undo(batch)
                self._group = None
                return  # the partitions' own inserts (after this) isolate the refused rows
            self._group = None
            for key, batch in group:
                self._buffers[key].sealed.popleft()
                self._stored_batch(key, batch)
                stored[key] = batch.last_offset

    def _stored_batch(self, key: Key, batch: Batch) -> None:
        self._stored[key] = max(self._stored.get(key, -1), batch.last_offset)
        self._written += len(batch.rows)
        self._batches += 1
        self._unstorable += len(batch.rows) if batch.unstorable else 0

    async def _isolate(self, buf: _Buffer, error: StoreDataError) -> None:
        """Replace the refused head batch by its halves, or a lone row by its stand-in.

        The queue changes only after the undo succeeded: until then a retry re-sends the
        same batch under the same token. Halves go in offset order, so what is stored is
        always a prefix and a restarted writer resumes after the highest stored offset.
        """
        batch = buf.sealed[0]
        await self._undo(batch)
        buf.sealed.popleft()
        if len(batch.rows) > 1:
            left, right = batch.halves()
            buf.sealed.appendleft(right)
            buf.sealed.appendleft(left)
            return
        record = batch.records[0]
        log.warning(
            "audit: %s[%d]@%d (%s) cannot be stored, kept as %s: %s",
            record.topic,
            record.partition,
            record.offset,
            batch.rows[0][4],
            UNSTORABLE,
            error,
        )
        row = unstorable_row(record, batch.rows[0], error, datetime.now(UTC))
        buf.sealed.appendleft(
            Batch(batch.topic, batch.partition, [row], batch.created_at, [record], True)
        )

    async def _undo(self, batch: Batch) -> None:
        """Remove what a refused insert left in `events`.

        ClickHouse writes the `events` part before the materialized views run, so a view
        that throws fails the insert with the rows already in `events` (not atomic across
        views). Re-inserting halves under new tokens would then store them twice.
        """
        params = {
            "topic": batch.topic,
            "partition": batch.partition,
            "first": batch.first_offset,
            "last": batch.last_offset,
        }
        found = await self.ch.query(_COUNT_RANGE, params)
        if found and int(found[0]["n"]):
            await self.ch.command(_DELETE_RANGE, params)

    def flush(self) -> Coroutine[Any, Any, dict[Key, int]]:
        """Store everything buffered when called (records added while it runs wait for the
        next flush); return the last stored offset per (topic, partition)."""
        return self._flush({key: len(buf.records) for key, buf in self._buffers.items()})

    async def _flush(self, marks: dict[Key, int]) -> dict[Key, int]:
        async with self._lock:
            started = self._clock()
            try:
                await self._load_stored_offsets()
            except StoreError as exc:
                error = FlushError(f"cannot read stored offsets: {exc}", {})
                error.transient = exc.transient
                raise error from exc
            for key, upto in marks.items():
                if upto:
                    self._seal(key, self._buffers[key], upto)
            await self._pnl_begin()
            stored, failures = await self._drain_all()
            failures += await self._pnl_end()
            self._last_flush = self._clock() - started
        if failures:
            self._last_error = "; ".join(f"{k[0]}[{k[1]}]: {e}" for k, e in failures)
            error = FlushError(f"flush incomplete: {self._last_error}", stored)
            error.transient = all(e.transient for _, e in failures)
            raise error
        self._last_error = None
        return stored

    async def _pnl_begin(self) -> None:
        """Settle pnl_daily and read its sums for the sealed batches; nothing stored on error."""
        if self._pnl is None:
            return
        try:
            await self._pnl.settle()
            await self._pnl.begin([b for buf in self._buffers.values() for b in buf.sealed])
        except StoreError as exc:
            error = FlushError(f"cannot keep pnl_daily: {exc}", {})
            error.transient = exc.transient
            raise error from exc

    async def _pnl_end(self) -> list[tuple[Key, StoreError]]:
        """Insert this flush's change of pnl_daily (kept for the next flush on error)."""
        if self._pnl is None:
            return []
        try:
            await self._pnl.settle()
        except StoreError as exc:
            return [(("pnl_daily", 0), exc)]
        return []

    async def _drain_all(self) -> tuple[dict[Key, int], list[tuple[Key, StoreError]]]:
        stored: dict[Key, int] = {}
        failures: list[tuple[Key, StoreError]] = []
        try:
            await self._drain_together(stored)
        except StoreError as exc:  # still failing after the retries: the same group next time
            return stored, [(key, exc) for key, buf in self._buffers.items() if buf.sealed]
        for key, buf in list(self._buffers.items()):  # add() may create keys meanwhile
            try:
                last = await self._drain(key, buf)
            except StoreError as exc:
                failures.append((key, exc))
                continue
            if last is not None:
                stored[key] = last
        return stored, failures
