"""The store against a real embedded ClickHouse (chdb 26.9): one temp path per module."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from schemas.events import Alert, AlertKind, OrderEvent, OrderStatus, Signal
from schemas.ids import derive_id
from store.analytics import ANALYTICS_SQL
from store.client import ClickHouse
from store.exceptions import StoreDataError
from store.migrate import load_migrations, migrate
from store.queries import Queries
from store.synthetic import T0, Scenario, synthetic_trade, trading_day
from store.writer import EVENT_COLUMNS, UNSTORABLE, AuditWriter, EventRecord, to_row

pytestmark = pytest.mark.integration
_db = itertools.count()


@pytest.fixture(scope="module")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb") / "data"


def _open(path: Path) -> ClickHouse:
    ch = ClickHouse(f"chdb://{path}", database=f"t{next(_db)}")
    asyncio.run(ch.open())
    asyncio.run(migrate(ch))
    return ch


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return trading_day()


@pytest.fixture(scope="module")
def loaded(chdb_path: Path, scenario: Scenario) -> Iterator[ClickHouse]:
    """One database holding the scripted day, written through the real writer."""
    ch = _open(chdb_path)

    async def load() -> None:
        w = AuditWriter(ch, max_batch_rows=4, max_batch_seconds=1)
        for record in scenario.records(partitions=2):
            w.add(record)
        await w.flush()

    asyncio.run(load())
    yield ch
    asyncio.run(ch.close())


@pytest.fixture
def fresh(loaded: ClickHouse, chdb_path: Path) -> Iterator[ClickHouse]:
    """An empty, migrated database on the same engine (one path per process)."""
    ch = _open(chdb_path)
    yield ch
    asyncio.run(ch.close())


async def test_migrations_are_idempotent(loaded: ClickHouse) -> None:
    assert await migrate(loaded) == []
    assert await migrate(loaded) == []
    rows = await loaded.query("SELECT count() AS n FROM schema_migrations")
    assert rows[0]["n"] == len(load_migrations())


async def test_every_table_the_audit_writes_to_merges_with_the_wider_selector(
    loaded: ClickHouse,
) -> None:
    rows = await loaded.query(
        "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND engine LIKE '%MergeTree' AND name != 'schema_migrations'")
    assert len(rows) == 17
    assert [r["name"] for r in rows if "merge_selector_base = 12" not in r["engine_full"]] == []


async def test_0005_upgrades_in_place_a_trade_without_entry_fill(
    loaded: ClickHouse, chdb_path: Path, tmp_path: Path
) -> None:
    # A database at 0004 holding a round trip with an exit fill only: trades cannot be read.
    for m in load_migrations():
        if m.version <= 4:
            (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text(m.sql)
    async with ClickHouse(f"chdb://{chdb_path}", database=f"t{next(_db)}") as fresh:
        await _upgrade_0005(fresh, tmp_path)


async def _upgrade_0005(fresh: ClickHouse, first_four: Path) -> None:
    assert await migrate(fresh, first_four) == [1, 2, 3, 4]
    signal, _, _, _, exit_fill = synthetic_trade(7)
    # Stored as a writer of that time did: the events columns before 0006 (no `duplicate`).
    records = [EventRecord(signal[0], 0, 0, None, signal[2].encode()),
               EventRecord(exit_fill[0], 0, 0, None, exit_fill[2].encode())]
    rows = [to_row(r, datetime.now(UTC))[:-1] for r in records]
    await fresh.insert("events", rows, EVENT_COLUMNS[:-1])
    with pytest.raises(StoreDataError):
        await fresh.query("SELECT * FROM trades")
    # 0006 and 0007 sum the fills stored before them too; 0008 the daily sums
    assert await migrate(fresh) == [5, 6, 7, 8, 9, 10, 11, 12]
    assert await migrate(fresh) == []
    [trade] = await Queries(fresh).trades()
    assert (trade.entry_quantity, trade.exit_quantity, trade.status) == (0, 100, "open")
    assert trade.realized_pnl == Decimal("-1.00")  # the exit commission, nothing closed
    assert await Queries(fresh).daily_pnl() != []


async def test_round_trip_pnl_r_multiple_and_holding_time(loaded: ClickHouse) -> None:
    [trade] = await Queries(loaded).trades(symbol="AAPL")
    assert trade.status == "closed"
    assert trade.side == "BUY"
    assert trade.entry_price == Decimal("150.00")
    assert trade.exit_price == Decimal("160.00")
    assert trade.commission == Decimal("2.00")
    assert trade.realized_pnl == Decimal("998.00")
    assert trade.r_multiple == pytest.approx(2.0)
    assert trade.planned_risk_per_share == Decimal("5")
    assert trade.holding_seconds == pytest.approx(timedelta(hours=2, seconds=-32).total_seconds())
    assert trade.opened_at.tzinfo is not None


async def test_daily_pnl(loaded: ClickHouse) -> None:
    [day] = await Queries(loaded).daily_pnl()
    assert day.day == date(2026, 3, 2)
    assert day.realized_pnl == Decimal("998.00")
    assert (day.trades, day.wins, day.losses) == (1, 1, 0)
    assert await Queries(loaded).daily_pnl(since=date(2026, 3, 3)) == []


async def test_open_positions_signed_by_side(loaded: ClickHouse) -> None:
    [pos] = await Queries(loaded).positions()
    assert (pos.symbol, pos.net_quantity, pos.avg_price) == (
        "NVDA",
        Decimal("-10"),
        Decimal("99.90"),
    )


async def test_orders_current_state(loaded: ClickHouse) -> None:
    q = Queries(loaded)
    [open_order] = await q.open_orders()
    assert open_order.symbol == "AMD"
    assert open_order.status == "accepted"
    filled = await q.order_history(status="filled", strategy="momo")
    assert {o.symbol for o in filled} == {"AAPL", "NVDA"}
    assert len(filled) == 3
    assert await q.order_history(since=T0 + timedelta(hours=5)) == []


async def test_latency_per_stage(loaded: ClickHouse) -> None:
    [lat] = await Queries(loaded).latency(symbol="AAPL")
    assert lat.signal_to_approval_ms == pytest.approx(30_000)
    assert lat.approval_to_intent_ms == pytest.approx(500)
    assert lat.intent_to_submitted_ms == pytest.approx(500)
    assert lat.submitted_to_acknowledged_ms == pytest.approx(200)
    assert lat.acknowledged_to_filled_ms == pytest.approx(800)
    assert lat.signal_to_filled_ms == pytest.approx(32_000)


async def test_slippage_positive_is_worse(loaded: ClickHouse) -> None:
    rows = {r.symbol: r for r in await Queries(loaded).slippage()}
    assert rows["AAPL"].intended_price == Decimal("149.95")  # LMT: the intent's limit
    assert rows["AAPL"].slippage_per_share == Decimal("0.05")
    assert rows["AAPL"].slippage_cost == Decimal("5.00")
    assert rows["NVDA"].intended_price == Decimal("100")  # MKT: the signal's entry, short side
    assert rows["NVDA"].slippage_per_share == Decimal("0.10")


async def test_approval_audit(loaded: ClickHouse) -> None:
    rows = {r.symbol: r for r in await Queries(loaded).approval_audit()}
    assert rows["AAPL"].approved_by == "alice"
    assert rows["AAPL"].decision_seconds == pytest.approx(30)
    assert rows["MSFT"].decision == "rejected"
    assert rows["MSFT"].approved_by == "bob"
    assert rows["MSFT"].decision_seconds == pytest.approx(90)
    assert len(await Queries(loaded).approval_audit(approved_by="alice")) == 2


async def test_rejections(loaded: ClickHouse) -> None:
    [rej] = await Queries(loaded).rejections(stage="validation")
    assert rej.reason_code == "max_position_size"
    assert rej.details == {"limit": "100"}


async def test_trace_is_in_causal_order(loaded: ClickHouse, scenario: Scenario) -> None:
    steps = await Queries(loaded).trace(scenario.events[0].correlation_id)
    assert [s.event_id for s in steps] == scenario.aapl_chain
    assert steps[1].payload["approved_by"] == "alice"
    assert steps[0].depth == 0
    assert await Queries(loaded).count_events(scenario.events[0].correlation_id) == len(steps)


async def test_same_batch_inserted_twice_is_stored_once(
    fresh: ClickHouse, scenario: Scenario
) -> None:
    from datetime import UTC, datetime

    rows = [to_row(r, datetime.now(UTC)) for r in scenario.records()[:6]]
    for _ in range(2):
        await fresh.insert("events", rows, EVENT_COLUMNS, dedup_token="signals-0-0-5")
    assert await Queries(fresh).count_events() == 6
    n = await fresh.query("SELECT count() AS n FROM signals")  # views fed once too
    assert n[0]["n"] == sum(1 for r in rows if r[4] == "signal")


async def test_writer_killed_before_commit_yields_no_duplicate(
    fresh: ClickHouse, scenario: Scenario
) -> None:
    records = scenario.records()
    first = AuditWriter(fresh, max_batch_rows=5, max_batch_seconds=1)
    for r in records:
        first.add(r)
    stored = await first.flush()  # stored, then "killed": offsets never committed
    assert stored
    second = AuditWriter(fresh, max_batch_rows=3, max_batch_seconds=1)  # other batch boundaries
    for r in records:
        second.add(r)
    assert await second.flush() == {}
    assert await Queries(fresh).count_events() == len(records)
    [trade] = await Queries(fresh).trades(symbol="AAPL")
    assert trade.realized_pnl == Decimal("998.00")


async def test_undecodable_record_is_stored(fresh: ClickHouse) -> None:
    from store.writer import EventRecord

    w = AuditWriter(fresh, 10, 1)
    w.add(EventRecord("signals", 0, 0, None, b"\x00garbage", None))
    assert await w.flush() == {("signals", 0): 0}
    rows = await fresh.query("SELECT event_type, payload FROM events")
    assert rows[0]["event_type"] == "undecodable"
    assert "raw_base64" in rows[0]["payload"]


@pytest.mark.parametrize("name", sorted(ANALYTICS_SQL))
async def test_readme_analytics_sql_runs(loaded: ClickHouse, scenario: Scenario, name: str) -> None:
    params = {"correlation_id": str(scenario.events[0].correlation_id)}
    rows = await loaded.query(ANALYTICS_SQL[name], params if "{" in ANALYTICS_SQL[name] else None)
    if name in ("daily_pnl", "win_rate_and_r_by_strategy"):
        assert rows[0]["pnl"] == Decimal("998.00")
    if name == "one_signal_story":
        assert len(rows) == len(scenario.aapl_chain)


# --- Never stall, never skip: rows ClickHouse refuses, transient errors, crashes, alerts ---

STRICT_VIEW = (
    # A typed column stricter than the payload: what a future view with a Decimal(9, 2) and
    # a throwing conversion looks like. '1e30' fails with code 69 (ARGUMENT_OUT_OF_BOUND)
    # after the events part is written: ClickHouse inserts are not atomic across views.
    "CREATE TABLE IF NOT EXISTS signal_prices (event_id UUID, entry Decimal(9, 2)) "
    "ENGINE = ReplacingMergeTree ORDER BY event_id "
    "SETTINGS non_replicated_deduplication_window = 1000",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS signal_prices_mv TO signal_prices AS "
    "SELECT event_id, toDecimal32(trim(BOTH '\"' FROM JSONExtractRaw(payload, 'entry_price')), 2)"
    " AS entry FROM events WHERE event_type = 'signal'",
)


def _signal(sid: str, at: datetime) -> Signal:
    fields = {"symbol": "AAPL", "signal_type": "BUY", "entry_price": "150", "stop_loss": "145"}
    return Signal.model_validate(
        {**fields, "id": sid, "strategy_id": "s", "occurred_at": at.isoformat()}
    )


def _signal_records(n: int, poison: set[int], big: str = "1e30") -> list[EventRecord]:
    """n distinct signals on signals[0]; the ones at `poison` offsets carry `big` prices."""
    out = []
    for off in range(n):
        data = json.loads(_signal(f"p{off}", T0).model_dump_json())
        if off in poison:
            data["entry_price"] = big
        out.append(EventRecord("signals", 0, off, b"k", json.dumps(data).encode(), 1772400000.0))
    return out


class CountingClickHouse:
    """The real engine, counting inserts, and 'crashing' at a chosen insert."""

    def __init__(self, ch: ClickHouse, crash_at: int | None = None) -> None:
        self.ch = ch
        self.inserts = 0
        self.crash_at = crash_at

    async def insert(self, *args: Any, **kwargs: Any) -> int:
        self.inserts += 1
        if self.crash_at is not None and self.inserts >= self.crash_at:
            raise KilledError(f"killed at insert {self.inserts}")
        return await self.ch.insert(*args, **kwargs)

    async def query(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return await self.ch.query(*args, **kwargs)

    async def command(self, *args: Any, **kwargs: Any) -> Any:
        return await self.ch.command(*args, **kwargs)


class KilledError(Exception):
    """Stands for the process dying: not a StoreError, so it escapes flush()."""


async def _offsets(ch: ClickHouse) -> list[tuple[int, str]]:
    rows = await ch.query("SELECT offset, event_type FROM events ORDER BY offset, event_type")
    return [(int(r["offset"]), str(r["event_type"])) for r in rows]


async def _strict(ch: ClickHouse) -> None:
    for sql in STRICT_VIEW:
        await ch.command(sql)


async def test_poison_row_through_a_view_is_isolated_and_recorded(fresh: ClickHouse) -> None:
    await _strict(fresh)
    records = _signal_records(20, poison={7, 13})
    counted = CountingClickHouse(fresh)
    w = AuditWriter(counted, max_batch_rows=100, max_batch_seconds=1)  # type: ignore[arg-type]
    for r in records:
        w.add(r)
    assert await w.flush() == {("signals", 0): 19}
    print(f"20 rows, 2 refused: {counted.inserts} inserts")
    stored = await _offsets(fresh)
    assert [o for o, _ in stored] == list(range(20))  # every offset exactly once
    assert [o for o, t in stored if t == UNSTORABLE] == [7, 13]
    [row] = await fresh.query("SELECT payload FROM events WHERE offset = 7")
    kept = json.loads(row["payload"])
    assert base64.b64decode(kept["raw_base64"]) == records[7].value
    assert kept["clickhouse_code"] == 69
    assert kept["event_type"] == "signal"
    n = await fresh.query("SELECT count() AS n, uniqExact(event_id) AS u FROM signal_prices")
    assert (n[0]["n"], n[0]["u"]) == (18, 18)
    # Views that ran before the throwing one kept what they derived from the refused insert
    # (the order of views is the engine's): typed tables are idempotent by event_id, so
    # read with FINAL every good signal is there once; a refused one may be there too.
    good = [json.loads(r.value)["event_id"] for r in records if r.offset not in (7, 13)]
    rows = await fresh.query("SELECT toString(event_id) AS e FROM signals FINAL")
    typed = [str(r["e"]) for r in rows]
    assert sorted(e for e in typed if e in good) == sorted(good)
    raw = await fresh.query("SELECT count() AS n FROM signals")
    print(f"signals: {raw[0]['n']} rows before merge, {len(typed)} with FINAL")
    assert (w.stats.rows_written, w.stats.unstorable) == (20, 2)


async def test_row_the_client_cannot_encode_is_recorded(fresh: ClickHouse) -> None:
    records = _signal_records(6, poison=set())
    data = json.loads(records[3].value)
    data["schema_version"] = 70000  # events.schema_version is UInt16
    records[3] = EventRecord("signals", 0, 3, None, json.dumps(data).encode(), None)
    w = AuditWriter(fresh, 100, 1)
    for r in records:
        w.add(r)
    assert await w.flush() == {("signals", 0): 5}
    stored = await _offsets(fresh)
    assert stored == [(o, UNSTORABLE if o == 3 else "signal") for o in range(6)]


async def test_too_many_partitions_is_split_not_retried_forever(fresh: ClickHouse) -> None:
    # Code 252 is also "too many parts" (transient); 120 months in one block is not.
    records = []
    for off in range(120):
        signal = _signal(f"m{off}", datetime(2000 + off // 12, off % 12 + 1, 1, tzinfo=UTC))
        records.append(EventRecord("signals", 0, off, None, signal.model_dump_json().encode()))
    counted = CountingClickHouse(fresh)
    w = AuditWriter(counted, 1000, 1)  # type: ignore[arg-type]
    for r in records:
        w.add(r)
    assert await w.flush() == {("signals", 0): 119}
    print(f"120 months in one batch: {counted.inserts} inserts")
    assert [o for o, t in await _offsets(fresh) if t == "signal"] == list(range(120))
    assert w.stats.unstorable == 0


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4, 6, 8])
async def test_restart_after_a_crash_mid_bisect_stores_nothing_twice(
    fresh: ClickHouse, crash_at: int
) -> None:
    await _strict(fresh)
    records = _signal_records(16, poison={5, 11})
    first = AuditWriter(CountingClickHouse(fresh, crash_at), 16, 1)  # type: ignore[arg-type]
    for r in records:
        first.add(r)
    with pytest.raises(KilledError):
        await first.flush()
    second = AuditWriter(fresh, 16, 1)  # the restarted process: same records redelivered
    for r in records:
        second.add(r)
    await second.flush()
    stored = await _offsets(fresh)
    assert [o for o, _ in stored] == list(range(16))
    assert [o for o, t in stored if t == UNSTORABLE] == [5, 11]
    n = await fresh.query("SELECT count() AS n, uniqExact(event_id) AS u FROM signal_prices")
    assert n[0]["n"] == n[0]["u"] == 14


async def test_alerts_land_in_their_typed_table(fresh: ClickHouse) -> None:
    alert = Alert.of(
        AlertKind.POSITION_MISMATCH,
        "reconciliation",
        "venue holds 10 AAPL, fills add to 5",
        "DU1",
        "AAPL",
        account_id="DU1",
        symbol="AAPL",
        details={"venue": "10", "ours": "5"},
    )
    w = AuditWriter(fresh, 10, 1)
    w.add(EventRecord("alerts", 0, 0, b"DU1", alert.model_dump_json().encode()))
    w.add(EventRecord("alerts", 0, 1, b"DU1", alert.model_dump_json().encode()))  # a repeat
    await w.flush()
    rows = await fresh.query("SELECT * FROM alerts FINAL")
    assert len(rows) == 1
    row = rows[0]
    assert row["event_id"] == alert.event_id
    assert (row["kind"], row["source"], row["account_id"], row["symbol"]) == (
        "position_mismatch",
        "reconciliation",
        "DU1",
        "AAPL",
    )
    assert row["client_order_id"] is None
    assert json.loads(row["details"]) == {"venue": "10", "ours": "5"}


def _order(base: OrderEvent, status: OrderStatus, filled: str, minutes: int) -> OrderEvent:
    data = json.loads(base.model_dump_json())
    data.update(
        status=status.value,
        filled_quantity=filled,
        event_id=str(OrderEvent.derive_event_id(base.client_order_id, status, Decimal(filled))),
        occurred_at=(T0 + timedelta(minutes=minutes)).isoformat(),
        recorded_at=(T0 + timedelta(minutes=minutes)).isoformat(),
    )
    return OrderEvent.model_validate(data)


async def _status_after(ch: ClickHouse, history: list[OrderEvent]) -> str:
    """Write an order's whole history (offsets already stored are skipped); its status."""
    w = AuditWriter(ch, 100, 1)
    for off, event in enumerate(history):
        w.add(EventRecord("orders", 0, off, None, event.model_dump_json().encode()))
    await w.flush()
    [row] = await ch.query("SELECT status FROM orders")
    return str(row["status"])


