from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.exceptions import TransientBrokerError
from brokers.port import OrderService
from brokers.sim.core import Exchange
from brokers.sim.reasons import Reason
from brokers.sim.service import SimOrderService
from schemas.events import OrderStatus
from tests.unit.brokers.conftest import ACCOUNT, FakeClock, req


async def test_service_round_trip(exchange: Exchange) -> None:
    service = SimOrderService(exchange)
    assert isinstance(service, OrderService)
    assert service.venue == "sim"
    await service.connect()
    report = await service.place(req("a", take_profit="160", stop_loss="145"))
    assert report.client_order_id == "a"
    assert report.status is OrderStatus.FILLED
    assert {o.client_order_id for o in await service.open_orders()} == {"a-tp", "a-sl"}
    assert (await service.positions())[0].quantity == Decimal(10)
    assert (await service.account()).account_id == ACCOUNT
    assert len(await service.fills_since(exchange.now())) == 1
    await service.close()


async def test_calls_before_connect_are_transient(exchange: Exchange) -> None:
    service = SimOrderService(exchange)
    with pytest.raises(TransientBrokerError):
        await service.account()


async def test_outage_and_drop_are_transient_and_place_nothing(
    exchange: Exchange, clock: FakeClock
) -> None:
    service = SimOrderService(exchange)
    await service.connect()
    exchange.faults.start_outage(10)
    with pytest.raises(TransientBrokerError) as caught:
        await service.place(req("o"))
    assert caught.value.reason is Reason.OUTAGE
    clock.tick(11)
    exchange.faults.set(drop_probability=1.0)
    with pytest.raises(TransientBrokerError):
        await service.place(req("o"))
    exchange.faults.set(drop_probability=0.0)
    assert exchange.orders(ACCOUNT) == []
    await service.place(req("o"))


async def test_latency_is_applied(exchange: Exchange) -> None:
    exchange.faults.set(latency_ms=1)
    service = SimOrderService(exchange)
    await service.connect()
    assert (await service.account()).equity == Decimal(100000)
