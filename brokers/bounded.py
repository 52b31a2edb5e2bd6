"""BoundedVenue: any OrderService with a deadline on every call.

The generic guarantee, whatever sits behind the port: no venue call outlives `timeout`. An
adapter bounds its own library calls too (brokers/ib does), but a stage must not depend on
every adapter getting that right, so the wiring wraps each venue once in this.

Each call also passes through an observer (the port `CallObserver`): the wiring gives the
metrics hook of agents/metrics.py, so brokers/ counts nothing itself and imports no stage code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from brokers.exceptions import VenueTimeout
from brokers.port import (
    AccountSnapshot,
    FillReport,
    InstrumentRules,
    OrderReport,
    OrderRequest,
    OrderService,
    Position,
    orders_shown_within,
    read_afresh,
)

T = TypeVar("T")


class CallObserver(Protocol):
    """Watches one venue call (counts, times it) and returns its result untouched; `operation`
    is the method name only ("place", never an order id), fit for a metric label."""

    def __call__(self, venue: str, operation: str, call: Awaitable[T]) -> Awaitable[T]: ...


async def unobserved(venue: str, operation: str, call: Awaitable[T]) -> T:
    """The observer when none is given: the call itself."""
    return await call


class BoundedVenue:
    """OrderService by delegation; every method under `asyncio.timeout(timeout)`, and a
    TimeoutError (ours or the inner service's) becomes VenueTimeout (transient, code
    "timeout")."""

    def __init__(self, service: OrderService, timeout: float,
                 observe: CallObserver = unobserved) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.inner = service
        self.venue = service.venue
        self.timeout = timeout
        self.observe = observe

    async def _within(self, operation: str, call: Awaitable[T], subject: str = "") -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.observe(self.venue, operation, call)
        except TimeoutError as exc:
            described = f"{operation} {subject}" if subject else operation
            raise VenueTimeout(described, self.timeout, self.venue) from exc

    @property
    def orders_shown_within(self) -> timedelta:
        """The inner adapter's (agents.venue_view)."""
        return orders_shown_within(self.inner)

    def read_afresh(self) -> None:
        """The inner adapter's (agents.context.StageContext.partitions_moved)."""
        read_afresh(self.inner)

    def wire_messages(self, operation: str, *args: object) -> int | None:
        """The inner adapter's count of what a call will send, if it gives one (PacedVenue
        charges it); None: the published cost."""
        told = getattr(self.inner, "wire_messages", None)
        found: int | None = told(operation, *args) if told is not None else None
        return found

    async def connect(self) -> None:
        await self._within("connect", self.inner.connect())

    async def close(self) -> None:
        await self._within("close", self.inner.close())

    async def place(self, order: OrderRequest) -> OrderReport:
        return await self._within("place", self.inner.place(order), order.client_order_id)

    async def status(self, client_order_id: str) -> OrderReport:
        return await self._within("status", self.inner.status(client_order_id),
                                  client_order_id)

    async def cancel(self, client_order_id: str) -> OrderReport:
        return await self._within("cancel", self.inner.cancel(client_order_id),
                                  client_order_id)

    async def account(self) -> AccountSnapshot:
        return await self._within("account", self.inner.account())

    async def positions(self) -> list[Position]:
        return await self._within("positions", self.inner.positions())

    async def open_orders(self) -> list[OrderReport]:
        return await self._within("open_orders", self.inner.open_orders())

    async def fills_since(self, since: datetime) -> list[FillReport]:
        return await self._within("fills_since", self.inner.fills_since(since))

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        return await self._within("orders_since", self.inner.orders_since(since))

    async def account_and_positions(self) -> tuple[AccountSnapshot, list[Position]]:
        """Both from one venue read where the venue offers it (agents.venue_view)."""
        both = getattr(self.inner, "account_and_positions", None)
        if both is None:
            return await self.account(), await self.positions()
        found: tuple[AccountSnapshot, list[Position]] = await self._within(
            "account_and_positions", both())
        return found

    async def orders_and_open_orders(self, since: datetime
                                     ) -> tuple[list[OrderReport], list[OrderReport]]:
        """orders_since and open_orders from one venue read where the venue offers it."""
        both = getattr(self.inner, "orders_and_open_orders", None)
        if both is None:
            return await self.orders_since(since), await self.open_orders()
        found: tuple[list[OrderReport], list[OrderReport]] = await self._within(
            "orders_and_open_orders", both(since))
        return found

    async def instrument(self, symbol: str, borrow: bool = True) -> InstrumentRules | None:
        published = getattr(self.inner, "instrument", None)  # a test fake may not have it
        if published is None:
            return None
        rules: InstrumentRules | None = await self._within("instrument",
                                                           published(symbol, borrow),
                                                           symbol)
        return rules
