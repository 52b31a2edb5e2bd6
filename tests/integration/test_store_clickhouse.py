"""The store against a real embedded ClickHouse (chdb 26.9): one temp path per module."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from store.analytics import ANALYTICS_SQL
from store.client import ClickHouse
from store.migrate import migrate
from store.queries import Queries
from store.synthetic import T0, Scenario, trading_day
from store.writer import EVENT_COLUMNS, AuditWriter, to_row

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
    assert rows[0]["n"] == 3


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
