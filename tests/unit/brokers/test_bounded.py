"""BoundedVenue: delegation, and a deadline on every method over a venue that hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from brokers.bounded import BoundedVenue
from brokers.exceptions import OrderRejected, TransientBrokerError, VenueTimeout
from brokers.port import (
    AccountSnapshot,
    FillReport,
    OrderReport,
    OrderRequest,
    OrderService,
    Position,
)
from schemas.events import OrderType, Side
from tests.fakes import T0, FakeVenue

DEADLINE = 0.05
TEST_BOUND = 5.0  # the test's own guard: a hang fails the test instead of the run


def _request(cid: str = "c-1") -> OrderRequest:
    return OrderRequest(
        client_order_id=cid, symbol="AAPL", side=Side.BUY, quantity=Decimal(5),
        order_type=OrderType.MKT,
    )  # fmt: skip


class HangingVenue(FakeVenue):
    """FakeVenue whose calls never return while `hanging`; notes the calls it saw cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.hanging = True
        self.cancelled: list[str] = []
        self._never = asyncio.Event()

    async def _stall(self, name: str) -> None:
        if not self.hanging:
            return
        try:
            await self._never.wait()
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise

    async def connect(self) -> None:
        await self._stall("connect")
        await super().connect()

    async def close(self) -> None:
        await self._stall("close")
        await super().close()

    async def place(self, order: OrderRequest) -> OrderReport:
        await self._stall("place")
        return await super().place(order)

    async def status(self, client_order_id: str) -> OrderReport:
        await self._stall("status")
        return await super().status(client_order_id)

    async def cancel(self, client_order_id: str) -> OrderReport:
        await self._stall("cancel")
        return await super().cancel(client_order_id)

    async def account(self) -> AccountSnapshot:
        await self._stall("account")
        return await super().account()

    async def positions(self) -> list[Position]:
        await self._stall("positions")
        return await super().positions()

    async def open_orders(self) -> list[OrderReport]:
        await self._stall("open_orders")
        return await super().open_orders()

    async def fills_since(self, since: datetime) -> list[FillReport]:
        await self._stall("fills_since")
        return await super().fills_since(since)

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        await self._stall("orders_since")
        return await super().orders_since(since)


CALLS: dict[str, Callable[[OrderService], Awaitable[Any]]] = {
    "connect": lambda s: s.connect(),
    "close": lambda s: s.close(),
    "place": lambda s: s.place(_request()),
    "status": lambda s: s.status("c-1"),
    "cancel": lambda s: s.cancel("c-1"),
    "account": lambda s: s.account(),
    "positions": lambda s: s.positions(),
    "open_orders": lambda s: s.open_orders(),
    "fills_since": lambda s: s.fills_since(T0),
    "orders_since": lambda s: s.orders_since(T0),
}


def test_satisfies_the_port_and_exposes_the_inner_service() -> None:
    inner = FakeVenue()
    bounded = BoundedVenue(inner, DEADLINE)
    assert isinstance(bounded, OrderService)
    assert bounded.inner is inner
    assert bounded.venue == "fake"
    assert bounded.timeout == DEADLINE


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_refuses_a_deadline_that_is_not_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        BoundedVenue(FakeVenue(), timeout)


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_every_method_times_out_over_a_hanging_venue(name: str) -> None:
    inner = HangingVenue()
    bounded = BoundedVenue(inner, DEADLINE)
    async with asyncio.timeout(TEST_BOUND):
        with pytest.raises(VenueTimeout) as caught:
            await CALLS[name](bounded)
    assert isinstance(caught.value, TransientBrokerError)
    assert caught.value.code == "timeout"
    assert caught.value.transient is True
    assert name in caught.value.message
    assert "fake" in caught.value.message
    assert inner.cancelled == [name]  # the hung call is cancelled, not left running


async def test_concurrent_calls_over_a_hanging_venue_all_fail_in_time() -> None:
    inner = HangingVenue()
    bounded = BoundedVenue(inner, DEADLINE)
    async with asyncio.timeout(TEST_BOUND):
        outcomes = await asyncio.gather(
            *(call(bounded) for call in CALLS.values()), return_exceptions=True
        )
    assert all(isinstance(o, VenueTimeout) for o in outcomes), outcomes
    assert sorted(inner.cancelled) == sorted(CALLS)


async def test_delegates_results_and_arguments() -> None:
    inner = HangingVenue()
    inner.hanging = False
    bounded = BoundedVenue(inner, DEADLINE)
    await bounded.connect()
    placed = await bounded.place(_request("c-9"))
    assert placed.client_order_id == "c-9"
    assert (await bounded.status("c-9")) == placed
    assert [o.client_order_id for o in await bounded.open_orders()] == ["c-9"]
    await bounded.close()
    assert [name for name, _ in inner.calls] == ["connect", "place", "status", "close"]


async def test_venue_errors_pass_through_unchanged() -> None:
    inner = FakeVenue()
    refusal = OrderRejected("IB error 201: no", code="201")
    inner.fail_next.append(refusal)
    with pytest.raises(OrderRejected) as caught:
        await BoundedVenue(inner, DEADLINE).place(_request())
    assert caught.value is refusal


async def test_an_inner_timeout_error_is_transient_too() -> None:
    inner = FakeVenue()
    inner.fail_next.append(TimeoutError("library gave up"))
    with pytest.raises(VenueTimeout) as caught:
        await BoundedVenue(inner, DEADLINE).place(_request())
    assert caught.value.code == "timeout"
