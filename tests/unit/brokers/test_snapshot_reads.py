"""The combined snapshot reads (account_and_positions, orders_and_open_orders) go through the
deadline and the pacer in one call where the venue offers them, and fall back to the two
port calls where it does not: the same answers either way."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from agents.venue_view import account_and_positions, orders_and_open_orders
from brokers.bounded import BoundedVenue
from brokers.pacing import Pace, PacedVenue, Pacer
from brokers.port import AccountSnapshot, OrderReport, Position
from tests.fakes import T0, FakeVenue


class CombinedVenue(FakeVenue):
    """A FakeVenue that also answers the two combined reads, counting them."""

    def __init__(self) -> None:
        super().__init__()
        self.combined: list[str] = []

    async def account_and_positions(self) -> tuple[AccountSnapshot, list[Position]]:
        self.combined.append("account_and_positions")
        return await self.account(), await self.positions()

    async def orders_and_open_orders(self, since: datetime
                                     ) -> tuple[list[OrderReport], list[OrderReport]]:
        self.combined.append("orders_and_open_orders")
        return await self.orders_since(since), await self.open_orders()


def wrapped(inner: FakeVenue, kind: str) -> Any:
    if kind == "bounded":
        return BoundedVenue(inner, timeout=5)
    return PacedVenue(inner, Pacer(f"test:{id(inner)}", Pace(1000, 1.0)))


@pytest.mark.parametrize("kind", ["bounded", "paced"])
@pytest.mark.parametrize("combined", [True, False])
async def test_combined_reads_pass_through_or_fall_back(kind: str, combined: bool) -> None:
    inner = CombinedVenue() if combined else FakeVenue()
    venue = wrapped(inner, kind)
    account, positions = await account_and_positions(venue)
    sent, open_orders = await orders_and_open_orders(venue, T0)
    assert account == await inner.account()
    assert positions == await inner.positions()
    assert (sent, open_orders) == (await inner.orders_since(T0), await inner.open_orders())
    if isinstance(inner, CombinedVenue):
        assert inner.combined == ["account_and_positions", "orders_and_open_orders"]


async def test_paced_combined_read_costs_its_messages() -> None:
    pacer = Pacer("test:cost", Pace(1000, 1.0))
    venue = PacedVenue(CombinedVenue(), pacer)
    await venue.orders_and_open_orders(T0)
    await venue.account_and_positions()
    assert pacer.sent_total == 3  # open + completed orders, then one account read
