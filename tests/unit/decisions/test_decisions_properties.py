"""Property tests: sizing never over-risks, never over-spends, is lot-aligned and monotonic."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.decisions import (
    Instrument,
    Refusal,
    RiskSettings,
    Sizing,
    check_limits,
    decide,
    size_position,
    validate_approval,
)
from agents.decisions.live import live_guard
from brokers.port import AccountKind, AccountSnapshot
from schemas.events import OrderIntent, Rejection, Side, Signal
from tests.unit.decisions.decisions_factory import T0, Factory

FAST = settings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
F = Factory()


def cents(low: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low, high).map(lambda n: Decimal(n).scaleb(-2))


def magnitude(low_exp: int, high_exp: int) -> st.SearchStrategy[Decimal]:
    """Amounts spread over orders of magnitude (in cents), so every cap gets to bind."""
    return st.integers(low_exp, high_exp).flatmap(lambda e: cents(10**e, 10 ** (e + 1)))


def fraction(low: int, high: int, places: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low, high).map(lambda n: Decimal(n).scaleb(-places))


@st.composite
def signals(draw: st.DrawFn) -> Signal:
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    entry = draw(magnitude(1, 6))
    top = int(entry * 100) - 1
    distance = draw(cents(1, max(1, top // 10)) | cents(1, top))
    sign = -1 if side is Side.BUY else 1
    tp = entry - sign * draw(cents(1, top))
    return F.signal(
        side, entry_price=str(entry), stop_loss=str(entry + sign * distance), take_profit=str(tp)
    )


@st.composite
def risk_settings(draw: st.DrawFn) -> RiskSettings:
    values: dict[str, Any] = {
        "risk_per_trade": draw(fraction(1, 100, 3)),
        "max_position_pct": draw(fraction(1, 100, 2)),
        "min_position_size": draw(st.sampled_from(["1", "1", "0.0001", "5"])),
        "max_position_size": draw(st.none() | st.integers(5, 100_000)),
        "max_order_notional": draw(st.none() | magnitude(4, 9)),
        "live_ramp_factor": draw(fraction(1, 100, 2)),
        "live_max_order_notional": draw(magnitude(4, 8)),
        "live_trading_account": "U1",
    }
    return RiskSettings(**values)


@st.composite
def accounts(draw: st.DrawFn) -> AccountSnapshot:
    live = draw(st.booleans())
    equity = draw(magnitude(5, 10))
    return F.account(
        account_id="U1" if live else "DU1",
        kind=AccountKind.LIVE if live else AccountKind.PAPER,
        equity=equity,
        buying_power=equity * draw(fraction(0, 400, 2)),
        realized_pnl_today=draw(cents(-1_000_000, 1_000_000)),
    )


instruments = st.sampled_from(
    [
        Instrument(),
        Instrument(lot_size=Decimal(10)),
        Instrument(lot_size=Decimal(100)),
        Instrument(fractional=True),
    ]
)


@dataclass
class Case:
    signal: Signal
    account: AccountSnapshot
    instrument: Instrument
    settings: RiskSettings


cases = st.builds(Case, signals(), accounts(), instruments, risk_settings())


@FAST
@given(case=cases)
def test_sizing_invariants(case: Case) -> None:
    result = size_position(case.signal, case.account, case.instrument, case.settings)
    if isinstance(result, Refusal):
        assert result.stage == "sizing"
        return
    fig, s, qty = result.figures, case.settings, result.quantity
    assert qty > 0
    assert qty >= s.min_position_size
    assert qty % case.instrument.qty_step == 0
    assert fig.risk_amount <= case.account.equity * s.risk_per_trade
    assert fig.position_value <= case.account.equity * s.max_position_pct
    assert fig.position_value <= case.account.buying_power
    assert fig.risk_amount == qty * fig.stop_distance
    assert fig.position_value == qty * case.signal.entry_price
    if s.max_order_notional is not None:
        assert fig.position_value <= s.max_order_notional
    if s.max_position_size is not None:
        assert qty <= s.max_position_size
    if case.account.kind is AccountKind.LIVE:
        assert fig.position_value <= s.live_max_order_notional
        assert fig.scale == s.live_ramp_factor
    if result.limit_price is not None:
        assert qty * result.limit_price <= case.account.buying_power


@FAST
@given(case=cases, extra=cents(0, 10_000_000_000))
def test_more_equity_never_smaller(case: Case, extra: Decimal) -> None:
    small = size_position(case.signal, case.account, case.instrument, case.settings)
    richer = case.account.model_copy(update={"equity": case.account.equity + extra})
    large = size_position(case.signal, richer, case.instrument, case.settings)
    if isinstance(small, Sizing):
        assert isinstance(large, Sizing)
        assert large.quantity >= small.quantity


@FAST
@given(
    case=cases,
    recent=st.integers(0, 12),
    held=st.lists(
        st.tuples(st.sampled_from(["AAPL", "MSFT", "GOOG", "XOM"]), st.integers(-500, 500)),
        max_size=4,
    ),
    shorting=st.booleans(),
)
def test_a_refusal_never_emits_an_intent(
    case: Case, recent: int, held: list[tuple[str, int]], shorting: bool
) -> None:
    signal = case.signal.model_copy(update={"symbol": "AAPL"})
    approval = F.approval(signal)
    account = case.account.model_copy(update={"shorting_enabled": shorting})
    positions = [F.position(sym, str(qty), "100") for sym, qty in held]
    book = {"AAPL": case.instrument}
    result = decide(approval, account, positions, [], recent, T0, case.settings, "sim", book)
    refusal = validate_approval(approval, case.settings, T0) or live_guard(account, case.settings)
    sizing = size_position(signal, account, case.instrument, case.settings)
    if refusal is None and isinstance(sizing, Refusal):
        refusal = sizing
    if refusal is None and isinstance(sizing, Sizing):
        refusal = check_limits(signal, sizing, account, positions, [], recent, T0, case.settings)
    if refusal is None:
        assert isinstance(result, OrderIntent)
        assert result.quantity > 0
    else:
        assert isinstance(result, Rejection)
        assert result.reason_code == refusal.code
