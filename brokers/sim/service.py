"""The in-process front door: brokers.port.OrderService over one simulator account.

It adds what a network hop would: the fault injector's latency, outages, dropped connections
and transient errors surface as TransientBrokerError before the request reaches the core, so
a refused request never half-happens. Its errors carry the neutral reasons as codes (this
venue has no wire of its own).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from brokers.port import (
    AccountSnapshot,
    FillReport,
    InstrumentRules,
    OrderReport,
    OrderRequest,
    Position,
)
from brokers.sim.core import Exchange
from brokers.sim.reasons import Reason, refusal


class SimOrderService:
    """OrderService for venue "sim"; async only so callers treat it like any remote venue."""

    venue = "sim"

    def __init__(self, exchange: Exchange, account_id: str | None = None) -> None:
        self.exchange = exchange
        self.account_id = account_id or exchange.config.default_account_id
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        """Fails transiently during an outage, like a real gateway that is down."""
        await self._network()
        self.exchange.account_snapshot(self.account_id)  # unknown account fails loudly here
        self._connected = True

    async def close(self) -> None:
        self._connected = False

    async def _network(self) -> None:
        faults = self.exchange.faults
        delay = faults.latency_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        if faults.in_outage(self.exchange.now()):
            raise refusal(Reason.OUTAGE, "the simulated venue is unreachable (outage)")
        if faults.should_drop():
            raise refusal(Reason.OUTAGE, "connection dropped by the venue")
        if faults.transient_error():
            raise refusal(Reason.VENUE_BUSY, "venue temporarily unavailable, retry")

    async def _gate(self) -> None:
        if not self._connected:
            raise refusal(Reason.OUTAGE, "not connected")
        await self._network()

    async def place(self, order: OrderRequest) -> OrderReport:
        await self._gate()
        return self.exchange.place(self.account_id, order)[0]

    async def status(self, client_order_id: str) -> OrderReport:
        await self._gate()
        return self.exchange.order(self.account_id, client_order_id)

    async def cancel(self, client_order_id: str) -> OrderReport:
        await self._gate()
        return self.exchange.cancel(self.account_id, client_order_id)

    async def account(self) -> AccountSnapshot:
        await self._gate()
        return self.exchange.account_snapshot(self.account_id)

    async def positions(self) -> list[Position]:
        await self._gate()
        return self.exchange.positions(self.account_id)

    async def open_orders(self) -> list[OrderReport]:
        await self._gate()
        return self.exchange.orders(self.account_id, open_only=True)

    async def fills_since(self, since: datetime) -> list[FillReport]:
        await self._gate()
        return self.exchange.fills(self.account_id, since)

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        await self._gate()
        recent = self.exchange.orders(self.account_id, since=since)
        return sorted(recent, key=lambda o: o.created_at)

    async def instrument(self, symbol: str, borrow: bool = True) -> InstrumentRules | None:
        """The simulator knows its instruments: everything it enforces is published
        (shortability too, whatever `borrow` says: it costs nothing)."""
        await self._gate()
        return instrument_rules(self.exchange, symbol)


def instrument_rules(exchange: Exchange, symbol: str) -> InstrumentRules:
    """What the core enforces for `symbol` (UNKNOWN_INSTRUMENT refusal when it has none)."""
    found = exchange.instrument(symbol)
    lot = found.lot_size
    return InstrumentRules(
        symbol=found.symbol,
        lot_size=lot,
        min_quantity=getattr(found, "min_quantity", None) or lot,
        max_quantity=getattr(found, "max_quantity", None),
        tick_size=found.min_tick,
        fractional=lot % 1 != 0,
        shortable=exchange.config.shorting_enabled and found.shortable,
        currency=found.currency,
    )
