"""The order state machine: final states are final, filled quantity never goes down, and any
sequence of venue reports folds into a consistent state."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.decisions.order_state import (
    TRANSITIONS,
    Accepted,
    Illegal,
    OrderState,
    Unchanged,
    aggregate,
    inconsistency,
    transition,
)
from brokers.sim.core import Exchange, SimConfig
from schemas.events import OrderStatus, OrderType, Side
from tests.unit.brokers.conftest import ACCOUNT, FakeClock, req

S = OrderStatus
Q = Decimal(100)


def state(status: OrderStatus, filled: int | str = 0, quantity: Decimal = Q) -> OrderState:
    return OrderState(status, quantity, Decimal(filled))


statuses = st.sampled_from(list(OrderStatus))
filled = st.integers(min_value=0, max_value=100).map(Decimal)
states = st.builds(OrderState, statuses, st.just(Q), filled).filter(
    lambda s: inconsistency(s) is None)
reports = st.builds(OrderState, statuses, st.just(Q), filled)


def test_every_state_has_a_row_and_final_rows_are_empty() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert all(not TRANSITIONS[s] for s in OrderStatus if s.is_terminal)


@pytest.mark.parametrize(("before", "after", "outcome"), [
    (state(S.SUBMITTED), state(S.ACCEPTED), Accepted),
    (state(S.ACCEPTED), state(S.FILLED, 100), Accepted),  # a poll may skip partial fills
    (state(S.PARTIALLY_FILLED, 10), state(S.PARTIALLY_FILLED, 30), Accepted),
    (state(S.PENDING_CANCEL, 10), state(S.PARTIALLY_FILLED, 10), Accepted),  # cancel refused
    (state(S.ACCEPTED), state(S.SUBMITTED), Unchanged),  # a stale snapshot
    (state(S.ACCEPTED), state(S.ACCEPTED), Unchanged),
    (state(S.FILLED, 100), state(S.CANCELLED, 100), Illegal),
    (state(S.CANCELLED, 10), state(S.PARTIALLY_FILLED, 20), Illegal),
    (state(S.PARTIALLY_FILLED, 30), state(S.PARTIALLY_FILLED, 10), Illegal),
    (state(S.PARTIALLY_FILLED, 30), state(S.REJECTED, 30), Illegal),
    (None, state(S.FILLED, 50), Illegal),  # inconsistent on its own
    (None, state(S.CANCELLED, 50), Accepted),
])
def test_transitions(before: OrderState | None, after: OrderState, outcome: type) -> None:
    assert isinstance(transition(before, after), outcome)


def test_an_illegal_report_says_why() -> None:
    result = transition(state(S.FILLED, 100), state(S.ACCEPTED))
    assert isinstance(result, Illegal)
    assert "final" in result.reason


@given(current=states.filter(lambda s: s.status.is_terminal), report=reports)
def test_a_final_state_is_final(current: OrderState, report: OrderState) -> None:
    assert not isinstance(transition(current, report), Accepted)


@given(current=states, report=reports)
def test_filled_quantity_never_goes_down(current: OrderState, report: OrderState) -> None:
    result = transition(current, report)
    if isinstance(result, Accepted):
        assert result.state.filled_quantity >= current.filled_quantity


@given(st.lists(reports, max_size=30))
def test_any_sequence_of_reports_folds_into_a_consistent_state(seq: list[OrderState]) -> None:
    known: OrderState | None = None
    for report in seq:
        result = transition(known, report)
        if isinstance(result, Accepted):
            if known is not None:
                assert not known.status.is_terminal
                assert result.state.filled_quantity >= known.filled_quantity
            known = result.state
        assert known is None or inconsistency(known) is None


@st.composite
def venue_life(draw: st.DrawFn) -> list[OrderState]:
    """What a venue reports over an order's life, in order, some polls repeating a state."""
    life = [state(S.SUBMITTED), state(S.ACCEPTED)]
    done = 0
    while done < 100:
        step = draw(st.integers(min_value=0, max_value=100 - done))
        if step == 0 or draw(st.booleans()):
            break
        done += step
        life.append(state(S.FILLED if done == 100 else S.PARTIALLY_FILLED, done))
    if done < 100:
        if draw(st.booleans()):
            life.append(state(S.PENDING_CANCEL, done))
        life.append(state(draw(st.sampled_from([S.CANCELLED, S.EXPIRED])), done))
    return [s for s in life for _ in range(draw(st.integers(1, 2)))]


@given(life=venue_life(), skip=st.lists(st.booleans(), min_size=12, max_size=12))
def test_a_venue_life_seen_by_any_subset_of_polls_is_legal(life: list[OrderState],
                                                           skip: list[bool]) -> None:
    seen = [s for i, s in enumerate(life) if i == len(life) - 1 or not skip[i % len(skip)]]
    known: OrderState | None = None
    for report in seen:
        result = transition(known, report)
        assert not isinstance(result, Illegal), (known, report, result)
        if isinstance(result, Accepted):
            known = result.state
    assert known == life[-1]


def test_partial_fills_aggregate_to_the_simulators_cumulative_figures() -> None:
    exchange = Exchange(SimConfig(seed=11), clock=FakeClock())
    exchange.set_liquidity("AAPL", Decimal(7))
    exchange.set_price("AAPL", Decimal("150.00"), hold=False)
    exchange.place(ACCOUNT, req("agg", qty=25, order_type=OrderType.LMT, limit_price="152.00",
                                side=Side.BUY))
    while exchange.order(ACCOUNT, "agg").status is not S.FILLED:
        exchange.advance()
    fills = [f for f in exchange.fills(ACCOUNT) if f.client_order_id == "agg"]
    order = exchange.order(ACCOUNT, "agg")
    print("executions:", [(str(f.quantity), str(f.price)) for f in fills],
          "venue avg:", order.avg_fill_price)
    assert len(fills) > 1
    assert aggregate((f.quantity, f.price) for f in fills) == (
        order.filled_quantity, order.avg_fill_price)
