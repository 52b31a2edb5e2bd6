"""Shared fixtures for the simulator unit tests: a fixed clock and a fresh exchange."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from brokers.port import OrderRequest
from brokers.sim.core import Exchange, SimConfig
from schemas.events import OrderType, Side

ACCOUNT = "DU0000001"
START = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


class FakeClock:
    """A clock tests move by hand, so timestamps are deterministic."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def exchange(clock: FakeClock) -> Exchange:
    return Exchange(SimConfig(seed=11), clock=clock)


def req(
    cid: str,
    symbol: str = "AAPL",
    side: Side = Side.BUY,
    qty: int | str = 10,
    order_type: OrderType = OrderType.MKT,
    **more: Any,
) -> OrderRequest:
    """Terse order builder: prices may be given as strings."""
    for key in ("limit_price", "stop_price", "take_profit", "stop_loss"):
        if key in more and more[key] is not None:
            more[key] = Decimal(str(more[key]))
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        side=side,
        quantity=Decimal(str(qty)),
        order_type=order_type,
        **more,
    )
