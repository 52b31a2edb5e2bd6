"""A venue view that reads the look-back's orders whole only now and then, and merges the
orders created since its last read in between, shows what a full read would show."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from agents.sizing import RATE_WINDOW, count_recent
from agents.venue_view import OVERLAP, VenueView, orders_shown_within, read_snapshot
from brokers.exceptions import TransientBrokerError
from brokers.port import OrderReport, OrderRequest
from brokers.sim.timeline import Timeline
from schemas.events import OrderStatus, OrderType, Side
from tests.fakes import T0, FakeVenue

S = timedelta(seconds=1)
DAY = timedelta(hours=24)


class Venue(FakeVenue):
    """FakeVenue that records the `since` of each orders_since, fails it on demand, and shows
    an order in orders_since only `hidden` after its creation time (a slow venue)."""

    def __init__(self) -> None:
        super().__init__()
        self.brackets = True
        self.asked: list[datetime] = []
        self.failing = 0
        self.hidden = timedelta(0)
        self.clock = T0

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        self.asked.append(since)
        if self.failing:
            self.failing -= 1
            raise TransientBrokerError("venue down", code="1100")
        return [o for o in await super().orders_since(since) if self._shown(o)]

    async def open_orders(self) -> list[OrderReport]:
        return [o for o in await super().open_orders() if self._shown(o)]

    def _shown(self, order: OrderReport) -> bool:
        return not self.hidden or order.created_at + self.hidden <= self.clock


def request(n: int) -> OrderRequest:
    return OrderRequest(client_order_id=f"c{n}", symbol="AAPL", side=Side.BUY,
                        quantity=Decimal(1), order_type=OrderType.LMT,
                        limit_price=Decimal(150), take_profit=Decimal(160),
                        stop_loss=Decimal(140))


def same_as_a_full_read(snap_ids: set[str], full_ids: set[str]) -> None:
    assert snap_ids == full_ids, (sorted(snap_ids - full_ids), sorted(full_ids - snap_ids))


@pytest.mark.parametrize("seed", range(4))
async def test_a_merging_view_shows_what_a_full_read_shows(seed: int) -> None:
    rng = random.Random(seed)
    venue = Venue()
    view = VenueView(venue, timedelta(0), DAY)
    now, n = T0, 0
    for _ in range(300):
        for _ in range(rng.randrange(4)):  # placements, some a moment in the past
            venue.now = now - rng.randrange(3) * S
            await venue.place(request(n))
            n += 1
        if venue.orders and rng.random() < 0.3:  # one order moves on
            coid = rng.choice(list(venue.orders))
            if not venue.orders[coid].status.is_terminal:
                await venue.cancel(coid)
        venue.clock = now
        snap = await view.get(now)
        full = await read_snapshot(venue, snap.since, now)
        same_as_a_full_read(set(snap.sent_ids), {o.client_order_id for o in full.sent})
        for since in (now - RATE_WINDOW, now - RATE_WINDOW + 7 * S, now - 10 * S, now,
                      now - 30 * RATE_WINDOW):
            assert snap.entries_since(since) == count_recent(full.sent, since), since
        for order in full.open_orders:  # an open order's report is as read now
            assert snap.known(order.client_order_id) == order
        for coid in (f"c{rng.randrange(n + 5)}" for _ in range(20)):
            assert (coid in snap.visible_ids) == (full.known(coid) is not None)
        now += rng.choice([0.2, 0.6, 1.5, 4.0]) * S
    assert view.reads["merged"] > 10 * view.reads["full"] > 0
    print("reads:", view.reads, "orders:", n)


def snapshots_counted() -> dict[str, float]:
    return {kind: REGISTRY.get_sample_value("jax_venue_snapshots_total", {"kind": kind}) or 0
            for kind in ("full", "merged")}


async def test_a_merging_read_asks_from_the_last_read_less_the_overlap() -> None:
    venue = Venue()
    view = VenueView(venue, timedelta(0), DAY, full_every=timedelta(minutes=1))
    counted = snapshots_counted()
    await view.get(T0)
    await view.get(T0 + S)
    await view.get(T0 + 30 * S)
    await view.get(T0 + 61 * S)  # a full read again
    assert venue.asked == [T0 - DAY, T0 - OVERLAP, T0 + S - OVERLAP, T0 + 61 * S - DAY]
    assert view.reads == {"full": 2, "merged": 2}
    after = snapshots_counted()
    assert {k: after[k] - counted[k] for k in after} == {"full": 2, "merged": 2}  # /metrics


async def test_a_failed_read_leaves_the_view_as_it_was() -> None:
    venue = Venue()
    view = VenueView(venue, timedelta(0), DAY)
    await view.get(T0)
    venue.now = T0 + 20 * S
    await venue.place(request(1))
    venue.failing = 1
    with pytest.raises(TransientBrokerError):
        await view.get(T0 + 30 * S)
    snap = await view.get(T0 + 31 * S)  # merges from the last read that answered
    assert venue.asked[-1] == T0 - OVERLAP
    assert snap.known("c1") is not None


async def test_an_order_shown_late_is_found_by_the_next_full_read() -> None:
    """A venue that shows an order only after the overlap: the merging reads miss it (an
    order of ours stays a reservation meanwhile), the next full read finds it."""
    venue = Venue()
    venue.hidden = OVERLAP + 5 * S
    view = VenueView(venue, timedelta(0), DAY, full_every=timedelta(minutes=1))
    venue.clock = T0
    await view.get(T0)
    venue.now = T0 + S
    await venue.place(request(1))
    missed = []
    for t in range(2, 70, 2):
        venue.clock = T0 + t * S
        missed.append((await view.get(venue.clock)).known("c1") is None)
    assert missed[0]
    assert not missed[-1]
    assert view.reads["full"] == 2


async def test_invalidate_makes_the_next_read_a_full_one() -> None:
    venue = Venue()
    view = VenueView(venue, timedelta(seconds=10), DAY)
    first = await view.get(T0)
    assert await view.get(T0 + S) is first  # fresh enough: no read
    view.invalidate()
    await view.get(T0 + 2 * S)
    assert view.reads == {"full": 2, "merged": 0}


def test_a_timeline_answers_as_a_scan_does_even_after_its_clock_went_back() -> None:
    rng = random.Random(3)
    line: Timeline[int] = Timeline()
    added: list[tuple[int, datetime]] = []
    for i in range(400):
        at = T0 + rng.randrange(-5 if i > 300 else 0, 20) * S + i * S
        line.add(i, at)
        added.append((i, at))
        since = T0 + rng.randrange(0, i + 20) * S
        assert line.since(since) == [x for x, t in added if t >= since]
    assert line.since(None) == [x for x, _ in added]
    assert len(line) == 400


async def test_an_older_order_that_ended_shows_its_end_at_the_next_full_read() -> None:
    """A merging read brings only recent orders: an older order that ended since the last
    full read is known by its report as last read (never missing) until the next full read."""
    venue = Venue()
    view = VenueView(venue, timedelta(0), DAY, full_every=timedelta(minutes=1))
    venue.now = T0 - 2 * OVERLAP
    await venue.place(request(1))
    await view.get(T0)
    await venue.cancel("c1")
    statuses = [(await view.get(T0 + t * S)).known("c1") for t in (30, 60)]
    assert [o.status if o else None for o in statuses] == [OrderStatus.ACCEPTED,
                                                          OrderStatus.CANCELLED]


async def test_an_entry_reported_again_with_a_later_creation_time_counts_by_the_later() -> None:
    """A venue may date an order later on a later read (IB dates another client's order by
    first sight, or by its completion): the rate window counts it by its latest date, as a
    full read would."""
    venue = Venue()
    view = VenueView(venue, timedelta(0), DAY)
    venue.now = T0 - 90 * S
    await venue.place(request(1))
    assert (await view.get(T0)).entries_since(T0 - RATE_WINDOW) == 0
    venue.orders["c1"] = venue.orders["c1"].model_copy(update={"created_at": T0 + S})
    snap = await view.get(T0 + 2 * S)
    assert snap.entries_since(T0 + 2 * S - RATE_WINDOW) == 1
    assert snap.entries_since(T0 + 2 * S) == 0


async def test_a_venue_that_shows_orders_late_is_read_that_far_back() -> None:
    """IB's adapter asks TWS for every order only every IB_FULL_READ_SECONDS, and dates
    another client's completed order by its completion: the view reads that much further
    back, so no merged read misses it."""
    venue = Venue()
    venue.hidden = 15 * S
    venue.orders_shown_within = 20 * S  # type: ignore[attr-defined]
    view = VenueView(venue, timedelta(0), DAY, full_every=timedelta(minutes=10))
    await view.get(T0)
    venue.now = T0 + S
    await venue.place(request(1))
    for t in range(2, 40):
        venue.clock = T0 + t * S
        snap = await view.get(venue.clock)
        shown = venue.clock >= T0 + 16 * S
        assert (snap.known("c1") is not None) == shown, t
    assert view.reads["full"] == 1
    assert venue.asked[-1] == T0 + 38 * S - OVERLAP - 20 * S


def test_the_ib_adapter_says_how_late_an_order_may_show() -> None:
    from brokers.bounded import BoundedVenue
    from brokers.ib.service import IbOrderService
    from brokers.pacing import PacedVenue

    class Fake:
        venue = "ib"
        _longest_serve = 7.0  # the longest a full read served (IB_FULL_READ_SECONDS at least)
        timeout = 3.0  # ours show once acknowledged: answered or looked up in 3 deadlines
        orders_shown_within = IbOrderService.orders_shown_within

    wrapped = BoundedVenue(PacedVenue.published(Fake()), timeout=1)  # type: ignore[arg-type]
    assert orders_shown_within(wrapped) == 16 * S


def test_a_process_without_a_venue_makes_its_views_without_asking_it() -> None:
    """The validation and audit processes have no venue: using it is a bug, and it says so
    to any question (agents.context.NoVenue)."""
    from agents.context import NoVenue, StageContext
    from agents.decisions.config import RiskSettings

    ctx = StageContext(risk=RiskSettings(), venue=NoVenue())  # type: ignore[arg-type]
    assert ctx.view.fresh(T0) is None


async def test_partitions_moved_makes_the_next_snapshots_full_reads_asked_afresh() -> None:
    """A process given partitions (another worker died or stopped) may be redelivered an intent
    that worker placed through its own session: both views read the look-back whole next,
    and the venue is told to ask (IB: not the state its own session was pushed)."""
    from agents.context import StageContext
    from agents.decisions.config import RiskSettings
    from brokers.bounded import BoundedVenue
    from brokers.pacing import PacedVenue

    class Told(Venue):
        venue = "ib"  # a published pace
        afresh = 0

        def read_afresh(self) -> None:
            self.afresh += 1

    venue = Told()
    wrapped = BoundedVenue(PacedVenue.published(venue), timeout=5)  # as the worker builds it
    ctx = StageContext(risk=RiskSettings(), venue=wrapped, snapshot_max_age=timedelta(0))
    for view in (ctx.view, ctx.orders_view):
        await view.get(T0)
        await view.get(T0 + S)
        assert view.reads == {"full": 1, "merged": 1}
    ctx.partitions_moved()
    assert venue.afresh == 1
    for view in (ctx.view, ctx.orders_view):
        assert view.fresh(T0 + S) is None
        await view.get(T0 + 2 * S)
        assert view.reads == {"full": 2, "merged": 1}


async def test_a_read_under_way_when_partitions_move_is_not_kept() -> None:
    """invalidate() while a read is in flight: that read answers its caller, but the next
    caller gets a full read made after the invalidation, not the one begun before it."""
    import asyncio

    class Slow(Venue):
        def __init__(self) -> None:
            super().__init__()
            self.gate: asyncio.Event | None = None

        async def orders_since(self, since: datetime) -> list[OrderReport]:
            if self.gate is not None:
                await self.gate.wait()
            return await super().orders_since(since)

    venue = Slow()
    view = VenueView(venue, timedelta(seconds=10), DAY)
    await view.get(T0)
    venue.gate = asyncio.Event()
    reading = asyncio.create_task(view.get(T0 + 20 * S))  # a merged read, held
    await asyncio.sleep(0)
    view.invalidate()
    venue.gate.set()
    await reading
    assert view.reads == {"full": 1, "merged": 1}
    assert view.fresh(T0 + 21 * S) is None  # not kept to serve others
    await view.get(T0 + 21 * S)
    assert view.reads == {"full": 2, "merged": 1}