async def test_pending_cancel_ranks_above_fills_and_below_final(
    fresh: ClickHouse, scenario: Scenario
) -> None:
    base = next(e for e in scenario.events if isinstance(e, OrderEvent))
    S = OrderStatus
    history = [
        _order(base, S.ACCEPTED, "0", 1),
        _order(base, S.PARTIALLY_FILLED, "10", 2),
        _order(base, S.PENDING_CANCEL, "10", 3),
        _order(base, S.PARTIALLY_FILLED, "20", 4),  # a fill racing the cancel
        _order(base, S.PENDING_SUBMIT, "0", 5),  # a replayed early state
    ]
    assert await _status_after(fresh, history) == "pending_cancel"
    assert await _status_after(fresh, [*history, _order(base, S.CANCELLED, "20", 6)]) == (
        "cancelled"
    )


async def test_pending_submit_ranks_below_submitted(fresh: ClickHouse, scenario: Scenario) -> None:
    base = next(e for e in scenario.events if isinstance(e, OrderEvent))
    S = OrderStatus
    first = [_order(base, S.PENDING_SUBMIT, "0", 1)]
    assert await _status_after(fresh, first) == "pending_submit"
    late = [*first, _order(base, S.SUBMITTED, "0", 2), _order(base, S.PENDING_SUBMIT, "0", 3)]
    assert await _status_after(fresh, late) == "submitted"


