"""Compliance on the real broker: the worker trades through the IB adapter against the
simulator's TWS door; each breach is refused with its code (stage `compliance`), nothing is
ordered, and the refusal is in ClickHouse.

Shortability comes from IB's market data (generic tick 236, tick 46), which the simulator's
door answers per instrument: `jax-exec sim` with SIM_NOT_SHORTABLE=AAPL lends no AAPL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ib_async
import pytest

from agents.decisions.compliance import market_closed
from agents.decisions.reasons import ReasonCode
from brokers.ib import IbOrderService
from schemas.events import utcnow
from schemas.ids import signal_event_id
from tests.integration.harness import (
    SimulatorProcess,
    WorkerProcess,
    approval_for,
    events,
    publish,
    signal_with,
    wait_for,
    wait_sql,
)
from tests.integration.order_path import reference_prices

pytestmark = pytest.mark.integration
ACCOUNT = "DU0000001"
PRICES = reference_prices()
CENT = Decimal("0.01")


def corr_of(signal: dict[str, Any]) -> str:
    return str(signal_event_id(signal["id"]))


def mine(rows: list[dict[str, Any]], signal: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("correlation_id") == corr_of(signal)]


def signal(symbol: str, side: str, entry: Decimal) -> dict[str, Any]:
    """A signal with its stop 2% and take-profit 4% away on the right sides."""
    sign = 1 if side == "BUY" else -1
    stop = (entry * (1 - sign * Decimal("0.02"))).quantize(CENT)
    target = (entry * (1 + sign * Decimal("0.04"))).quantize(CENT)
    return signal_with(symbol=symbol, signal_type=side, entry_price=str(entry),
                       stop_loss=str(stop), take_profit=str(target), strategy_id="compliance")


@pytest.fixture
def sim(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SimulatorProcess]:
    env = getattr(request, "param", {})
    proc = SimulatorProcess(tmp_path / "sim", env=env)
    proc.wait_ready()
    yield proc
    proc.stop()


def worker_on(sim: SimulatorProcess, tmp: Path, **env: str) -> WorkerProcess:
    return WorkerProcess(tmp / "w", f"t{uuid.uuid4().hex[:10]}-", env={
        "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim.port), "IB_CLIENT_ID": "9",
        "IB_ACCOUNT": ACCOUNT, **env}).start()


async def send(worker: WorkerProcess, sig: dict[str, Any]) -> None:
    key = corr_of(sig).encode()
    await publish(f"{worker.prefix}signals", sig, key=key)
    await publish(f"{worker.prefix}approvals", approval_for(sig), key=key)


async def outcome(worker: WorkerProcess, sig: dict[str, Any],
                  within: float = 45) -> dict[str, Any]:
    """The signal's rejection; an order intent instead fails at once (compliance not wired?)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        decided = mine(await events(f"{worker.prefix}order-intents"), sig)
        assert not decided, f"not refused: the order was decided {decided[0]['quantity']}"
        refused = mine(await events(f"{worker.prefix}rejections"), sig)
        if refused:
            assert len(refused) == 1, refused
            return refused[0]
        await asyncio.sleep(0.5)
    raise AssertionError(f"no outcome for {sig['id']} in {within}s")


async def expect_refused(worker: WorkerProcess, sig: dict[str, Any],
                         code: ReasonCode) -> dict[str, Any]:
    """Refused with `code` by compliance, nothing ordered, and the refusal in ClickHouse."""
    await send(worker, sig)
    rejection = await outcome(worker, sig)
    print(f"{code}: {rejection['message']}")
    assert rejection["reason_code"] == code, rejection
    assert rejection["stage"] == "compliance"
    assert mine(await events(f"{worker.prefix}order-intents"), sig) == []
    stored = wait_sql(worker, "SELECT toString(correlation_id) AS corr, reason_code, stage, "
                      "message, details FROM rejections FINAL",
                      lambda rs: corr_of(sig) in {r["corr"] for r in rs})
    row = {r["corr"]: r for r in stored}[corr_of(sig)]
    assert (row["reason_code"], row["stage"]) == (code, "compliance")
    assert row["message"] == rejection["message"]
    rejection["stored_details"] = json.loads(row["details"]) if row["details"] else {}
    return rejection


async def direct(sim: SimulatorProcess, orders: list[tuple[str, str, int]]) -> None:
    """Market orders straight through the TWS door (another client): the account's history."""
    ib = ib_async.IB()
    await ib.connectAsync("127.0.0.1", sim.port, clientId=77, timeout=10)
    try:
        for symbol, action, qty in orders:
            trade = ib.placeOrder(ib_async.Stock(symbol, "SMART", "USD"),
                                  ib_async.MarketOrder(action, qty))
            while not trade.isDone():
                await ib.updateEvent
    finally:
        ib.disconnect()


@pytest.mark.parametrize("sim", [{"SIM_STARTING_CASH": "20000"}], indirect=True)
async def test_pattern_day_trader(sim: SimulatorProcess, tmp_path: Path) -> None:
    # Three day trades today, then a position opened today that the signal would close.
    await direct(sim, [("MSFT", "BUY", 1), ("MSFT", "SELL", 1), ("NVDA", "BUY", 1),
                       ("NVDA", "SELL", 1), ("AMD", "BUY", 1), ("AMD", "SELL", 1),
                       ("AAPL", "BUY", 1)])
    worker = worker_on(sim, tmp_path, ALLOW_SAME_SYMBOL_POSITION="true")
    try:
        rejection = await expect_refused(worker, signal("AAPL", "SELL", PRICES["AAPL"]),
                                         ReasonCode.PATTERN_DAY_TRADER)
        assert rejection["details"]["day_trades"] == "3"
    finally:
        worker.stop()


