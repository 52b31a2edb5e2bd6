"""PacedVenue: any OrderService whose outgoing messages stay within the venue's published rate.

A venue that is sent more than it allows disconnects (IB: more than 50 messages a second
drops the session) or answers 429 (Alpaca, OANDA), so a burst is queued here rather than
refused: each call waits its turn, first come first served, until the last `period` holds
room for its messages. The window is a sliding log of send times, so no interval of length
`period` ever holds more than `limit` messages (a token bucket refilled at the same rate could
let two buckets' worth through one window). `queue_depth()` is how many calls wait now;
`queue_depths()` gives it per pacer, for the metrics exporter.

Calls made in the background (`background()`: an instrument's rules asked again before they
expire) wait behind every other call, which are served first come, first served, and fill a
window only up to `limit - reserve` (IB: 40 of 45), waiting for that without holding the
turn: they take what orders and the reads a decision waits for leave. Over IB at 10
approvals/s (30 messages a second on placements), look-ups that came due together took the
budget from the placements for seconds; first come first served, or merely queued last, they
still did (2026-12-05, agents.venue_view.InstrumentRulesCache has the figures). Serving
orders ahead of reads changed nothing measurable, and would let placements starve
reconciliation's reads, whose answers some acknowledgements are.

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
import contextvars
import heapq
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
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


# The kinds of call, in the order they take their turn (smaller first).
READ, BACKGROUND = 0, 1

_BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar("paced_background",
                                                                   default=False)


@contextmanager
def background() -> Iterator[None]:
    """Venue calls made inside (in this task) wait behind every other call."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


class _Turns:
    """One holder at a time; waiters take the turn by kind, then in arrival order. A waiter
    cancelled while waiting is skipped; one cancelled as it was handed the turn passes it on."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def take(self, kind: int) -> None:
        if not self._held:
            self._held = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (kind, next(self._arrivals), turn))
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.give()
            raise

    def give(self) -> None:
        while self._waiters:
            turn = heapq.heappop(self._waiters)[2]
            if not turn.done():
                turn.set_result(None)
                return
        self._held = False


class Pacer:
    """A sliding-window limiter whose queue serves calls in arrival order, background calls
    after every other; the clock and sleep are injectable."""

    def __init__(self, name: str, pace: Pace, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.name = name
        self.pace = pace
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._turns = _Turns()
        # what background calls leave to the others in every window
        self.reserve = max(1, pace.limit // 9)
        self.waiting = 0
        self.max_waiting = 0
        self.sent_total = 0
        self.waited_seconds = 0.0

    def queue_depth(self) -> int:
        """Calls waiting for their turn now."""
        return self.waiting

    async def acquire(self, messages: int = 1, kind: int = READ) -> None:
        """Wait for the turn (by kind: READ, then BACKGROUND) and until `messages` more fit in
        the window, then count them as sent now. A background call fills the window only up
        to `limit - reserve` and waits for that without holding the turn."""
        cost = min(max(messages, 1), self.pace.limit)
        limit = self.pace.limit if kind != BACKGROUND else max(self.pace.limit - self.reserve,
                                                               cost)
        self.waiting += 1
        self.max_waiting = max(self.max_waiting, self.waiting)
        started = self._clock()
        try:
            while True:
                await self._turns.take(kind)
                try:
                    now = self._clock()
                    wait = self._room(now, cost, limit)
                    while wait > 0 and kind != BACKGROUND:  # the others wait holding the turn
                        await self._sleep(wait)
                        now = self._clock()
                        wait = self._room(now, cost, limit)
                    if wait <= 0:
                        self._sent.extend([now] * cost)
                        self.sent_total += cost
                        self.waited_seconds += now - started
                        return
                finally:
                    self._turns.give()
                await self._sleep(wait)
        finally:
            self.waiting -= 1

    def _room(self, now: float, cost: int, limit: int) -> float:
        """0 when `cost` more messages fit under `limit` now, else how long until they do."""
        while self._sent and now - self._sent[0] >= self.pace.period:
            self._sent.popleft()
        if len(self._sent) + cost <= limit:
            return 0.0
        return max(self._sent[len(self._sent) + cost - limit - 1] + self.pace.period - now,
                   1e-6)


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
            kind = BACKGROUND if _BACKGROUND.get() else READ
            await self.pacer.acquire(messages, kind)
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

    async def instrument(self, symbol: str, borrow: bool = True) -> InstrumentRules | None:
        published = getattr(self.inner, "instrument", None)  # a test fake may not have it
        if published is None:
            return None
        cost = self._cost("instrument", INSTRUMENT_MESSAGES.get(self.venue, 1), symbol, borrow)
        rules: InstrumentRules | None = await self._paced(lambda: published(symbol, borrow),
                                                          cost)
        return rules