def _migrations_before(version: int, into: Path) -> Path:
    """A directory holding the packaged migrations numbered below `version`."""
    for f in sorted(Path(str(resources.files("store").joinpath("migrations"))).glob("*.sql")):
        if int(f.name[:4]) < version:
            shutil.copy(f, into)
    return into


@pytest.fixture
def first_three_migrations(tmp_path: Path) -> Path:
    return _migrations_before(4, tmp_path)


async def test_migration_0004_reranks_existing_orders(
    chdb_path: Path, scenario: Scenario, first_three_migrations: Path, loaded: ClickHouse
) -> None:
    tmp_path = first_three_migrations
    ch = ClickHouse(f"chdb://{chdb_path}", database=f"t{next(_db)}")
    await ch.open()
    try:
        assert await migrate(ch, tmp_path) == [1, 2, 3]
        # As a writer of that time stored them: no `duplicate` column before 0006.
        now = datetime.now(UTC)
        rows = [to_row(r, now)[:-1] for r in scenario.records(partitions=2)]
        await ch.insert("events", rows, EVENT_COLUMNS[:-1])
        before = sorted(o.model_dump_json() for o in await Queries(ch).order_history())
        assert await migrate(ch) == [m.version for m in load_migrations() if m.version > 3]
        after = sorted(o.model_dump_json() for o in await Queries(ch).order_history())
        assert after == before
        ranks = await ch.query("SELECT DISTINCT status, status_rank FROM order_events")
        assert {r["status"]: r["status_rank"] for r in ranks} == {
            "submitted": 2,
            "accepted": 3,
            "filled": 6,
        }
    finally:
        await ch.close()


