"""What the venue says, read once and shared by the decisions of a burst.

A venue answers slowly and rations messages (IB: 50 a second on a connection, which ib_async
paces to 45), so reading the whole account for every approval of a burst would take the
burst minutes. A snapshot is read at most `max_age` before a decision instead; what changed
since at our own hand (intents decided but not yet visible) is counted by the reservation book,
so a snapshot younger than `max_age` never lets a limit be talked past. The reads go in an order
that never undercounts (see `read_snapshot`).

The orders sent in the look-back (24 h) are many by the end of a day, and every snapshot used
to read and index them all: work per snapshot that grew with the day's orders. `VenueView`
reads them whole only every `full_every`; in between it reads the orders created since its last
read (less `overlap`) and merges them into what it holds (see `VenueView`).
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left, bisect_right
from collections.abc import Container, Iterable, Mapping, Set
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property

from agents.decisions.limits import working_entries
from agents.metrics import VENUE_SNAPSHOTS
from brokers.pacing import background
from brokers.port import (
    AccountSnapshot,
    InstrumentRules,
    OrderReport,
    OrderService,
    Position,
    orders_shown_within,
)
from schemas.events import OrderLeg

log = logging.getLogger(__name__)

# An order shows in orders_since within this long of its creation time (clock skew between
# the venue and us, a placement in flight while we read), plus what the venue says it may
# take (`orders_shown_within`, optional beside the port: IB's adapter asks TWS for every
# order only every IB_FULL_READ_SECONDS): each merging read starts this far before the last.
OVERLAP = timedelta(seconds=5)
# Every this long the view reads the whole look-back again (what a merging read may have
# missed, older orders' statuses, the look-back's start moving on).
FULL_EVERY = timedelta(minutes=1)
# The entry orders a snapshot indexes for entries_since: the rate limit's window (one minute)
# and the snapshot's age fit in it; an older `since` is counted from `sent` instead.
RECENT = timedelta(minutes=2)


@dataclass(frozen=True)
class SentIndex:
    """The sent orders by client id, and the creation times of the entry orders created at or
    after `entries_from` (ascending, one per client id: its latest): made by VenueView as it
    merges its reads, so a snapshot does not index every order of the look-back again."""

    by_id: Mapping[str, OrderReport]
    entries_from: datetime
    entry_times: tuple[datetime, ...]


class _Either(Container[str]):
    """Membership in any of some sets, without making their union."""

    def __init__(self, *parts: Container[str]) -> None:
        self.parts = parts

    def __contains__(self, item: object) -> bool:
        return any(item in part for part in self.parts)


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
    index: SentIndex | None = field(default=None, repr=False, compare=False)

    def known(self, client_order_id: str) -> OrderReport | None:
        """The order with this client id, if the venue had it when the snapshot was taken
        (its open order's report first, as read)."""
        found = self._open_by_id.get(client_order_id)
        return found if found is not None else self._sent_by_id.get(client_order_id)

    @cached_property
    def _open_by_id(self) -> dict[str, OrderReport]:
        found: dict[str, OrderReport] = {}
        for order in self.open_orders:
            found.setdefault(order.client_order_id, order)
        return found

    @cached_property
    def _sent_by_id(self) -> Mapping[str, OrderReport]:
        """Client id -> order: a snapshot serves every decision of a burst, each asking for
        its own id."""
        if self.index is not None:
            return self.index.by_id
        found: dict[str, OrderReport] = {}
        for order in self.sent:
            found.setdefault(order.client_order_id, order)
        return found

    @property
    def sent_ids(self) -> Set[str]:
        return self._sent_by_id.keys()

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

    @property
    def visible_ids(self) -> Container[str]:
        """Client ids of every order the snapshot shows (sent or open)."""
        return _Either(self._sent_by_id, self._open_by_id)

    def entries_since(self, since: datetime) -> int:
        """Distinct entry orders in `sent` created at or after `since` (sizing.count_recent
        over `sent`), from an index made once per snapshot: each decision of a burst asks."""
        index = self.index
        if index is not None and since >= index.entries_from:
            recent = index.entry_times
            return len(recent) - bisect_left(recent, since)
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
    """A snapshot no older than `max_age`; concurrent callers share one read.

    The look-back's orders are read whole at the first read and every `full_every` after;
    a read in between asks only for the orders created since the last read less `overlap`
    (and less the time the venue says an order may take to show),
    and merges them (a later report of an order replaces the earlier one) into the orders it
    holds. Open orders, account and positions are read whole every time, after the orders, as
    `read_snapshot` reads them, so the order of reading that never undercounts holds: every id
    the view holds was sent before this read's open orders and positions were read. An order
    a merging read would miss (shown by the venue later than that after its creation time)
    is one the next full read finds; until then an order of ours stays a reservation, counted
    as pending (the conservative way), and its client id is refused again by the venue."""

    def __init__(self, venue: OrderService, max_age: timedelta, lookback: timedelta,
                 accounts: bool = True, overlap: timedelta = OVERLAP,
                 full_every: timedelta = FULL_EVERY, recent: timedelta = RECENT) -> None:
        self.venue = venue
        self.max_age = max_age
        self.lookback = lookback
        self.accounts = accounts
        self.overlap = overlap  # and what the venue says of itself, asked at each read
        self.full_every = full_every
        self.recent = recent
        self._snapshot: VenueSnapshot | None = None
        self._lock = asyncio.Lock()
        self._sent: dict[str, OrderReport] = {}  # every order read since `_covers`
        self._entry_at: dict[str, datetime] = {}  # entry order -> its latest creation time
        self._times: list[datetime] = []  # the entry orders' creation times, ascending
        self._coids: list[str] = []  # beside `_times`
        self._covers: datetime | None = None  # the `since` of the last full read
        self._full_at: datetime | None = None
        self._read_at: datetime | None = None
        self.reads = {"full": 0, "merged": 0}
        self._invalidated = 0  # how many times invalidate() was called

    async def get(self, now: datetime, since: datetime | None = None) -> VenueSnapshot:
        """A fresh enough snapshot covering orders sent since `since` (default the look-back)."""
        wanted = since if since is not None else now - self.lookback
        async with self._lock:
            snap = self.fresh(now, wanted)
            if snap is None:
                snap = await self._read(now, min(wanted, now - self.lookback))
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
        """The next read is a full one (also when a read is under way: what it returns is
        its caller's, but is not kept to serve others)."""
        self._snapshot = None
        self._full_at = None
        self._invalidated += 1

    async def _read(self, now: datetime, since: datetime) -> VenueSnapshot:
        full = (self._covers is None or self._full_at is None or self._read_at is None
                or now - self._full_at >= self.full_every or now < self._read_at
                or since < self._covers)
        # asked at each read (not before the first: a process that trades nothing has no
        # venue), since it may grow: IB's full reads serve longer once they take long
        reach = self.overlap + orders_shown_within(self.venue)
        start = since if full or self._read_at is None else self._read_at - reach
        invalidated = self._invalidated
        read = await read_snapshot(self.venue, start, now, self.accounts)
        # Only once every read answered: a failed read leaves the view as it was.
        if full:
            self._sent, self._entry_at, self._times, self._coids = {}, {}, [], []
            self._covers, self._full_at = since, now
        kind = "full" if full else "merged"
        self.reads[kind] += 1
        VENUE_SNAPSHOTS.labels(kind).inc()
        self._merge(read.sent)
        self._read_at = now
        assert self._covers is not None
        cut = bisect_left(self._times, now - self.recent)
        index = SentIndex(dict(self._sent), now - self.recent, tuple(self._times[cut:]))
        snap = replace(read, since=self._covers, sent=tuple(self._sent.values()), index=index)
        if invalidated == self._invalidated:
            self._snapshot = snap
        else:  # invalidated while reading: the next read is a full one after all
            self._full_at = None
        return snap

    def _merge(self, sent: Iterable[OrderReport]) -> None:
        for order in sent:
            coid = order.client_order_id
            self._sent[coid] = order
            if order.leg is not OrderLeg.ENTRY:
                continue
            before = self._entry_at.get(coid)
            if before is not None:
                if order.created_at <= before:
                    continue
                at = bisect_left(self._times, before)
                while self._coids[at] != coid:
                    at += 1
                del self._times[at], self._coids[at]
            self._entry_at[coid] = order.created_at
            at = bisect_right(self._times, order.created_at)
            self._times.insert(at, order.created_at)
            self._coids.insert(at, coid)


class InstrumentRulesCache:
    """What the venue publishes about each instrument, asked once per symbol and kept for
    `max_age` (a pair's conversion factor moves; a stock's lot and tick do not; IB's borrow
    availability is asked with them, for a sell).

    An entry older than `refresh_at` of `max_age` is still served, and asked again in the
    background, so a decision waits for the venue only for a symbol no decision asked about
    within `max_age`; nothing served is older than `max_age`, as before. Refreshes go one at a
    time, as background calls (brokers.pacing.background: behind every other call, and only
    into the room the others leave in the venue's message budget).

    `borrow`: only a sell can be a short sale, so only a sell's decision needs the venue to
    say whether it lends the instrument (`InstrumentRules.shortable`; on IB a market-data
    request and its cancel, two of the session's messages every time). A buy is served any
    entry and asks without it; a sell is served only an entry that was asked with it, else
    asks in line. A refresh asks what its entry was asked.

    Before (until 2026-12-05) an entry expired `max_age` after it was read and a decision on it
    waited for the venue while its stage waited behind it. Entries read together in a burst
    expired together, and over IB at 10 approvals/s (30 of the session's 45 messages a second
    on placements) their look-ups took the budget from the placements for seconds: in a 60 s
    step, ack p95 0.76 to 0.93 s. Refreshed in the background but all at once, or first come
    first served at the pacer, they still did (p95 1.5 to 2.2 s). Now p95 85 to 121 ms."""

    def __init__(self, venue: OrderService, max_age: timedelta, refresh_at: float = 0.5
                 ) -> None:
        self.venue = venue
        self.max_age = max_age
        self.refresh_after = max_age * refresh_at
        # symbol -> (asked at, the answer, asked with borrow)
        self._rules: dict[str, tuple[datetime, InstrumentRules | None, bool]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._one_at_a_time = asyncio.Lock()  # binds to the loop at its first use

    async def get(self, symbol: str, now: datetime, *, borrow: bool
                  ) -> InstrumentRules | None:
        known = self._rules.get(symbol)
        if (known is not None and timedelta(0) <= now - known[0] <= self.max_age
                and (known[2] or not borrow)):
            if now - known[0] >= self.refresh_after and symbol not in self._refreshing:
                self._refresh(symbol, now, known[2])
            return known[1]
        return await self._ask(symbol, now, borrow)

    async def _ask(self, symbol: str, now: datetime, borrow: bool) -> InstrumentRules | None:
        ask = getattr(self.venue, "instrument", None)
        rules = await ask(symbol, borrow) if ask is not None else None
        known = self._rules.get(symbol)
        # an older request answering late keeps nothing; of two asked at once, the answer
        # with the borrow is kept
        if known is None or (known[0], known[2]) <= (now, borrow):
            self._rules[symbol] = (now, rules, borrow)
        return rules

    def _refresh(self, symbol: str, now: datetime, borrow: bool) -> None:
        task = asyncio.create_task(self._refresh_now(symbol, now, borrow),
                                   name=f"rules:{symbol}")
        self._refreshing[symbol] = task
        task.add_done_callback(lambda _: self._refreshing.pop(symbol, None))

    async def _refresh_now(self, symbol: str, now: datetime, borrow: bool) -> None:
        try:
            # One refresh at a time, paced behind every order and every decision's read:
            # entries read together in a burst come due together, and a wave of look-ups at
            # once took the worker and the venue session from the orders.
            async with self._one_at_a_time:
                with background():
                    await self._ask(symbol, now, borrow)
        except Exception as exc:  # the entry is served until max_age, then asked in line
            log.info("instrument %s: refresh failed (%r); the next decision past %s asks again",
                     symbol, exc, self.max_age)

    async def close(self) -> None:
        """Stop the refreshes under way."""
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
