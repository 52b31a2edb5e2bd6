"""A refused cancel (IB 10148: the order is finished already) is an answer to the cancel, not
the order's fate: an exit its OCA sibling's cancel took with it stays `cancelled`.

FLATTEN cancels the open orders one after another; cancelling a take-profit cancels its
stop-loss at the venue, and when the stop-loss's cancel reaches the venue before its
`Cancelled` status reached the adapter, the venue answers 10148. That error used to be kept
as the order's rejection, so every later report said `rejected` and reconciliation published
`rejected` for an exit the venue cancelled (tests/integration/test_kill_switch.py, FLATTEN)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import ib_async
import pytest

from brokers.exceptions import NotCancellable
from brokers.ib import IbOrderService, errors
from brokers.port import OrderRequest
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.tws import run_tws_server
from schemas.events import OrderStatus, OrderType, Side, TimeInForce
from tests.polling import until


@pytest.fixture
async def service() -> AsyncIterator[IbOrderService]:
    exchange = Exchange(SimConfig(seed=7))
    exchange.set_price("AAPL", Decimal("150.00"))
    server = await run_tws_server(exchange, port=0)
    svc = IbOrderService("127.0.0.1", server.port, client_id=21, ib_module=ib_async,
                         full_read_seconds=5.0)
    await svc.connect()
    yield svc
    await svc.close()
    await server.close()


def test_a_refused_cancel_is_not_an_order_rejection() -> None:
    for code in (10147, 10148):
        assert not errors.is_order_rejection(code)
        assert code in errors.CANCEL_REFUSALS
    assert isinstance(errors.to_exception(10148, "x"), NotCancellable)
    assert errors.is_order_rejection(201)


async def test_an_exit_cancelled_by_its_oca_sibling_stays_cancelled_after_a_refused_cancel(
        service: IbOrderService) -> None:
    await service.place(OrderRequest(
        client_order_id="oca-1", symbol="AAPL", side=Side.BUY, quantity=Decimal(10),
        order_type=OrderType.MKT, time_in_force=TimeInForce.DAY,
        take_profit=Decimal("156.00"), stop_loss=Decimal("147.00")))
    # the entry filled: both exits are working
    await until(lambda: sorted(t.order.orderRef for t in service.ib.openTrades()
                               if t.orderStatus.status == "Submitted") == ["oca-1-sl", "oca-1-tp"])
    sl_id = next(t.order.orderId for t in service.ib.trades() if t.order.orderRef == "oca-1-sl")
    # Both cancels go out before any answer: the stop-loss's reaches the venue after the
    # take-profit's cancel took it (OCA), so the venue refuses it with 10148.
    results = await asyncio.gather(service.cancel("oca-1-tp"), service.cancel("oca-1-sl"),
                                   return_exceptions=True)
    assert not isinstance(results[0], BaseException), results[0]
    await until(lambda: service._order_errors.get(sl_id, (0, ""))[0] == 10148)
    assert (await service.status("oca-1-tp")).status is OrderStatus.CANCELLED
    assert (await service.status("oca-1-sl")).status is OrderStatus.CANCELLED
    assert {o.client_order_id for o in await service.open_orders()} == set()
