"""What the venue says, read once and shared by the decisions of a burst.

A venue answers slowly and rations messages (IB: 50 a second on a connection, which ib_async
paces to 45), so reading the whole account for every approval of a burst would take the
burst minutes. A snapshot is read at most `max_age` before a decision instead; what changed
since at our own hand (intents decided but not yet visible) is counted by the reservation book,
so a snapshot younger than `max_age` never lets a limit be talked past. The reads go in an order
that never undercounts (see `read_snapshot`).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from agents.decisions.limits import working_entries
from brokers.port import AccountSnapshot, InstrumentRules, OrderReport, OrderService, Position
from schemas.events import OrderLeg


@dataclass(frozen=True)
class VenueSnapshot:
    """Orders sent in the look-back window, open orders, account and positions, in that order
    of reading."""

    taken_at: datetime
    since: datetime
    sent: tuple[OrderReport, ...]
    open_orders: tuple[OrderReport, ...]
    account: AccountSnapshot | None  # None when only orders were asked for
    positions: tuple[Position, ...]

    def known(self, client_order_id: str) -> OrderReport | None:
        """The order with this client id, if the venue had it when the snapshot was taken."""
        return self._by_id.get(client_order_id)

    @cached_property
    def _by_id(self) -> dict[str, OrderReport]:
        """Client id -> order (an open order's report first, as read): a snapshot serves
        every decision of a burst, each asking for its own id."""
        found: dict[str, OrderReport] = {}
        for order in (*self.open_orders, *self.sent):
            found.setdefault(order.client_order_id, order)
        return found

    @cached_property
    def sent_ids(self) -> set[str]:
        return {o.client_order_id for o in self.sent}

    @cached_property
    def open_entries(self) -> tuple[OrderReport, ...]:
        """The working entry orders: all the limits count of the open orders (an exit only
        ever reduces exposure)."""
        return tuple(working_entries(self.open_orders))

    def open_orders_of(self, symbol: str) -> list[OrderReport]:
        """The open orders in one symbol (what a self-cross check compares an order with)."""
        return self._open_by_symbol.get(symbol, [])

    @cached_property
    def _open_by_symbol(self) -> dict[str, list[OrderReport]]:
        found: dict[str, list[OrderReport]] = {}
        for order in self.open_orders:
            found.setdefault(order.symbol, []).append(order)
        return found

    @cached_property
    def visible_ids(self) -> set[str]:
        """Client ids of every order the snapshot shows (sent or open)."""
        return self.sent_ids | {o.client_order_id for o in self.open_orders}

    def entries_since(self, since: datetime) -> int:
        """Distinct entry orders in `sent` created at or after `since` (sizing.count_recent
        over `sent`), from an index made once per snapshot: each decision of a burst asks."""
        times, distinct = self._entry_index
        return distinct[bisect_left(times, since)]

    @cached_property
    def _entry_index(self) -> tuple[list[datetime], list[int]]:
        """Entry orders' creation times, ascending, and for each position the number of
        distinct client ids from there to the end."""
        entries = sorted((o.created_at, o.client_order_id) for o in self.sent
                         if o.leg is OrderLeg.ENTRY)
        distinct = [0] * (len(entries) + 1)
        seen: set[str] = set()
        for i in range(len(entries) - 1, -1, -1):
            seen.add(entries[i][1])
            distinct[i] = len(seen)
        return [t for t, _ in entries], distinct


async def read_snapshot(venue: OrderService, since: datetime, now: datetime,
                        accounts: bool = True) -> VenueSnapshot:
    """Sent orders, then open orders, then account and positions: an order the venue was
    sent is, by the time the later reads happen, open, filled into a position, or ended, so a
    reservation settled against `sent` is always counted somewhere (never zero times)."""
    if not accounts:
        sent = await venue.orders_since(since)
        return VenueSnapshot(now, since, tuple(sent), (), None, ())
    sent, open_orders = await orders_and_open_orders(venue, since)
    account, positions = await account_and_positions(venue)
    return VenueSnapshot(now, since, tuple(sent), tuple(open_orders), account, tuple(positions))


async def orders_and_open_orders(venue: OrderService, since: datetime
                                 ) -> tuple[list[OrderReport], list[OrderReport]]:
    """Orders sent since `since`, then the open orders: from one read of the venue's open
    orders where the venue offers it (`orders_and_open_orders`, optional beside the port).
    Still never an undercount: an order in `sent` was, at that one read, open (so in
    `open_orders` too) or already ended or filled (its fill in the positions read after)."""
    both = getattr(venue, "orders_and_open_orders", None)
    if both is not None:
        found: tuple[list[OrderReport], list[OrderReport]] = await both(since)
        return found
    return await venue.orders_since(since), await venue.open_orders()


async def account_and_positions(venue: OrderService) -> tuple[AccountSnapshot, list[Position]]:
    """The account and the positions, read now: in one venue round trip where the venue offers
    it (`account_and_positions`, optional beside the port: IB answers both from one
    reqAccountUpdates), else account() then positions()."""
    both = getattr(venue, "account_and_positions", None)
    if both is not None:
        found: tuple[AccountSnapshot, list[Position]] = await both()
        return found
    return await venue.account(), await venue.positions()


class VenueView:
    """A snapshot no older than `max_age`; concurrent callers share one read."""

    def __init__(self, venue: OrderService, max_age: timedelta, lookback: timedelta,
                 accounts: bool = True) -> None:
        self.venue = venue
        self.max_age = max_age
        self.lookback = lookback
        self.accounts = accounts
        self._snapshot: VenueSnapshot | None = None
        self._lock = asyncio.Lock()

    async def get(self, now: datetime, since: datetime | None = None) -> VenueSnapshot:
        """A fresh enough snapshot covering orders sent since `since` (default the look-back)."""
        wanted = since if since is not None else now - self.lookback
        async with self._lock:
            snap = self.fresh(now, wanted)
            if snap is None:
                snap = await read_snapshot(self.venue, min(wanted, now - self.lookback), now,
                                           self.accounts)
                self._snapshot = snap
            return snap

    def fresh(self, now: datetime, since: datetime | None = None) -> VenueSnapshot | None:
        """The snapshot held now if `get` would serve it without reading (none otherwise):
        another reader of the same venue (submission beside sizing) can share it."""
        wanted = since if since is not None else now - self.lookback
        snap = self._snapshot
        if snap is None or now - snap.taken_at > self.max_age or snap.since > wanted or \
                now < snap.taken_at:
            return None
        return snap

    def invalidate(self) -> None:
        self._snapshot = None


class InstrumentRulesCache:
    """What the venue publishes about each instrument, asked once per symbol and kept for
    `max_age` (a pair's conversion factor moves; a stock's lot and tick do not)."""

    def __init__(self, venue: OrderService, max_age: timedelta) -> None:
        self.venue = venue
        self.max_age = max_age
        self._rules: dict[str, tuple[datetime, InstrumentRules | None]] = {}

    async def get(self, symbol: str, now: datetime) -> InstrumentRules | None:
        known = self._rules.get(symbol)
        if known is not None and timedelta(0) <= now - known[0] <= self.max_age:
            return known[1]
        ask = getattr(self.venue, "instrument", None)
        rules = await ask(symbol) if ask is not None else None
        self._rules[symbol] = (now, rules)
        return rules
