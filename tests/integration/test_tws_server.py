"""The TWS front door with the real client libraries over real sockets (in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import ib_async
import ib_insync
import pytest

from brokers.exceptions import VenueTimeout
from brokers.ib import IbOrderService
from brokers.port import OrderRequest
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.store import SimStore
from brokers.sim.tws import TwsServer, run_tws_server
from schemas.events import OrderLeg, OrderStatus, OrderType, Side
from tests.polling import until

pytestmark = pytest.mark.integration
LIBS = [ib_async, ib_insync]
ACCOUNT = "DU0000001"



@pytest.fixture
def exchange() -> Exchange:
    return Exchange(SimConfig(seed=3))


@pytest.fixture
async def server(exchange: Exchange) -> AsyncIterator[TwsServer]:
    srv = await run_tws_server(exchange, port=0)
    yield srv
    await srv.close()


@pytest.mark.parametrize("lib", LIBS)
async def test_handshake_and_qualify(lib: Any, server: TwsServer) -> None:
    ib = lib.IB()
    await ib.connectAsync("127.0.0.1", server.port, clientId=3, timeout=3)
    try:
        assert ib.managedAccounts() == [ACCOUNT]
        assert ib.client.serverVersion() == 176
        values = {v.tag: v.value for v in ib.accountValues()}
        assert values["NetLiquidation"] == "100000"
        assert values["AccountCode"] == ACCOUNT
        contract = lib.Stock("AAPL", "SMART", "USD")
        await ib.qualifyContractsAsync(contract)
        assert contract.conId > 0
        assert contract.primaryExchange
        details = await ib.reqContractDetailsAsync(lib.Stock("MSFT", "SMART", "USD"))
        assert details[0].minTick == 0.01
        assert not await ib.reqContractDetailsAsync(lib.Stock("NOSUCH", "SMART", "USD"))
        assert (await ib.reqCurrentTimeAsync()).year >= 2024
    finally:
        ib.disconnect()


@pytest.mark.parametrize("lib", LIBS)
async def test_bracket_over_the_wire(lib: Any, server: TwsServer, exchange: Exchange) -> None:
    exchange.set_price("AAPL", Decimal("150.00"))
    ib = lib.IB()
    await ib.connectAsync("127.0.0.1", server.port, clientId=4, timeout=3)
    try:
        contract = lib.Stock("AAPL", "SMART", "USD")
        await ib.qualifyContractsAsync(contract)
        parent, tp, sl = ib.bracketOrder("BUY", 10, 140.0, 160.0, 130.0)
        parent.orderRef, tp.orderRef, sl.orderRef = "br1", "br1-tp", "br1-sl"
        trades = [ib.placeOrder(contract, o) for o in (parent, tp, sl)]
        await until(lambda: all(t.order.permId for t in trades))
        reports = exchange.orders(ACCOUNT)
        assert {r.client_order_id: r.leg for r in reports} == {
            "br1": OrderLeg.ENTRY, "br1-tp": OrderLeg.TAKE_PROFIT, "br1-sl": OrderLeg.STOP_LOSS,
        }  # fmt: skip
        exchange.set_price("AAPL", Decimal("139.00"))
        await until(lambda: trades[0].orderStatus.status == "Filled")
        exchange.set_price("AAPL", Decimal("161.00"))
        await until(lambda: trades[1].orderStatus.status == "Filled")
        await until(lambda: trades[2].orderStatus.status == "Cancelled")
        assert [f.execution.orderRef for f in ib.fills()] == ["br1", "br1-tp"]
    finally:
        ib.disconnect()


async def test_modify_resting_and_103_on_finished(server: TwsServer, exchange: Exchange) -> None:
    exchange.set_price("AAPL", Decimal("150.00"))
    ib = ib_async.IB()
    await ib.connectAsync("127.0.0.1", server.port, clientId=5, timeout=3)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, *_: errors.append(code)
    try:
        contract = ib_async.Stock("AAPL", "SMART", "USD")
        await ib.qualifyContractsAsync(contract)
        trade = ib.placeOrder(contract, ib_async.LimitOrder("BUY", 5, 140.0, orderRef="m1"))
        await until(lambda: trade.orderStatus.status == "Submitted")
        ib.cancelOrder(trade.order)
        await until(lambda: trade.orderStatus.status == "Cancelled")
        assert 202 in errors or trade.orderStatus.status == "Cancelled"
        ib.client.placeOrder(trade.order.orderId, contract, trade.order)
        await until(lambda: 103 in errors)
    finally:
        ib.disconnect()


async def test_client_id_in_use_then_reconnect(server: TwsServer) -> None:
    first = ib_async.IB()
    await first.connectAsync("127.0.0.1", server.port, clientId=9, timeout=3)
    second = ib_async.IB()
    with pytest.raises((ConnectionError, TimeoutError, asyncio.TimeoutError)):
        await second.connectAsync("127.0.0.1", server.port, clientId=9, timeout=1)
    first.disconnect()
    await until(lambda: 9 not in server.sessions)
    await second.connectAsync("127.0.0.1", server.port, clientId=9, timeout=3)
    assert second.isConnected()
    second.disconnect()


@pytest.mark.parametrize("lib", LIBS)
async def test_outage_1100_1102_and_adapter_recovers(lib: Any, exchange: Exchange) -> None:
    server = await run_tws_server(exchange, port=0, faults=exchange.faults)
    svc = IbOrderService("127.0.0.1", server.port, client_id=21, ib_module=lib, timeout=3)
    seen: list[int] = []
    svc.ib.errorEvent += lambda req_id, code, *_: seen.append(code)
    try:
        await svc.connect()
        exchange.set_price("AAPL", Decimal("150.00"))
        exchange.faults.start_outage(0.3)
        await until(lambda: 1100 in seen)
        request = OrderRequest(client_order_id="out-1", symbol="AAPL", side=Side.BUY,
                               quantity=Decimal(3), order_type=OrderType.MKT)  # fmt: skip
        report = await svc.place(request)
        assert 1102 in seen
        assert report.client_order_id == "out-1"
        assert (await svc.status("out-1")).status is OrderStatus.FILLED
        assert len([o for o in exchange.orders(ACCOUNT) if o.client_order_id == "out-1"]) == 1
    finally:
        await svc.close()
        await server.close()


@pytest.mark.parametrize("lib", LIBS)
async def test_a_placement_in_flight_is_no_order_at_the_venue(lib: Any, exchange: Exchange
                                                               ) -> None:
    """Until the venue acknowledges a placement, no read shows it: reconciliation would
    publish an order the venue may yet refuse (a transient refusal, retried by the stage), and
    the venue snapshot would count it as placed, releasing its reservation, until the refusal
    hid it again. Here the venue swallows the placement (a stall): it never becomes an order."""
    server = await run_tws_server(exchange, port=0, faults=exchange.faults)
    svc = IbOrderService("127.0.0.1", server.port, client_id=24, ib_module=lib, timeout=2,
                         full_read_seconds=60)  # reads between full reads: pushed state
    since = datetime.now(UTC) - timedelta(minutes=1)

    def order(coid: str) -> OrderRequest:
        return OrderRequest(client_order_id=coid, symbol="AAPL", side=Side.BUY,
                            quantity=Decimal(3), order_type=OrderType.LMT,
                            limit_price=Decimal("100.00"))  # rests: below the market

    async def shown() -> set[str]:
        sent, open_now = await svc.orders_and_open_orders(since)
        return ({r.client_order_id for r in [*sent, *open_now, *await svc.open_orders()]}
                | {r.client_order_id for r in await svc.orders_since(since)})

    try:
        await svc.connect()
        exchange.set_price("AAPL", Decimal("150.00"))
        await svc.place(order("rest-1"))  # qualifies AAPL before the stall
        assert await shown() == {"rest-1"}  # and makes the full reads
        exchange.faults.set(stall=True)
        placing = asyncio.create_task(svc.place(order("flight-1")))
        await until(lambda: any(t.order.orderRef == "flight-1" for t in svc.ib.trades()))
        assert await shown() == {"rest-1"}
        exchange.faults.set(stall=False)
        with pytest.raises(VenueTimeout):  # unanswered, and not found at the venue either
            await placing
        assert await shown() == {"rest-1"}
        await svc.place(order("flight-1"))  # the stage's retry: now an order, and shown
        assert await shown() == {"rest-1", "flight-1"}
        assert [o.client_order_id for o in exchange.orders(ACCOUNT)] == ["rest-1", "flight-1"]
    finally:
        await svc.close()
        await server.close()


async def test_read_afresh_shows_another_sessions_order_before_the_next_full_read(
        exchange: Exchange) -> None:
    """Between its full reads an IB session answers from what TWS pushes to it, which holds
    none of another session's orders: a worker given the partitions of one that stopped
    would not see an order that worker placed, and would place its redelivered intent
    again. After read_afresh (agents.context.StageContext.partitions_moved) it sees it."""
    server = await run_tws_server(exchange, port=0)
    placer = IbOrderService("127.0.0.1", server.port, client_id=25, timeout=2)
    heir = IbOrderService("127.0.0.1", server.port, client_id=26, timeout=2,
                          full_read_seconds=60)
    since = datetime.now(UTC) - timedelta(minutes=1)
    try:
        await placer.connect()
        await heir.connect()
        exchange.set_price("AAPL", Decimal("150.00"))
        assert await heir.orders_since(since) == []  # a full read: the next ones use pushes
        await placer.place(OrderRequest(client_order_id="moved-1", symbol="AAPL", side=Side.BUY,
                                        quantity=Decimal(3), order_type=OrderType.LMT,
                                        limit_price=Decimal("100.00")))
        assert await heir.orders_since(since) == []
        assert heir.wire_messages("orders_since") == 0
        heir.read_afresh()
        assert heir.wire_messages("orders_since") == 2  # open and completed orders
        assert [r.client_order_id for r in await heir.orders_since(since)] == ["moved-1"]
        assert [r.client_order_id for r in await heir.open_orders()] == ["moved-1"]
    finally:
        await placer.close()
        await heir.close()
        await server.close()


async def test_adapter_reconnects_after_server_drop(exchange: Exchange) -> None:
    server = await run_tws_server(exchange, port=0)
    svc = IbOrderService("127.0.0.1", server.port, client_id=22, timeout=3)
    try:
        await svc.connect()
        for session in list(server.sessions.values()):
            session.abort()
        await until(lambda: not svc.ib.isConnected())
        snap = await svc.account()
        assert snap.equity == Decimal(100000)
        assert svc.ib.isConnected()
    finally:
        await svc.close()
        await server.close()


async def test_simulator_restart_keeps_orders_fills_positions(tmp_path: Path) -> None:
    path = tmp_path / "sim.sqlite"
    exchange = Exchange(SimConfig(seed=3), store=SimStore(path))
    server = await run_tws_server(exchange, port=0)
    svc = IbOrderService("127.0.0.1", server.port, client_id=23, timeout=3)
    await svc.connect()
    exchange.set_price("AAPL", Decimal("150.00"))
    await svc.place(OrderRequest(client_order_id="keep-fill", symbol="AAPL", side=Side.BUY,
                                 quantity=Decimal(4), order_type=OrderType.MKT))  # fmt: skip
    await svc.place(OrderRequest(client_order_id="keep-rest", symbol="AAPL", side=Side.BUY,
                                 quantity=Decimal(2), order_type=OrderType.LMT,
                                 limit_price=Decimal("120.00")))  # fmt: skip
    await until(lambda: len(exchange.fills(ACCOUNT)) == 1)
    await server.close()
    await svc.close()

    reborn = Exchange(SimConfig(seed=3), store=SimStore(path))
    server = await run_tws_server(reborn, port=0)
    svc = IbOrderService("127.0.0.1", server.port, client_id=23, timeout=3)
    try:
        await svc.connect()
        assert [o.client_order_id for o in await svc.open_orders()] == ["keep-rest"]
        fills = await svc.fills_since(reborn.now().replace(year=2000))
        assert [f.client_order_id for f in fills] == ["keep-fill"]
        assert [(p.symbol, p.quantity) for p in await svc.positions()] == [("AAPL", Decimal(4))]
        cancelled = await svc.cancel("keep-rest")
        assert cancelled.status in (OrderStatus.CANCELLED, OrderStatus.ACCEPTED)
    finally:
        await svc.close()
        await server.close()