NO_AAPL_TO_BORROW = {"SIM_NOT_SHORTABLE": "AAPL"}


@pytest.mark.parametrize("sim", [NO_AAPL_TO_BORROW], indirect=True)
async def test_ib_reads_shortability_from_generic_tick_236(sim: SimulatorProcess) -> None:
    # The adapter as the worker runs it: the flag is the venue's answer, per instrument.
    ib = IbOrderService("127.0.0.1", sim.port, client_id=31, account=ACCOUNT)
    await ib.connect()
    try:
        rules = {symbol: await ib.instrument(symbol) for symbol in ("AAPL", "MSFT")}
        # a buy's decision asks without the borrow: no market-data request, no message
        asked: list[object] = []
        request = ib.ib.client.reqMktData
        ib.ib.client.reqMktData = lambda *a, **k: (asked.append(a), request(*a, **k))
        told = (ib.wire_messages("instrument", "AAPL", False),
                ib.wire_messages("instrument", "AAPL", True))
        for_a_buy = await ib.instrument("AAPL", borrow=False)
    finally:
        await ib.close()
    flags = {symbol: r and r.shortable for symbol, r in rules.items()}
    print(f"SIM_NOT_SHORTABLE=AAPL: shortable {flags}; without the borrow: {for_a_buy}, "
          f"messages told {told}, market-data requests {len(asked)}")
    assert flags == {"AAPL": False, "MSFT": True}
    assert for_a_buy is not None
    assert rules["AAPL"] is not None
    assert for_a_buy.shortable is None
    assert for_a_buy.tick_size == rules["AAPL"].tick_size
    assert for_a_buy.lot_size == rules["AAPL"].lot_size
    assert told == (0, 2)
    assert asked == []


@pytest.mark.parametrize("sim", [NO_AAPL_TO_BORROW], indirect=True)
async def test_short_sale_of_a_not_shortable_instrument(sim: SimulatorProcess,
                                                        tmp_path: Path) -> None:
    # IB's tick 46 says 1.0 (nothing to borrow): refused without SHORTABLE_REQUIRED.
    worker = worker_on(sim, tmp_path)
    try:
        rejection = await expect_refused(worker, signal("AAPL", "SELL", PRICES["AAPL"]),
                                         ReasonCode.SHORT_NOT_SHORTABLE)
        assert "marks it not shortable" in rejection["message"]
    finally:
        worker.stop()


async def test_short_sale_of_a_shortable_instrument_passes(sim: SimulatorProcess,
                                                           tmp_path: Path) -> None:
    # IB's tick 46 says 3.0: the short is decided even where an unknown flag would refuse it.
    worker = worker_on(sim, tmp_path, SHORTABLE_REQUIRED="true")
    try:
        sig = signal("AAPL", "SELL", PRICES["AAPL"])
        await send(worker, sig)
        decided = await wait_for(f"{worker.prefix}order-intents", lambda rs: bool(mine(rs, sig)))
        intent = mine(decided, sig)[0]
        print(f"shortable short decided: {intent['side']} {intent['quantity']} AAPL")
        assert intent["side"] == "SELL"
        assert mine(await events(f"{worker.prefix}rejections"), sig) == []
    finally:
        worker.stop()


async def test_self_cross(sim: SimulatorProcess, tmp_path: Path) -> None:
    worker = worker_on(sim, tmp_path, ALLOW_SAME_SYMBOL_POSITION="true",
                       MAX_SYMBOL_EXPOSURE_PCT="1")
    try:
        above = (PRICES["AAPL"] * Decimal("1.05")).quantize(CENT)
        resting = signal("AAPL", "SELL", above)  # a SELL limit above the market rests
        await send(worker, resting)
        await wait_for(f"{worker.prefix}orders", lambda rs: any(
            r["status"] == "accepted" for r in mine(rs, resting)))
        crossing = signal("AAPL", "BUY", (above + 1).quantize(CENT))  # reaches our own SELL
        await expect_refused(worker, crossing, ReasonCode.SELF_CROSS)
    finally:
        worker.stop()


def closed_calendar() -> str:
    """A major exchange shut right now (at any hour one of these is): its session is over, not
    begun, a weekend or a holiday."""
    now = utcnow()
    for name in ("XNYS", "XTKS", "XLON", "XASX"):
        if market_closed(name, now) is not None:
            return name
    raise AssertionError("every exchange is open at once?")


async def test_market_closed_by_the_exchange_calendar(sim: SimulatorProcess,
                                                      tmp_path: Path) -> None:
    name = closed_calendar()
    worker = worker_on(sim, tmp_path, MARKET_CALENDAR=name)
    try:
        rejection = await expect_refused(worker, signal("AAPL", "BUY", PRICES["AAPL"]),
                                         ReasonCode.MARKET_CLOSED)
        assert rejection["details"]["calendar"] == name
    finally:
        worker.stop()


async def test_unscheduled_closure_is_a_holiday(sim: SimulatorProcess, tmp_path: Path) -> None:
    # Today (New York's date) declared closed, as NYSE did on 2025-01-09, whatever the hour.
    today = utcnow().astimezone(ZoneInfo("America/New_York")).date()
    worker = worker_on(sim, tmp_path, MARKET_CALENDAR="XNYS",
                       MARKET_EXTRA_CLOSURES=today.isoformat())
    try:
        rejection = await expect_refused(worker, signal("AAPL", "BUY", PRICES["AAPL"]),
                                         ReasonCode.MARKET_CLOSED)
        assert rejection["details"]["calendar"] == "XNYS"
        assert "unscheduled closure" in rejection["details"]["holiday"]
        assert f"{today:%Y-%m-%d} is an exchange holiday on XNYS" in rejection["message"]
        assert "unscheduled closure" in rejection["stored_details"]["holiday"]
    finally:
        worker.stop()
