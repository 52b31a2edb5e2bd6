"""The sizing stage over a fake venue: the seed's example, and a second decision as a no-op."""

from __future__ import annotations

from decimal import Decimal

from agents.context import Source, StageContext
from agents.sizing import handle_approval
from agents.submission import request_from
from schemas.events import OrderIntent, Rejection, SizingBound
from tests.fakes import FakeVenue
from tests.unit.agents.conftest import approval, outcome, raw

SRC = Source("approvals", 0, 3)


async def test_the_seed_approval_sizes_to_133_shares(venue: FakeVenue, ctx: StageContext) -> None:
    (topic, intent), = outcome(await handle_approval(raw(approval()), SRC, ctx))
    assert topic == "order-intents"
    assert isinstance(intent, OrderIntent)
    assert intent.quantity == 133
    assert intent.sizing.risk_amount == Decimal("665.00")
    assert intent.sizing.position_value == Decimal("19950.00")
    assert intent.sizing.bound_by is SizingBound.POSITION_PCT
    assert ("account", None) in venue.calls  # read from the venue at decision time


async def test_a_second_decision_on_an_ordered_signal_is_a_recorded_no_op(
        venue: FakeVenue, ctx: StageContext) -> None:
    (_, intent), = outcome(await handle_approval(raw(approval()), SRC, ctx))
    assert isinstance(intent, OrderIntent)
    await venue.place(request_from(intent))
    ctx.book.outcomes.clear()  # a worker that never saw the first decision: the venue knows
    ctx.book.intents.clear()
    ctx.view.invalidate()
    (topic, again), = outcome(await handle_approval(raw(approval()), SRC, ctx))
    assert topic == "rejections"
    assert isinstance(again, Rejection)
    assert again.reason_code == "ALREADY_DECIDED"
    assert again.details["client_order_id"] == intent.client_order_id


async def test_a_human_no_is_a_rejection_with_who_said_it(ctx: StageContext) -> None:
    (topic, rejection), = outcome(await handle_approval(raw(approval("rejected")), SRC, ctx))
    assert topic == "rejections"
    assert isinstance(rejection, Rejection)
    assert rejection.reason_code == "SIGNAL_REJECTED_BY_HUMAN"
    assert rejection.details["approved_by"] == "alice"
