"""Fault knobs other tests lean on, through the TWS door with ib_async (in-process): a stalled
venue, late commission reports, and the venue's own count of placements per orderRef."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ib_async
import pytest

from brokers.sim import runner as sim_runner
from brokers.sim.faults import FaultConfig, FaultInjector
from brokers.sim.runner import Simulator, SimulatorSettings
from tests.polling import until
from tests.unit.brokers.conftest import ACCOUNT


@pytest.fixture
async def sim(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        state=tmp_path / "s.sqlite", port=0, admin_port=unused_tcp_port_factory(), tick_seconds=0
    )
    async with Simulator(settings) as simulator:
        simulator.exchange.set_price("AAPL", Decimal("150.00"))
        yield simulator


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[Callable[..., Any]]:
    async with aiohttp.ClientSession(base_url=sim.admin_url or "") as session:

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with session.request(method, path, json=body) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

        yield call


async def _client(sim: Simulator, client_id: int) -> ib_async.IB:
    ib = ib_async.IB()
    await ib.connectAsync("127.0.0.1", sim.tws_port, clientId=client_id, timeout=5)
    return ib


@pytest.fixture
async def ib(sim: Simulator) -> AsyncIterator[ib_async.IB]:
    client = await _client(sim, 7)
    yield client
    client.disconnect()


async def _aapl(ib: ib_async.IB) -> ib_async.Contract:
    contract = ib_async.Stock("AAPL", "SMART", "USD")
    await ib.qualifyContractsAsync(contract)
    return contract


def _buy(ref: str, limit: float | None = None, qty: int = 10) -> ib_async.Order:
    order = ib_async.MarketOrder("BUY", qty) if limit is None else ib_async.LimitOrder(
        "BUY", qty, limit)
    order.orderRef = ref
    return order


# ---------------------------------------------------------------------------- settings


def test_knobs_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAX_HOME", str(tmp_path))
    monkeypatch.setenv("SIM_STALL", "true")
    monkeypatch.setenv("SIM_COMMISSION_DELAY_MS", "1500")
    faults = SimulatorSettings().sim_config(sim_runner.datetime.now(sim_runner.UTC)).faults
    assert (faults.stall, faults.commission_delay_ms) == (True, 1500)
    injector = FaultInjector(faults)
    assert injector.stalled()
    assert injector.commission_delay_seconds() == 1.5
    injector.set(stall=False)
    assert not injector.stalled()


def test_commission_delay_is_not_negative() -> None:
    with pytest.raises(ValueError, match="commission_delay_ms"):
        FaultConfig(commission_delay_ms=-1)


# ---------------------------------------------------------------------------- stall


async def test_stall_answers_nothing_until_lifted(
    sim: Simulator, http: Callable[..., Any], ib: ib_async.IB
) -> None:
    contract = await _aapl(ib)
    assert (await http("POST", "/faults", {"stall": True}))["stall"] is True
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.3)
    stuck = ib.placeOrder(contract, _buy("stalled-1"))
    await until(lambda: sim.exchange.faults.stalled_requests >= 2)
    assert ib.isConnected()  # the connection stays open: only silence
    assert sim.exchange.orders(ACCOUNT) == []  # nothing placed while stalled

    body = await http("POST", "/faults", {"stall": False})
    assert body["stall"] is False
    assert body["stalled_requests"] >= 2
    assert (await asyncio.wait_for(ib.reqCurrentTimeAsync(), 5)).year >= 2024
    fresh = ib.placeOrder(contract, _buy("after-stall"))
    await until(lambda: fresh.orderStatus.status == "Filled")
    assert [o.client_order_id for o in sim.exchange.orders(ACCOUNT)] == ["after-stall"]
    assert stuck.orderStatus.status == "PendingSubmit"  # a swallowed request stays unanswered
    placements = await http("GET", "/placements")
    assert placements["stalled-1"] == {"attempts": 1, "accepted": 0, "refused": 0, "codes": []}


async def test_stall_holds_pushes_until_lifted(
    sim: Simulator, http: Callable[..., Any], ib: ib_async.IB
) -> None:
    contract = await _aapl(ib)
    resting = ib.placeOrder(contract, _buy("resting", limit=140.0))
    await until(lambda: resting.orderStatus.status == "Submitted")
    await http("POST", "/faults", {"stall": True})
    sim.exchange.set_price("AAPL", Decimal("139.00"))
    assert sim.exchange.order(ACCOUNT, "resting").status.value == "filled"
    with pytest.raises(AssertionError, match="not met"):  # filled; the wedged door is silent
        await until(lambda: resting.fills, seconds=0.3)
    await http("POST", "/faults", {"stall": False})
    await until(lambda: resting.fills)


# ---------------------------------------------------------------------------- commissions


async def test_commission_report_comes_later(
    sim: Simulator, http: Callable[..., Any], ib: ib_async.IB
) -> None:
    seen: list[tuple[str, str]] = []
    ib.execDetailsEvent += lambda trade, fill: seen.append(("exec", fill.execution.orderRef))
    ib.commissionReportEvent += lambda trade, fill, report: seen.append(
        ("commission", fill.execution.orderRef))
    contract = await _aapl(ib)

    await http("POST", "/faults", {"commission_delay_ms": 60_000})  # not within this test
    slow = ib.placeOrder(contract, _buy("fee-later"))
    await until(lambda: slow.fills)
    assert slow.fills[0].commissionReport.execId == ""  # a fill without its commission
    other = await _client(sim, 8)
    try:  # a client asking for executions now gets this one without its commissionReport
        fills = await asyncio.wait_for(other.reqExecutionsAsync(), 5)
        assert [f.execution.orderRef for f in fills] == ["fee-later"]
        assert other.fills()[0].commissionReport.execId == ""
    finally:
        other.disconnect()

    await http("POST", "/faults", {"commission_delay_ms": 200})
    quick = ib.placeOrder(contract, _buy("fee-soon"))
    await until(lambda: ("commission", "fee-soon") in seen)
    assert seen.index(("exec", "fee-soon")) < seen.index(("commission", "fee-soon"))
    assert quick.fills[0].commissionReport.commission > 0
    assert ("commission", "fee-later") not in seen


# ---------------------------------------------------------------------------- placements


async def test_every_placement_is_counted_per_order_ref(
    sim: Simulator, http: Callable[..., Any], ib: ib_async.IB
) -> None:
    contract = await _aapl(ib)
    ok = ib.placeOrder(contract, _buy("ok-1", limit=140.0))
    await until(lambda: ok.orderStatus.status == "Submitted")
    ok.order.lmtPrice = 141.0  # a modification is a placeOrder too
    ib.placeOrder(contract, ok.order)
    await until(lambda: sim.exchange.order(ACCOUNT, "ok-1").limit_price == Decimal("141.00"))

    await http("POST", "/faults", {"rejected_symbols": "AAPL"})
    refused = ib.placeOrder(contract, _buy("bad-1", limit=140.0))
    await until(lambda: refused.orderStatus.status == "Cancelled")
    await http("POST", "/faults", {"rejected_symbols": "", "transient_error_rate": 1.0})
    busy = ib.placeOrder(contract, _buy("busy-1", limit=140.0))
    await until(lambda: busy.orderStatus.status == "Cancelled")

    assert await http("GET", "/placements") == {
        "ok-1": {"attempts": 2, "accepted": 2, "refused": 0, "codes": []},
        "bad-1": {"attempts": 1, "accepted": 0, "refused": 1, "codes": ["201"]},
        "busy-1": {"attempts": 1, "accepted": 0, "refused": 1, "codes": ["100"]},
    }


async def test_a_bracket_counts_each_leg(sim: Simulator, http: Callable[..., Any],
                                         ib: ib_async.IB) -> None:
    contract = await _aapl(ib)
    parent, tp, sl = ib.bracketOrder("BUY", 10, 140.0, 160.0, 130.0)
    parent.orderRef, tp.orderRef, sl.orderRef = "br", "br-tp", "br-sl"
    trades = [ib.placeOrder(contract, o) for o in (parent, tp, sl)]
    await until(lambda: all(t.order.permId for t in trades))
    counts = await http("GET", "/placements")
    assert {ref: (c["attempts"], c["accepted"]) for ref, c in counts.items()} == {
        "br": (1, 1), "br-tp": (1, 1), "br-sl": (1, 1),
    }  # fmt: skip


# ---------------------------------------------------------------------------- stopping


def test_standalone_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """First signal: a clean stop with a deadline; second signal or the deadline: exit now."""
    exits: list[str] = []
    fired = threading.Event()

    def record(why: str) -> None:
        exits.append(why)
        fired.set()

    monkeypatch.setattr(sim_runner, "_exit_now", record)
    stop = asyncio.Event()
    deadline = sim_runner._Deadline(stop, seconds=0.05)
    deadline.signalled()
    assert stop.is_set()
    assert fired.wait(5)
    assert "not stopped" in exits[0]
    deadline.signalled()
    assert exits[1] == "second signal"
    deadline.disarm()

    calm = sim_runner._Deadline(asyncio.Event(), seconds=0.05)
    calm.signalled()
    calm.disarm()  # stopped in time: the timer never fires
    assert calm.timer is not None
    calm.timer.join(1)
    assert len(exits) == 2
