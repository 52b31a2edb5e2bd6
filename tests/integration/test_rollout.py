"""The rollout report on a scripted paper period in a real embedded ClickHouse: it fails on a
threshold, passes once the threshold is met, and go-live is refused until it passes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agents.decisions.reasons import Refusal
from agents.decisions.rollout import RolloutThresholds, go_live
from jax_exec.cli_rollout import read_report
from jax_exec.settings import Settings
from schemas.events import (
    ControlAction,
    ControlCommand,
    Decision,
    OrderEvent,
    OrderLeg,
    OrderStatus,
    OrderType,
    Rejection,
    RolloutDecision,
    Side,
    Signal,
)
from schemas.ids import derive_id
from store.client import ClickHouse
from store.migrate import migrate
from store.synthetic import T0, Scenario, _approval, _fill, _intent, _order, _signal
from store.writer import AuditWriter

pytestmark = pytest.mark.integration
_db = itertools.count()
T = RolloutThresholds(min_days_traded=3, min_orders=3, min_fill_rate="0.5",
                      max_avg_slippage_bps=20, max_ack_latency_p95_ms=1000,
                      max_drawdown=2000)


def paper_day(sc: Scenario, day: int, exit_price: str = "152.00") -> None:
    """One round trip: BUY 10 at 150.00 (limit 150.05), out at `exit_price` an hour later."""
    at = T0 + timedelta(days=day)
    s = sc.add(_signal(f"paper-{day}", "AAPL", Side.BUY, "150.00", "145.00", at))
    assert isinstance(s, Signal)
    a = sc.add(_approval(s, Decision.APPROVED, "alice", at + timedelta(seconds=10)))
    i = _intent(a, OrderType.LMT, "10", "150.05", at + timedelta(seconds=10.2))  # type: ignore[arg-type]
    sc.add(i)
    sub = sc.add(_order(i, OrderStatus.SUBMITTED, i.event_id, at + timedelta(seconds=10.3)))
    acc = sc.add(_order(i, OrderStatus.ACCEPTED, sub.event_id, at + timedelta(seconds=10.5)))
    assert isinstance(acc, OrderEvent)
    f1 = sc.add(_fill(acc, f"x{day}a", Side.BUY, "10", "150.06", at + timedelta(seconds=11)))
    done = sc.add(_order(i, OrderStatus.FILLED, f1.event_id, at + timedelta(seconds=11),
                         filled="10"))
    tp_id = f"{i.client_order_id}-tp"
    tp = _order(i, OrderStatus.ACCEPTED, done.event_id, at + timedelta(seconds=12),
                client_order_id=tp_id, side=Side.SELL, leg=OrderLeg.TAKE_PROFIT,
                parent_client_order_id=i.client_order_id)
    sc.add(tp)
    sc.add(_fill(tp, f"x{day}b", Side.SELL, "10", exit_price, at + timedelta(hours=1),
                 OrderLeg.TAKE_PROFIT))


def refused(sc: Scenario, day: int, code: str) -> None:
    at = T0 + timedelta(days=day, hours=2)
    s = _signal(f"refused-{day}", "MSFT", Side.BUY, "400", "390", at)
    sc.add(s)
    sc.add(Rejection(event_id=derive_id("rejection", s.event_id, code),
                     correlation_id=s.correlation_id, causation_id=s.event_id, occurred_at=at,
                     recorded_at=at, stage="risk", reason_code=code, message="scripted",
                     symbol="MSFT"))


@pytest.fixture(scope="module")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rollout-chdb") / "data"


@pytest.fixture
def store(chdb_path: Path) -> Iterator[tuple[ClickHouse, str]]:
    db = f"r{next(_db)}"
    ch = ClickHouse(f"chdb://{chdb_path}", database=db)
    asyncio.run(ch.open())
    asyncio.run(migrate(ch))
    yield ch, db
    asyncio.run(ch.close())


def load(ch: ClickHouse, sc: Scenario) -> None:
    async def run() -> None:
        w = AuditWriter(ch, max_batch_rows=50, max_batch_seconds=1)
        for record in sc.records():
            w.add(record)
        await w.flush()

    asyncio.run(run())


def judge(ch: ClickHouse, db: str, chdb_path: Path):  # type: ignore[no-untyped-def]
    settings = Settings(clickhouse_url=f"chdb://{chdb_path}")
    return asyncio.run(read_report(settings, None, None, None, T, database=db))


def show(report) -> None:  # type: ignore[no-untyped-def]
    for c in report.checks:
        print(f"{'PASS' if c.passed else 'FAIL'} {c.name}: {c.value} ({c.threshold})")
    print("rejections by reason:", dict(report.figures.rejections))


def test_report_fails_on_a_threshold_then_passes_once_met(
        store: tuple[ClickHouse, str], chdb_path: Path) -> None:
    ch, db = store
    sc = Scenario()
    for day in (0, 1):
        paper_day(sc, day)
    refused(sc, 1, "MAX_DAILY_LOSS")
    load(ch, sc)
    report = judge(ch, db, chdb_path)
    show(report)
    assert not report.passed
    assert [c.name for c in report.failed] == ["days traded", "orders"]
    f = report.figures
    assert (f.days_traded, f.orders, f.filled_orders) == (2, 2, 2)
    assert f.rejections == {"MAX_DAILY_LOSS": 1}
    assert f.avg_slippage_bps is not None
    assert f.avg_slippage_bps > 0
    assert f.ack_latency_p95_ms == pytest.approx(500, abs=1)
    refusal = go_live(report, "U7654321", "carol", T0 + timedelta(days=10), T)
    assert isinstance(refusal, Refusal)  # switching to live on a failing report: refused

    paper_day(sc, 2)  # the period goes on: the same records again (deduplicated) plus a day
    load(ch, sc)
    report = judge(ch, db, chdb_path)
    show(report)
    assert report.passed, report.failed
    assert report.figures.realized_pnl > 0
    decision = go_live(report, "U7654321", "carol", T0 + timedelta(days=10), T)
    assert isinstance(decision, RolloutDecision)


def test_kill_switch_trips_and_drawdown_fail_the_period(
        store: tuple[ClickHouse, str], chdb_path: Path) -> None:
    ch, db = store
    sc = Scenario()
    for day in range(3):
        paper_day(sc, day, exit_price="100.00" if day == 1 else "152.00")
    trip = ControlCommand.model_validate({
        "command": ControlAction.HALT, "issued_by": "auto:max_daily_loss", "reason": "scripted",
        "occurred_at": (T0 + timedelta(days=1)).isoformat()})
    sc.events.append(trip)
    load(ch, sc)
    report = judge(ch, db, chdb_path)
    show(report)
    names = {c.name for c in report.failed}
    assert "kill-switch trips" in names
    assert "realized P&L" in names
    assert report.figures.kill_switch_trips == 1
