"""A burst of approvals cannot talk past a limit: what was decided but is not yet at the
venue counts as a pending order (the reservation book), and a redelivered approval gets the
same outcome again."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from agents.context import Source, StageContext
from agents.decisions.config import RiskSettings
from agents.sizing import handle_approval
from agents.submission import handle_intent
from brokers.exceptions import OrderRejected
from schemas.events import OrderIntent, Rejection
from tests.fakes import T0, FakeVenue
from tests.unit.agents.conftest import approval, outcome, raw

SRC = Source("approvals", 0, 3)
OFFSETS: dict[bytes, int] = {}
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "JPM", "XOM"]


def fresh(symbol: str, by: str = "alice") -> bytes:
    a = approval(id=str(uuid.uuid4()), symbol=symbol)
    return raw(a.model_copy(update={"approved_by": by}) if by != "alice" else a)


@pytest.fixture
def rich_venue() -> FakeVenue:
    return FakeVenue(equity="100000", buying_power="10000000")


@pytest.fixture
def burst_ctx(rich_venue: FakeVenue, ctx: StageContext) -> StageContext:
    return replace(ctx, venue=rich_venue, risk=RiskSettings(
        max_open_positions=3, max_gross_exposure_pct=Decimal("1.0"),
        max_orders_per_minute=100))


async def outcomes(ctx: StageContext, raws: list[bytes]) -> tuple[list[OrderIntent],
                                                                  list[Rejection]]:
    intents, rejections = [], []
    for r in raws:
        offset = OFFSETS.setdefault(r, len(OFFSETS))  # a redelivery has the same offset
        for _, event in outcome(await handle_approval(r, Source("approvals", 0, offset), ctx)):
            (intents if isinstance(event, OrderIntent) else rejections).append(event)
    return intents, rejections  # type: ignore[return-value]


async def test_eight_approvals_at_once_yield_max_open_positions(burst_ctx: StageContext) -> None:
    intents, rejections = await outcomes(burst_ctx, [fresh(s) for s in SYMBOLS])
    assert len(intents) == 3
    assert [r.reason_code for r in rejections] == ["MAX_OPEN_POSITIONS"] * 5
    assert "3" in rejections[0].message


async def test_gross_exposure_counts_reservations(burst_ctx: StageContext) -> None:
    ctx = replace(burst_ctx, risk=RiskSettings(max_open_positions=50,
                                               max_gross_exposure_pct=Decimal("0.5"),
                                               max_orders_per_minute=100))
    intents, rejections = await outcomes(ctx, [fresh(s) for s in SYMBOLS])
    # each order is 19,950 (20% of equity); 50% of 100,000 holds two of them
    assert len(intents) == 2
    assert {r.reason_code for r in rejections} == {"MAX_GROSS_EXPOSURE"}


async def test_order_rate_counts_reservations(burst_ctx: StageContext) -> None:
    ctx = replace(burst_ctx, risk=RiskSettings(max_open_positions=50, max_orders_per_minute=4,
                                               max_symbol_exposure_pct=Decimal("1"),
                                               max_gross_exposure_pct=Decimal("1")))
    intents, rejections = await outcomes(ctx, [fresh(s) for s in SYMBOLS])
    assert len(intents) == 4
    assert {r.reason_code for r in rejections} == {"ORDER_RATE_LIMIT"}


async def test_buying_power_is_net_of_reservations(ctx: StageContext, venue: FakeVenue) -> None:
    venue.buying_power = Decimal(30000)  # one 19,950 order fits, the next gets the rest
    intents, _ = await outcomes(replace(ctx, risk=RiskSettings(max_open_positions=10)),
                                [fresh("AAPL"), fresh("MSFT")])
    assert intents[0].quantity == 133
    assert intents[1].quantity == 67  # (30,000 - 19,950 reserved) / 150 = 67
    assert intents[1].sizing.bound_by == "buying_power"


async def test_same_symbol_twice_in_a_burst_is_refused(burst_ctx: StageContext) -> None:
    intents, rejections = await outcomes(burst_ctx, [fresh("AAPL"), fresh("AAPL")])
    assert len(intents) == 1
    assert rejections[0].reason_code == "SAME_SYMBOL_POSITION"


async def test_an_order_visible_at_the_venue_is_counted_once(
        burst_ctx: StageContext, rich_venue: FakeVenue) -> None:
    first, _ = await outcomes(burst_ctx, [fresh("AAPL"), fresh("MSFT")])
    for intent in first:  # the submission stage places both: now the venue shows them
        await handle_intent(raw(intent), Source("order-intents", 0, 1), burst_ctx)
    burst_ctx.view.invalidate()  # the next snapshot is read after the placements
    intents, rejections = await outcomes(burst_ctx, [fresh("NVDA"), fresh("AMZN")])
    assert len(intents) == 1  # 2 at the venue + 1 = 3, not 2 + 2 reserved + 1
    assert rejections[0].reason_code == "MAX_OPEN_POSITIONS"
    assert not burst_ctx.book.intents.keys() & {i.client_order_id for i in first}


async def test_a_venue_refusal_frees_its_reservation(
        burst_ctx: StageContext, rich_venue: FakeVenue) -> None:
    intents, _ = await outcomes(burst_ctx, [fresh(s) for s in SYMBOLS[:3]])
    rich_venue.fail_next.append(OrderRejected("no", code="201"))
    (_, refused), = await handle_intent(raw(intents[0]), Source("order-intents", 0, 1), burst_ctx)
    assert isinstance(refused, Rejection)
    burst_ctx.book.on_rejection(refused)  # as read back from `rejections`
    more, _ = await outcomes(burst_ctx, [fresh("JPM")])
    assert len(more) == 1


async def test_a_redelivered_approval_adds_no_second_outcome(burst_ctx: StageContext) -> None:
    raws = [fresh(s) for s in SYMBOLS[:4]]
    first_intents, first_rejections = await outcomes(burst_ctx, raws)
    assert (len(first_intents), len(first_rejections)) == (3, 1)
    again_intents, again_rejections = await outcomes(burst_ctx, raws)  # same offsets
    assert again_intents == again_rejections == []  # the outcomes are on Kafka already
    assert len(burst_ctx.book.intents) == 3


async def test_a_replayed_approval_is_refused(burst_ctx: StageContext) -> None:
    raw_approval = fresh("AAPL")
    intents, _ = await outcomes(burst_ctx, [raw_approval])
    replay = await handle_approval(raw_approval, Source("approvals", 1, 999), burst_ctx)
    assert len(intents) == 1
    assert [e.reason_code for _, e in replay] == ["ALREADY_DECIDED"]  # type: ignore[attr-defined]


async def test_a_second_approver_of_a_reserved_signal_places_nothing(
        burst_ctx: StageContext) -> None:
    a = approval(id=str(uuid.uuid4()))
    b = a.model_copy(update={"approved_by": "bob", "event_id": uuid.uuid4()})
    intents, rejections = await outcomes(burst_ctx, [raw(a), raw(b)])
    assert len(intents) == 1
    assert rejections[0].reason_code == "ALREADY_DECIDED"


async def test_the_book_rebuilt_from_kafka_decides_the_same(burst_ctx: StageContext) -> None:
    intents, _ = await outcomes(burst_ctx, [fresh(s) for s in SYMBOLS[:3]])
    restarted = replace(burst_ctx, book=type(burst_ctx.book)())
    for intent in intents:  # what DecisionMemory reads back from `order-intents`
        restarted.book.on_intent(intent)
    more, rejections = await outcomes(restarted, [fresh("JPM")])
    assert not more
    assert rejections[0].reason_code == "MAX_OPEN_POSITIONS"


async def test_a_cached_snapshot_still_counts_what_was_placed_since(
        burst_ctx: StageContext, rich_venue: FakeVenue) -> None:
    first, _ = await outcomes(burst_ctx, [fresh("AAPL"), fresh("MSFT")])
    for intent in first:  # placed after the sizing snapshot was read: still reservations
        await handle_intent(raw(intent), Source("order-intents", 0, 1), burst_ctx)
    intents, _ = await outcomes(burst_ctx, [fresh("NVDA"), fresh("AMZN")])
    assert len(intents) == 1


async def test_reservations_age_out(burst_ctx: StageContext) -> None:
    intents, _ = await outcomes(burst_ctx, [fresh(s) for s in SYMBOLS[:3]])
    later = replace(burst_ctx, clock=lambda: T0 + burst_ctx.book.ttl + timedelta(seconds=1))
    more, _ = await outcomes(later, [fresh("JPM")])
    assert len(more) == 1
    assert len(intents) == 3
