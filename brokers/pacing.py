"""PacedVenue: any OrderService whose outgoing messages stay within the venue's published rate.

A venue that is sent more than it allows disconnects (IB: more than 50 messages a second
drops the session) or answers 429 (Alpaca, OANDA), so a burst is queued here rather than
refused: each call waits its turn, first come first served, until the last `period` holds
room for its messages. The window is a sliding log of send times, so no interval of length
`period` ever holds more than `limit` messages (a token bucket refilled at the same rate could
let two buckets' worth through one window). `queue_depth()` is how many calls wait now;
`queue_depths()` gives it per pacer, for the metrics exporter.

Published limits (each adapter's own library may pace too; this is the guarantee the stage
does not have to trust every adapter for):
- IB TWS API: 50 messages per second per connection; a bracket is three orders (3 messages).
  Paced here at 45, what ib_async and ib_insync themselves send at most (Client.MaxRequests):
  at 50 the excess would wait in the library's own queue, inside the call's deadline.
- Alpaca Trading API: 200 requests per minute per account.
- OANDA v20: 100 requests per second on a persistent connection (its best practices; the
  hard limit is 120).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

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


@dataclass(frozen=True)
class Pace:
    """At most `limit` messages in any `period` seconds."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= 0:
            raise ValueError(f"a pace needs limit >= 1 and period > 0, got {self}")

    def __str__(self) -> str:
        return f"{self.limit} per {self.period:g}s"


PUBLISHED: dict[str, Pace] = {
    "ib": Pace(45, 1.0),
    "alpaca": Pace(200, 60.0),
    "oanda": Pace(100, 1.0),
}


def bracket_messages(order: OrderRequest) -> int:
    """Messages a placement costs: the entry plus each bracket exit (IB sends each order)."""
    return 1 + (order.take_profit is not None) + (order.stop_loss is not None)


