"""The order-rate count: orders sent in the last minute, whatever became of them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from agents.sizing import recent_order_count
from brokers.port import OrderRequest
from schemas.events import OrderType, Side, TimeInForce
from tests.fakes import T0, FakeVenue


def req(coid: str, **fields: object) -> OrderRequest:
    base: dict[str, object] = {
        "client_order_id": coid, "symbol": "AAPL", "side": Side.BUY,
        "quantity": Decimal(10), "order_type": OrderType.LMT, "limit_price": Decimal("140"),
    }
    return OrderRequest.model_validate({**base, **fields})


async def test_counts_a_cancelled_order_sent_this_minute_not_an_old_one_filled_now() -> None:
    venue = FakeVenue()
    now = T0 + timedelta(minutes=5)
    venue.now = now - timedelta(minutes=3)
    await venue.place(req("old-rester"))
    venue.fill("old-rester", "140", "e-old", at=now - timedelta(seconds=10))
    venue.now = now - timedelta(seconds=20)
    await venue.place(req("ioc-miss", time_in_force=TimeInForce.IOC))
    await venue.cancel("ioc-miss")
    assert await recent_order_count(venue, now) == 1


async def test_every_entry_in_the_window_counts_and_exit_children_do_not() -> None:
    venue = FakeVenue()
    venue.brackets = True
    now = T0 + timedelta(minutes=5)
    venue.now = now - timedelta(seconds=59)
    await venue.place(req("a"))
    await venue.cancel("a")
    venue.now = now - timedelta(seconds=30)
    await venue.place(req("b", take_profit=Decimal(150), stop_loss=Decimal(135)))
    venue.fill("b", "140", "e-b", at=now - timedelta(seconds=29))
    venue.now = now - timedelta(seconds=61)
    await venue.place(req("too-old"))
    await venue.cancel("too-old")
    assert await recent_order_count(venue, now) == 2
    assert await recent_order_count(venue, now + timedelta(seconds=2)) == 1


def test_a_snapshots_entry_count_is_count_recent_over_its_sent_orders() -> None:
    """VenueSnapshot.entries_since (an index made once per snapshot) answers what
    count_recent answers over the snapshot's sent orders, for every cut-off: exit legs left
    out, a client id reported twice counted once."""
    import random

    from agents.sizing import count_recent
    from agents.venue_view import VenueSnapshot
    from brokers.port import OrderReport
    from schemas.events import OrderLeg, OrderStatus

    rng = random.Random(7)
    sent = []
    for i in range(300):
        coid = f"o{rng.randrange(120)}"  # repeats: one id reported more than once
        at = T0 + timedelta(seconds=rng.randrange(600))
        sent.append(OrderReport(
            client_order_id=coid, venue_order_id=str(i), account_id="DU1",
            leg=rng.choice([OrderLeg.ENTRY, OrderLeg.ENTRY, OrderLeg.TAKE_PROFIT]),
            symbol="AAPL", side=Side.BUY, order_type=OrderType.LMT, quantity=Decimal(1),
            limit_price=Decimal("1"), status=OrderStatus.ACCEPTED, created_at=at,
            updated_at=at))
    snap = VenueSnapshot(T0, T0, tuple(sent), (), None, ())
    for cut in [T0 - timedelta(seconds=1), *(T0 + timedelta(seconds=s) for s in
                                             range(0, 620, 7))]:
        assert snap.entries_since(cut) == count_recent(sent, cut), cut
