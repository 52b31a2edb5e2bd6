"""Reconciliation publishes each venue fact once, across polls and restarts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from agents.reconciliation import Reconciler
from agents.submission import request_from
from schemas.events import Fill, OrderEvent, OrderStatus
from tests.fakes import T0, FakeVenue
from tests.unit.agents.conftest import approval, intent_for


async def placed(venue: FakeVenue) -> str:
    intent = intent_for(approval())
    await venue.place(request_from(intent))
    return intent.client_order_id


async def test_a_fill_is_published_once_then_the_order_state(venue: FakeVenue) -> None:
    coid = await placed(venue)
    rec = Reconciler(venue, lookback=timedelta(hours=1))
    first = await rec.poll(T0)
    assert [(t, e.status) for t, e in first] == [("orders", OrderStatus.ACCEPTED)]  # type: ignore[attr-defined]
    venue.fill(coid, "150.00", "exec-1", at=T0 + timedelta(seconds=1))
    second = await rec.poll(T0 + timedelta(seconds=2))
    assert [t for t, _ in second] == ["fills", "orders"]
    fill, order = second[0][1], second[1][1]
    assert isinstance(fill, Fill)
    assert fill.price == Decimal("150.00")
    assert fill.event_id == Fill.derive_event_id("fake", "exec-1")
    assert isinstance(order, OrderEvent)
    assert order.status is OrderStatus.FILLED
    assert await rec.poll(T0 + timedelta(seconds=3)) == []


async def test_a_restarted_reconciler_seeded_from_kafka_publishes_nothing_again(
        venue: FakeVenue) -> None:
    coid = await placed(venue)
    venue.fill(coid, "150.00", "exec-1", at=T0)
    rec = Reconciler(venue, lookback=timedelta(hours=1))
    rec.seed({"exec-1"}, {coid: (OrderStatus.FILLED, Decimal(133))})
    assert await rec.poll(T0 + timedelta(seconds=1)) == []


async def test_a_late_copy_of_an_earlier_state_does_not_reopen_an_order(
        venue: FakeVenue) -> None:
    coid = await placed(venue)
    venue.fill(coid, "150.00", "exec-1", at=T0)
    rec = Reconciler(venue, lookback=timedelta(hours=1))
    await rec.poll(T0)
    late = OrderEvent(
        event_id=OrderEvent.derive_event_id(coid, OrderStatus.SUBMITTED, Decimal(0)),
        correlation_id=intent_for(approval()).correlation_id, client_order_id=coid,
        venue="fake", account_id="DU1", symbol="AAPL", side="BUY", order_type="LMT",
        quantity=Decimal(133), status=OrderStatus.SUBMITTED)
    rec.on_order_event(late)
    assert coid not in rec.watched
    assert await rec.poll(T0 + timedelta(seconds=1)) == []


async def test_orders_of_others_in_the_account_are_ignored(venue: FakeVenue) -> None:
    from brokers.port import OrderRequest

    await venue.place(OrderRequest(client_order_id="manual-1", symbol="MSFT", side="BUY",
                                   quantity=Decimal(1), order_type="MKT"))
    assert await Reconciler(venue).poll(T0) == []
