from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from brokers.exceptions import DuplicateClientOrderId
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.store import SimStore
from schemas.events import OrderStatus, OrderType, Side, TimeInForce
from tests.unit.brokers.conftest import ACCOUNT, FakeClock, req

D = Decimal


def build(path: Path, clock: FakeClock) -> Exchange:
    return Exchange(SimConfig(seed=5), store=SimStore(path), clock=clock)


def test_restart_keeps_everything(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "sim" / "sim.sqlite"
    first = build(path, clock)
    first.open_account("DU0000002", cash=D(2500))
    first.place(
        ACCOUNT,
        req(
            "b", order_type=OrderType.LMT, limit_price="150.00", take_profit="160", stop_loss="145"
        ),
    )
    first.place(ACCOUNT, req("s", symbol="MSFT", side=Side.SELL, qty=3))
    first.place(
        ACCOUNT,
        req(
            "r",
            symbol="KO",
            order_type=OrderType.LMT,
            limit_price="50",
            time_in_force=TimeInForce.GTC,
        ),
    )
    first.advance(7)
    before = (
        first.orders(ACCOUNT),
        first.fills(ACCOUNT),
        first.positions(ACCOUNT),
        first.account_snapshot(ACCOUNT).cash,
        first.last_price("XOM"),
        first.step,
    )
    del first

    second = build(path, clock)
    after = (
        second.orders(ACCOUNT),
        second.fills(ACCOUNT),
        second.positions(ACCOUNT),
        second.account_snapshot(ACCOUNT).cash,
        second.last_price("XOM"),
        second.step,
    )
    assert after == before
    assert second.accounts() == [ACCOUNT, "DU0000002"]
    assert second.account_snapshot("DU0000002").cash == D(2500)
    with pytest.raises(DuplicateClientOrderId):
        second.place(ACCOUNT, req("b"))


def test_restarted_exchange_keeps_working(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "sim.sqlite"
    first = build(path, clock)
    first.place(
        ACCOUNT,
        req(
            "b", order_type=OrderType.LMT, limit_price="150.00", take_profit="160", stop_loss="145"
        ),
    )
    first.set_price("AAPL", D("150.00"))
    ids = {f.execution_id for f in first.fills(ACCOUNT)}
    del first

    second = build(path, clock)
    assert second.last_price("AAPL") == D("150.00")
    second.set_price("AAPL", D(160))
    assert second.order(ACCOUNT, "b-tp").status is OrderStatus.FILLED
    assert second.order(ACCOUNT, "b-sl").status is OrderStatus.CANCELLED
    new = {f.execution_id for f in second.fills(ACCOUNT)} - ids
    assert len(new) == 1
    (report,) = second.place(ACCOUNT, req("n", qty=1))
    old_venue_ids = {o.venue_order_id for o in second.orders(ACCOUNT) if o.client_order_id != "n"}
    assert report.venue_order_id not in old_venue_ids

    third = build(path, clock)
    assert third.positions(ACCOUNT) == second.positions(ACCOUNT)
    assert third.account_snapshot(ACCOUNT) == second.account_snapshot(ACCOUNT)


def test_paths_continue_identically_after_restart(tmp_path: Path, clock: FakeClock) -> None:
    straight = Exchange(SimConfig(seed=5), clock=clock)
    straight.advance(20)
    path = tmp_path / "sim.sqlite"
    first = build(path, clock)
    first.advance(10)
    del first
    second = build(path, clock)
    second.advance(10)
    assert second.last_price("AAPL") == straight.last_price("AAPL")
    assert second.step == 20


def test_store_uses_wal(tmp_path: Path) -> None:
    store = SimStore(tmp_path / "sim.sqlite")
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.load().empty
    store.close()


def test_killed_process_loses_nothing_acknowledged(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "sim.sqlite"
    script = (
        "import os\n"
        "from decimal import Decimal\n"
        "from brokers.port import OrderRequest\n"
        "from brokers.sim.core import Exchange, SimConfig\n"
        "from brokers.sim.store import SimStore\n"
        "from schemas.events import OrderType, Side\n"
        f"ex = Exchange(SimConfig(seed=5), store=SimStore({str(path)!r}))\n"
        "ex.place('DU0000001', OrderRequest(client_order_id='k', symbol='AAPL', side=Side.BUY,"
        " quantity=Decimal(5), order_type=OrderType.MKT))\n"
        "os._exit(0)\n"
    )
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", script], check=True, cwd=root, timeout=60)
    revived = build(path, clock)
    assert revived.order(ACCOUNT, "k").status is OrderStatus.FILLED
    assert revived.positions(ACCOUNT)[0].quantity == D(5)
