"""Store logic without an engine: DSN parsing, error mapping, migrations, writer, trace order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    DataError,
    OperationalError,
    StreamFailureError,
)
from pydantic_core import from_json

from schemas.ids import derive_id
from store.client import error_code, parse_dsn, translate
from store.exceptions import (
    FlushError,
    StoreBusyError,
    StoreConfigError,
    StoreDataError,
    StoreError,
    StoreQueryError,
    StoreUnavailableError,
)
from store.migrate import load_migrations
from store.queries import TraceStep, Where, causal_order
from store.synthetic import trading_day
from store.writer import UNDECODABLE, AuditWriter, EventRecord, to_row

NOW = datetime(2026, 3, 2, tzinfo=UTC)


class FakeClickHouse:
    """Records inserts; fails the first `fail` attempts with the given error."""

    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.fail = fail
        self.error = error or StoreUnavailableError("down")
        self.inserts: list[tuple[str, int, str | None]] = []
        self.stored: dict[str, list[list[Any]]] = {}
        self.hwm: list[dict[str, Any]] = []

    async def query(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return self.hwm

    async def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        dedup_token: str | None = None,
    ) -> int:
        self.inserts.append((table, len(rows), dedup_token))
        if self.fail > 0:
            self.fail -= 1
            raise self.error
        if dedup_token not in self.stored:
            self.stored[str(dedup_token)] = [list(r) for r in rows]
        return len(rows)


def rec(offset: int, value: bytes = b"{}", topic: str = "signals", part: int = 0) -> EventRecord:
    return EventRecord(topic, part, offset, b"k", value, 1772400000.0)


def good(offset: int) -> EventRecord:
    event = trading_day().events[0]
    return rec(offset, event.model_dump_json().encode())


def writer(ch: FakeClickHouse, rows: int = 100) -> AuditWriter:
    return AuditWriter(
        ch,  # type: ignore[arg-type]
        rows,
        1.0,
        retry_attempts=3,
        retry_initial_seconds=0.001,
        retry_max_seconds=0.002,
    )


@pytest.mark.parametrize(
    ("dsn", "kind"),
    [
        ("chdb:///tmp/x", "chdb-path"),
        ("chdb://memory", "chdb-memory"),
        ("http://h:8123", "http"),
        ("https://h:8443/db", "http"),
    ],
)
def test_parse_dsn_accepts_supported_forms(dsn: str, kind: str) -> None:
    assert parse_dsn(dsn)[0] == kind


@pytest.mark.parametrize("dsn", ["chdb://relative/path", "mysql://h", "http://"])
def test_parse_dsn_rejects_unusable(dsn: str) -> None:
    with pytest.raises(StoreConfigError):
        parse_dsn(dsn)


def test_translate_marks_outages_transient() -> None:
    assert translate(OperationalError("conn refused"), "q").transient
    assert translate(DatabaseError("Code: 159. Timeout exceeded"), "q").transient
    err = translate(DatabaseError("Code: 62. Syntax error"), "q")
    assert isinstance(err, StoreQueryError)
    assert not isinstance(err, StoreDataError)
    assert not err.transient


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OperationalError("Error executing HTTP request"), StoreUnavailableError),
        (ConnectionResetError("reset by peer"), StoreUnavailableError),
        (DatabaseError("Code: 209. Timeout", code=209), StoreUnavailableError),
        (DatabaseError("Code: 252. Too many parts (300). Merges are slow"), StoreBusyError),
        (DatabaseError("Code: 241. Query memory limit exceeded"), StoreBusyError),
        (DatabaseError("x", code=745, name="SERVER_OVERLOADED"), StoreBusyError),
        (
            DatabaseError("Code: 69. Decimal value is too big (ARGUMENT_OUT_OF_BOUND)"),
            StoreDataError,
        ),
        (DatabaseError("Code: 407. Decimal convert overflow"), StoreDataError),
        (DatabaseError("Code: 6. Cannot parse string 'abc' as Decimal(18, 6)"), StoreDataError),
        (DatabaseError("x", code=41), StoreDataError),  # the HTTP header's code
        (DatabaseError("Code: 252. Too many partitions for single INSERT block"), StoreDataError),
        (DataError("Unable to create native array for column `schema_version`"), StoreDataError),
        (StreamFailureError("Code: 60. Unknown table", code=60), StoreQueryError),
        (DatabaseError("Code: 60. Unknown table expression identifier 'events'"), StoreQueryError),
    ],
)
def test_translate_classifies_transient_data_and_statement_errors(
    exc: Exception, kind: type[StoreError]
) -> None:
    err = translate(exc, "insert into events")
    assert type(err) is kind
    assert err.transient == issubclass(kind, StoreUnavailableError)
    assert err.clickhouse_code == error_code(exc)


def test_migrations_are_numbered_and_split() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert migrations[0].version == 1
    verbs = ("CREATE", "DROP VIEW IF EXISTS", "ALTER TABLE", "TRUNCATE TABLE IF EXISTS", "INSERT")
    assert all(s.upper().startswith(verbs) for m in migrations for s in m.statements)
    assert all(m.statements for m in migrations)


def test_valid_event_row_keeps_envelope() -> None:
    event = trading_day().events[1]
    row = to_row(rec(5, event.model_dump_json().encode(), "approvals"), NOW)
    assert row[3] == str(event.event_id)  # ids travel as canonical text
    assert row[4] == "approval"
    assert row[6] == str(event.causation_id)
    assert row[7] == event.occurred_at
    assert row[10] == datetime.fromtimestamp(1772400000, UTC)


def test_ids_are_stored_in_canonical_form_whatever_their_spelling() -> None:
    event = trading_day().events[0]
    data = json.loads(event.model_dump_json())
    data["event_id"] = "{" + str(event.event_id).upper() + "}"
    data["correlation_id"] = event.correlation_id.hex  # no hyphens
    row = to_row(rec(1, json.dumps(data).encode()), NOW)
    assert row[3] == str(event.event_id)
    assert row[5] == str(event.correlation_id)
    data["event_id"] = "not-a-uuid"
    assert to_row(rec(2, json.dumps(data).encode()), NOW)[4] == UNDECODABLE


def test_json_the_fast_parser_refuses_is_read_as_json_loads_reads_it() -> None:
    event = trading_day().events[0]
    data = json.loads(event.model_dump_json())
    value = json.dumps(data)[:-1].encode() + b', "note": "\\ud800"}'
    assert json.loads(value)["note"] == "\ud800"  # a lone surrogate escape: valid for json
    with pytest.raises(ValueError, match="hex escape"):
        from_json(value)  # ... refused by pydantic-core's parser
    row = to_row(rec(3, value), NOW)
    assert row[4] == "signal"
    assert row[13] == value.decode()


def test_raw_upstream_signal_gets_derived_envelope() -> None:
    raw = {
        "id": "up-1",
        "symbol": "AAPL",
        "signal_type": "BUY",
        "entry_price": 150,
        "stop_loss": 145,
        "strategy_id": "s",
    }
    row = to_row(rec(0, json.dumps(raw).encode()), NOW)
    assert row[4] == "signal"
    assert row[3] == str(derive_id("signal", "up-1"))


@pytest.mark.parametrize("value", [b"\xff\xfe", b"not json", b"[1,2]", b'{"event_type":"fill"}'])
def test_undecodable_value_is_kept_not_lost(value: bytes) -> None:
    row = to_row(rec(7, value, "fills"), NOW)
    assert row[4] == UNDECODABLE
    assert row[3] == str(derive_id(UNDECODABLE, "fills", 0, 7))
    payload = json.loads(row[13])
    import base64

    assert base64.b64decode(payload["raw_base64"]) == value


async def test_flush_returns_last_offsets_and_tokens() -> None:
    ch = FakeClickHouse()
    w = writer(ch, rows=2)
    for off in range(5):
        w.add(good(off))
    assert w.should_flush()
    assert await w.flush() == {("signals", 0): 4}
    assert [t for _, _, t in ch.inserts] == ["signals-0-0-1", "signals-0-2-3", "signals-0-4-4"]
    assert w.stats.rows_written == 5
    assert w.stats.buffered_rows == 0


async def test_transient_failure_retries_with_same_token() -> None:
    ch = FakeClickHouse(fail=2)
    w = writer(ch)
    for off in range(3):
        w.add(good(off))
    assert await w.flush() == {("signals", 0): 2}
    assert {t for _, _, t in ch.inserts} == {"signals-0-0-2"}
    assert len(ch.inserts) == 3


async def test_failed_batch_stays_sealed_and_offsets_not_returned() -> None:
    ch = FakeClickHouse(fail=10)
    w = writer(ch)
    for off in range(3):
        w.add(good(off))
    with pytest.raises(FlushError) as info:
        await w.flush()
    assert info.value.stored == {}
    assert info.value.transient
    w.add(good(3))  # arrives while the store is down: must not change the sealed batch
    ch.fail = 0
    assert await w.flush() == {("signals", 0): 3}
    assert [t for _, _, t in ch.inserts][-2:] == ["signals-0-0-2", "signals-0-3-3"]


async def test_permanent_error_is_not_retried() -> None:
    ch = FakeClickHouse(fail=1, error=StoreQueryError("bad"))
    w = writer(ch)
    w.add(good(0))
    with pytest.raises(FlushError) as info:
        await w.flush()
    assert not info.value.transient
    assert len(ch.inserts) == 1


async def test_restarted_writer_skips_offsets_already_stored() -> None:
    ch = FakeClickHouse()
    ch.hwm = [{"topic": "signals", "partition": 0, "hwm": 4}]
    w = writer(ch)
    for off in range(3, 8):
        w.add(good(off))
    assert await w.flush() == {("signals", 0): 7}
    assert ch.inserts == [("events", 3, "signals-0-5-7")]


def test_redelivered_offset_is_skipped() -> None:
    w = writer(FakeClickHouse())
    w.add(good(1))
    w.add(good(1))
    assert w.buffered_rows == 1
    assert w.stats.skipped_duplicates == 1


def test_should_flush_by_age() -> None:
    clock = [0.0]
    w = AuditWriter(FakeClickHouse(), 100, 1.0, clock=lambda: clock[0])  # type: ignore[arg-type]
    w.add(good(0))
    assert not w.should_flush()
    clock[0] = 1.5
    assert w.should_flush()
    assert w.stats.oldest_buffered_seconds == 1.5


def _step(eid: Any, cause: Any, at: datetime) -> TraceStep:
    return TraceStep(
        event_id=eid,
        event_type="x",
        causation_id=cause,
        occurred_at=at,
        recorded_at=at,
        topic="t",
        partition=0,
        offset=0,
    )


def test_causal_order_puts_cause_before_effect_even_with_skewed_clocks() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    steps = [
        _step(c, b, NOW),
        _step(b, a, NOW + timedelta(seconds=5)),
        _step(a, None, NOW + timedelta(seconds=1)),
    ]
    ordered = causal_order(steps)
    assert [s.event_id for s in ordered] == [a, b, c]
    assert [s.depth for s in ordered] == [0, 1, 2]


def test_where_binds_values_as_parameters() -> None:
    w = (
        Where()
        .add("symbol = {symbol:String}", symbol="x'; DROP TABLE events --")
        .add("a = {a:String}", a=None)
    )
    assert w.sql == "WHERE symbol = {symbol:String}"
    assert w.params == {"symbol": "x'; DROP TABLE events --"}


def test_second_chdb_path_in_one_process_is_a_config_error() -> None:
    from clickhouse_connect.driver.exceptions import ProgrammingError

    msg = "EmbeddedServer already initialized with path ':memory:', cannot connect elsewhere"
    assert isinstance(translate(ProgrammingError(msg), "connect"), StoreConfigError)


async def test_flush_wraps_offset_lookup_failure() -> None:
    class Down(FakeClickHouse):
        async def query(
            self, sql: str, parameters: dict[str, Any] | None = None
        ) -> list[dict[str, Any]]:
            raise StoreUnavailableError("down")

    w = writer(Down())
    w.add(good(0))
    with pytest.raises(FlushError) as info:
        await w.flush()
    assert info.value.transient
    assert w.buffered_rows == 1


async def test_forget_rereads_stored_offsets_after_reassignment() -> None:
    ch = FakeClickHouse()
    w = writer(ch)
    w.add(good(0))
    await w.flush()
    ch.hwm = [{"topic": "signals", "partition": 0, "hwm": 9}]  # another worker wrote 1..9
    w.forget([("signals", 0)])
    for off in range(1, 12):
        w.add(good(off))
    assert await w.flush() == {("signals", 0): 11}
    assert ch.inserts[-1] == ("events", 2, "signals-0-10-11")


@pytest.mark.parametrize(
    "value",
    [
        b'{"event_id":"7d3f0e4a-0000-4000-8000-000000000001","correlation_id":'
        b'"7d3f0e4a-0000-4000-8000-000000000001","occurred_at":"2026-03-02T00:00:00Z",'
        b'"event_type":"signal","schema_version":1e999}',  # int(inf): OverflowError
        b"[" * 100_000 + b"]" * 100_000,  # nested past the JSON parser's recursion limit
    ],
)
def test_values_that_break_the_decoder_are_kept_as_undecodable(value: bytes) -> None:
    row = to_row(rec(3, value), NOW)
    assert row[4] == UNDECODABLE


def test_kafka_timestamp_out_of_range_is_dropped_not_raised() -> None:
    row = to_row(EventRecord("signals", 0, 1, None, good(1).value, 1e300), NOW)
    assert row[10] is None
    assert row[4] == "signal"


async def test_a_flush_stores_what_was_added_before_it_was_called() -> None:
    """The audit stage decodes the next batch while the last one's insert runs: records added
    during a flush wait for the next flush, which stores them after the first."""
    ch = FakeClickHouse()
    w = writer(ch)
    w.add_many([good(0), good(1)])
    first = asyncio.ensure_future(w.flush())
    w.add_many([good(2), good(3), good(4)])  # while the first flush is under way
    assert await first == {("signals", 0): 1}
    assert w.buffered_rows == 3
    assert await w.flush() == {("signals", 0): 4}
    stored = [row[2] for rows in ch.stored.values() for row in rows]
    assert stored == [0, 1, 2, 3, 4]
    w.add_many([good(3), good(5)])  # a redelivery is skipped, a new offset kept
    assert await w.flush() == {("signals", 0): 5}
    assert w.stats.skipped_duplicates == 1