class Pacer:
    """A sliding-window limiter with a FIFO queue; the clock and sleep are injectable."""

    def __init__(self, name: str, pace: Pace, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.name = name
        self.pace = pace
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._turn = asyncio.Lock()  # asyncio.Lock wakes waiters in arrival order
        self.waiting = 0
        self.max_waiting = 0
        self.sent_total = 0
        self.waited_seconds = 0.0

    def queue_depth(self) -> int:
        """Calls waiting for their turn now."""
        return self.waiting

    async def acquire(self, messages: int = 1) -> None:
        """Wait until `messages` more fit in the window, then count them as sent now."""
        cost = min(max(messages, 1), self.pace.limit)
        self.waiting += 1
        self.max_waiting = max(self.max_waiting, self.waiting)
        try:
            async with self._turn:
                started = self._clock()
                while True:
                    now = self._clock()
                    while self._sent and now - self._sent[0] >= self.pace.period:
                        self._sent.popleft()
                    if len(self._sent) + cost <= self.pace.limit:
                        break
                    await self._sleep(self._sent[len(self._sent) + cost - self.pace.limit - 1]
                                      + self.pace.period - now)
                self._sent.extend([now] * cost)
                self.sent_total += cost
                self.waited_seconds += now - started
        finally:
            self.waiting -= 1


# Messages one instrument() call sends: on IB contract details (first time), the market-data
# request for shortability (generic tick 236) and its cancel.
INSTRUMENT_MESSAGES = {"ib": 3}

_PACERS: dict[str, Pacer] = {}


def pacer_for(name: str, pace: Pace | None = None) -> Pacer:
    """The one pacer of a connection or account (`name`), created at first use; a venue's
    published pace unless told otherwise."""
    found = _PACERS.get(name)
    if found is None:
        venue = name.split(":", 1)[0]
        chosen = pace or PUBLISHED.get(venue)
        if chosen is None:
            raise ValueError(f"no published pace for venue {venue!r}; pass one")
        found = _PACERS[name] = Pacer(name, chosen)
    return found


def queue_depths() -> dict[str, int]:
    """Waiting calls per pacer: the gauge the metrics exporter publishes."""
    return {name: p.queue_depth() for name, p in _PACERS.items()}


class PacedVenue:
    """OrderService by delegation; every call first takes its messages from the pacer."""

    def __init__(self, service: OrderService, pacer: Pacer) -> None:
        self.inner = service
        self.venue = service.venue
        self.pacer = pacer

    @classmethod
    def published(cls, service: OrderService, connection: str = "") -> PacedVenue:
        """Paced at the venue's published limit, one pacer per venue (and connection)."""
        name = f"{service.venue}:{connection}" if connection else service.venue
        return cls(service, pacer_for(name))

    @property
    def orders_shown_within(self) -> timedelta:
        """The inner adapter's (agents.venue_view)."""
        return orders_shown_within(self.inner)

    def read_afresh(self) -> None:
        """The inner adapter's (agents.context.StageContext.partitions_moved)."""
        read_afresh(self.inner)

    def _cost(self, operation: str, default: int, *args: object) -> int:
        """Messages the call will send: the adapter's own count when it gives one
        (`wire_messages`, optional beside the port: IB answers some reads from the state TWS
        pushes and sends nothing), else `default`, the published cost."""
        told = getattr(self.inner, "wire_messages", None)
        found = told(operation, *args) if told is not None else None
        return default if found is None else found

    async def _paced(self, call: Callable[[], Awaitable[T]], messages: int = 1) -> T:
        """A call that sends nothing does not wait: it takes no turn and spends no budget."""
        if messages > 0:
            await self.pacer.acquire(messages)
        return await call()

    async def connect(self) -> None:
        await self.inner.connect()  # the handshake is the library's, before any pacing applies

    async def close(self) -> None:
        await self.inner.close()

    async def place(self, order: OrderRequest) -> OrderReport:
        return await self._paced(lambda: self.inner.place(order), bracket_messages(order))

    async def status(self, client_order_id: str) -> OrderReport:
        return await self._paced(lambda: self.inner.status(client_order_id),
                                 self._cost("status", 1, client_order_id))

    async def cancel(self, client_order_id: str) -> OrderReport:
        return await self._paced(lambda: self.inner.cancel(client_order_id),
                                 self._cost("cancel", 1, client_order_id))

    async def account(self) -> AccountSnapshot:
        return await self._paced(self.inner.account, self._cost("account", 1))

    async def positions(self) -> list[Position]:
        return await self._paced(self.inner.positions, self._cost("positions", 1))

    async def open_orders(self) -> list[OrderReport]:
        return await self._paced(self.inner.open_orders, self._cost("open_orders", 1))

    async def fills_since(self, since: datetime) -> list[FillReport]:
        return await self._paced(lambda: self.inner.fills_since(since),
                                 self._cost("fills_since", 1))

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        # On IB: all open orders and all completed orders, two messages.
        return await self._paced(lambda: self.inner.orders_since(since),
                                 self._cost("orders_since", 2))

    async def account_and_positions(self) -> tuple[AccountSnapshot, list[Position]]:
        """Both from one venue read where the venue offers it (agents.venue_view)."""
        both = getattr(self.inner, "account_and_positions", None)
        if both is None:
            return await self.account(), await self.positions()
        found: tuple[AccountSnapshot, list[Position]] = await self._paced(
            both, self._cost("account_and_positions", 1))
        return found

    async def orders_and_open_orders(self, since: datetime
                                     ) -> tuple[list[OrderReport], list[OrderReport]]:
        """orders_since and open_orders from one venue read (two messages on IB: open and
        completed orders) where the venue offers it."""
        both = getattr(self.inner, "orders_and_open_orders", None)
        if both is None:
            return await self.orders_since(since), await self.open_orders()
        found: tuple[list[OrderReport], list[OrderReport]] = await self._paced(
            lambda: both(since), self._cost("orders_and_open_orders", 2))
        return found

    async def instrument(self, symbol: str) -> InstrumentRules | None:
        published = getattr(self.inner, "instrument", None)  # a test fake may not have it
        if published is None:
            return None
        cost = self._cost("instrument", INSTRUMENT_MESSAGES.get(self.venue, 1), symbol)
        rules: InstrumentRules | None = await self._paced(lambda: published(symbol), cost)
        return rules