# Field spellings each typed view must read as the per-field views of 0002-0006 did
# (0009 parses a payload once): a field missing, null, a number for a string, a string for a
# number, an object for a string, a nested object missing or of another kind.
_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "signal": [
        {"ttl_seconds": "300"}, {"ttl_seconds": 300}, {"ttl_seconds": None}, {"ttl_seconds": 1.5},
        {"entry_price": 101.25}, {"entry_price": None}, {"stop_loss": "x"}, {"symbol": 7},
        {"take_profit": "1e2"}, {"confidence": True}, {"strategy_id": {"a": 1}},
    ],
    "approval": [
        {"signal": None}, {"signal": "s"}, {"signal": {}}, {"decided_at": None},
        {"decided_at": "not a time"}, {"reason": 5}, {"signal": {"entry_price": 99.5}},
        {"signal": {"event_id": "not-a-uuid", "occurred_at": "2026-03-02T10:00:00+02:00"}},
    ],
    "order_intent": [
        {"sizing": None}, {"sizing": {"risk_amount": 12.5}}, {"limit_price": None},
        {"quantity": 10}, {"quantity": None}, {"stop_price": "1.50"}, {"sizing": "raw"},
    ],
    "order": [
        {"leg": None}, {"leg": 3}, {"limit_price": 1e2}, {"filled_quantity": None},
        {"status": None}, {"avg_fill_price": "12.5"}, {"message": 1}, {"venue_order_id": 9},
        {"parent_client_order_id": None},
    ],
    "fill": [
        {"leg": None}, {"currency": None}, {"quantity": 100}, {"price": "1E+2"},
        {"commission": None}, {"parent_client_order_id": 4}, {"venue_order_id": None},
        {"side": None}, {"price": -0},
    ],
}
_DROPPED = {"signal": ["ttl_seconds", "confidence"], "approval": ["signal", "decided_at"],
            "order_intent": ["sizing", "stop_loss"], "order": ["leg", "limit_price"],
            "fill": ["leg", "currency", "commission"]}
