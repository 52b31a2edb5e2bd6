"""Submission places each intent exactly once, whatever is redelivered or retried."""

from __future__ import annotations

from agents.context import Source, StageContext
from agents.submission import handle_intent
from brokers.exceptions import OrderRejected, TransientBrokerError
from schemas.events import OrderEvent, OrderStatus, Rejection
from tests.fakes import FakeVenue
from tests.unit.agents.conftest import approval, intent_for, raw

SRC = Source("order-intents", 0, 7)


def places(venue: FakeVenue) -> int:
    return sum(1 for call, _ in venue.calls if call == "place")


async def test_an_intent_becomes_one_order_and_two_order_events(
        venue: FakeVenue, ctx: StageContext) -> None:
    intent = intent_for(approval())
    out = await handle_intent(raw(intent), SRC, ctx)
    assert places(venue) == 1
    assert [t for t, _ in out] == ["orders", "orders"]
    first, second = (e for _, e in out)
    assert isinstance(first, OrderEvent)
    assert first.status is OrderStatus.SUBMITTED
    assert isinstance(second, OrderEvent)
    assert second.status is OrderStatus.ACCEPTED
    assert first.correlation_id == intent.correlation_id == second.correlation_id


async def test_a_redelivered_intent_is_looked_up_not_placed_again(
        venue: FakeVenue, ctx: StageContext) -> None:
    intent = intent_for(approval())
    await handle_intent(raw(intent), SRC, ctx)
    ctx.orders_view.invalidate()  # a restarted worker reads the venue afresh
    out = await handle_intent(raw(intent), SRC, ctx)
    assert places(venue) == 1
    assert [e.status for _, e in out] == [OrderStatus.ACCEPTED]  # type: ignore[attr-defined]


async def test_a_duplicate_refused_by_the_venue_is_looked_up(
        venue: FakeVenue, ctx: StageContext) -> None:
    intent = intent_for(approval())
    await handle_intent(raw(intent), SRC, ctx)
    out = await handle_intent(raw(intent), SRC, ctx)  # the snapshot predates the placement
    assert len(venue.orders) == 1
    assert [e.status for _, e in out] == [OrderStatus.ACCEPTED]  # type: ignore[attr-defined]


async def test_transient_errors_are_retried_with_a_lookup_first(
        venue: FakeVenue, ctx: StageContext) -> None:
    venue.fail_next.append(TransientBrokerError("connection reset", code="1100"))
    out = await handle_intent(raw(intent_for(approval())), SRC, ctx)
    assert places(venue) == 2
    assert ("status", intent_for(approval()).client_order_id) in venue.calls[1:], venue.calls
    assert len(venue.orders) == 1
    assert out[-1][0] == "orders"


async def test_a_venue_refusal_is_a_rejection_with_the_venue_code(
        venue: FakeVenue, ctx: StageContext) -> None:
    venue.fail_next.append(OrderRejected("No security definition", code="200"))
    out = await handle_intent(raw(intent_for(approval())), SRC, ctx)
    assert places(venue) == 1
    (topic, event), = out
    assert topic == "rejections"
    assert isinstance(event, Rejection)
    assert event.reason_code == "VENUE_REJECTED"
    assert event.details["venue_code"] == "200"


async def test_a_venue_that_stays_down_yields_a_rejection_not_silence(
        venue: FakeVenue, ctx: StageContext) -> None:
    venue.fail_next.extend(TransientBrokerError("down", code="504") for _ in range(3))
    out = await handle_intent(raw(intent_for(approval())), SRC, ctx)
    assert places(venue) == 3
    (topic, event), = out
    assert topic == "rejections"
    assert event.reason_code == "VENUE_UNAVAILABLE"
