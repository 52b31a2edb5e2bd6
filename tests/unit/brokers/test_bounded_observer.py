"""BoundedVenue's observer port: every call passes through it once, labelled by operation only
(never an order id, which would make one metric series per order)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from decimal import Decimal
from typing import TypeVar

import pytest

from brokers.bounded import BoundedVenue
from brokers.exceptions import VenueTimeout
from brokers.port import OrderRequest
from schemas.events import OrderType, Side
from tests.fakes import FakeVenue

T = TypeVar("T")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, venue: str, operation: str, call: Awaitable[T]) -> T:
        self.seen.append((venue, operation))
        return await call


def _request(cid: str) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="AAPL", side=Side.BUY,
                        quantity=Decimal(5), order_type=OrderType.MKT)


async def test_each_call_is_observed_once_by_operation_name() -> None:
    observed = Recorder()
    bounded = BoundedVenue(FakeVenue(), 1.0, observe=observed)
    await bounded.connect()
    await bounded.place(_request("c-7"))
    await bounded.status("c-7")
    await bounded.cancel("c-7")
    assert observed.seen == [("fake", "connect"), ("fake", "place"), ("fake", "status"),
                             ("fake", "cancel")]


async def test_a_timeout_still_names_the_order_in_its_message() -> None:
    class Slow(FakeVenue):
        async def status(self, client_order_id: str):  # type: ignore[no-untyped-def]
            await asyncio.sleep(10)

    observed = Recorder()
    with pytest.raises(VenueTimeout, match="status c-3"):
        await BoundedVenue(Slow(), 0.05, observe=observed).status("c-3")
    assert observed.seen == [("fake", "status")]


async def test_without_an_observer_the_call_is_the_call() -> None:
    bounded = BoundedVenue(FakeVenue(), 1.0)
    report = await bounded.place(_request("c-1"))
    assert report.client_order_id == "c-1"