_TYPED = ("signals", "approvals", "order_intents", "order_events", "fills", "fill_firsts",
          "trades_agg", "positions_agg", "pnl_rollup", "orders_state")


def _variant_records(scenario: Scenario) -> list[EventRecord]:
    """The scenario's events, then each of its events again per variant, under new ids."""
    records = scenario.records(partitions=1)
    out = list(records)
    offset = len(records)
    for n, record in enumerate(records):
        value = json.loads(record.value)
        kind = str(value.get("event_type"))
        changes: list[dict[str, Any]] = list(_VARIANTS.get(kind, []))
        changes += [{"-": key} for key in _DROPPED.get(kind, [])]
        for i, change in enumerate(changes):
            copy = dict(value)
            if "-" in change:
                copy.pop(change["-"], None)
            else:
                copy.update(change)
            copy["event_id"] = str(derive_id("0009", n, i))
            out.append(EventRecord(record.topic, 9, offset, None, json.dumps(copy).encode()))
            offset += 1
    return out


async def _readable(ch: ClickHouse, table: str) -> str:
    """SELECT every column, aggregate states finalized (the client cannot read a state)."""
    columns = await ch.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = {table:String} ORDER BY position",
        {"table": table},
    )
    names = [
        f"finalizeAggregation({c['name']})" if str(c["type"]).startswith("AggregateFunction")
        else str(c["name"])
        for c in columns
    ]
    return f"SELECT {', '.join(names)} FROM {table}"


@pytest.fixture
def first_eight_migrations(tmp_path: Path) -> Path:
    return _migrations_before(9, tmp_path)


async def test_0009_views_read_each_field_as_the_per_field_views_did(
    chdb_path: Path, scenario: Scenario, first_eight_migrations: Path, loaded: ClickHouse
) -> None:
    old = ClickHouse(f"chdb://{chdb_path}", database=f"t{next(_db)}")
    new = ClickHouse(f"chdb://{chdb_path}", database=f"t{next(_db)}")
    await old.open()
    await new.open()
    try:
        assert await migrate(old, first_eight_migrations) == list(range(1, 9))
        await migrate(new)
        now = datetime.now(UTC)
        rows = [to_row(r, now) for r in _variant_records(scenario)]
        assert sum(1 for row in rows if row[4] == "undecodable") == 0
        for ch in (old, new):
            await ch.insert("events", [list(r) for r in rows], EVENT_COLUMNS)
        for table in _TYPED:
            sql = await _readable(new, table)
            got = sorted(map(repr, await new.query(sql)))
            want = sorted(map(repr, await old.query(sql)))
            assert got == want, table
        counts = await new.query("SELECT count() AS n FROM fills")
        assert int(counts[0]["n"]) > 30  # the variants went in
    finally:
        await old.close()
        await new.close()


async def test_an_engine_that_cannot_read_arrow_in_place_gets_the_file(
    fresh: ClickHouse, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """chdb's Python() table function reads the writer's Arrow table in place; were it to
    find no object (code 801), the insert goes through clickhouse-connect's Arrow file."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    import store.client as client_module

    def not_found(*args: Any) -> int:
        raise DatabaseError("Code: 801. DB::Exception: Python object not found")

    monkeypatch.setattr(client_module, "_insert_in_place", not_found)
    w = AuditWriter(fresh, max_batch_rows=100, max_batch_seconds=1)
    w.add_many(scenario.records(partitions=2))
    await w.flush()
    rows = await fresh.query("SELECT count() AS n FROM events")
    assert int(rows[0]["n"]) == len(scenario.events)
    assert fresh._in_place is False
