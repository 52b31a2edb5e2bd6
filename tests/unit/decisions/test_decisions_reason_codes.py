"""Every reason code, for BUY and SELL, end to end through parse/validate/decide."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from agents.decisions import (
    ReasonCode,
    Refusal,
    decide,
    parse_approval,
    validate_signal,
)
from agents.decisions.reasons import EXTERNAL_CODES
from brokers.port import AccountKind
from schemas.events import OrderIntent, Rejection, Side, Signal
from tests.unit.decisions.decisions_factory import DROP, T0, Factory

R = ReasonCode
BUY, SELL = Side.BUY, Side.SELL


@dataclass
class Case:
    """One scenario: what to change from the worked example, and what must come out."""

    code: R | None
    signal: dict[str, Any] = field(default_factory=dict)
    approval: dict[str, Any] = field(default_factory=dict)
    account: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    positions: list[tuple[str, str, str]] = field(default_factory=list)
    recent: int = 0
    now: Any = T0
    stage: str = "decide"  # or "parse" / "validate_signal"


def mirror(side: Side, buy: dict[str, Any], sell: dict[str, Any]) -> dict[str, Any]:
    return buy if side is BUY else sell


def cases(side: Side) -> dict[str, Case]:
    """Scenario per reason code; side-specific prices where the rule depends on side."""
    late = T0.replace(hour=22)  # 17:00 New York, after a 09:30-16:00 window
    return {
        "missing_field": Case(R.MISSING_FIELD, signal={"entry_price": DROP}, stage="parse"),
        "invalid_field": Case(R.INVALID_FIELD, signal={"entry_price": "abc"}, stage="parse"),
        "invalid_side": Case(R.INVALID_SIDE, signal={"signal_type": "HOLD"}, stage="construct"),
        "invalid_symbol": Case(R.INVALID_SYMBOL, signal={"symbol": "aapl"}),
        "symbol_not_allowed": Case(R.SYMBOL_NOT_ALLOWED, settings={"symbol_allowlist": "MSFT"}),
        "non_finite_price": Case(R.NON_FINITE_PRICE, signal={"entry_price": "NaN"}),
        "non_positive_price": Case(R.NON_POSITIVE_PRICE, signal={"entry_price": "-150"}),
        "price_too_large": Case(R.PRICE_TOO_LARGE, settings={"max_price": "100"}),
        "stop_wrong_side": Case(
            R.STOP_WRONG_SIDE, signal=mirror(side, {"stop_loss": "155"}, {"stop_loss": "145"})
        ),
        "take_profit_wrong_side": Case(
            R.TAKE_PROFIT_WRONG_SIDE,
            signal=mirror(side, {"take_profit": "140"}, {"take_profit": "160"}),
        ),
        "take_profit_required": Case(
            R.TAKE_PROFIT_REQUIRED, signal={"take_profit": None}, settings={"min_reward_risk": "2"}
        ),
        "reward_risk_too_low": Case(R.REWARD_RISK_TOO_LOW, settings={"min_reward_risk": "2.5"}),
        "invalid_confidence": Case(R.INVALID_CONFIDENCE, signal={"confidence": "1.5"}),
        "confidence_too_low": Case(R.CONFIDENCE_TOO_LOW, settings={"min_confidence": "0.9"}),
        "signal_expired": Case(R.SIGNAL_EXPIRED, now=T0 + timedelta(seconds=3601)),
        "rejected_by_human": Case(
            R.SIGNAL_REJECTED_BY_HUMAN, approval={"decision": "rejected", "reason": "too late"}
        ),
        "no_equity": Case(R.NO_EQUITY, account={"equity": "0"}),
        "stop_within_tick": Case(
            R.STOP_WITHIN_TICK,
            signal=mirror(
                side,
                {"entry_price": "150.005", "stop_loss": "149.999"},
                {"entry_price": "149.995", "stop_loss": "150.001"},
            ),
        ),
        "position_too_small": Case(R.POSITION_TOO_SMALL, account={"buying_power": "100"}),
        "outside_trading_window": Case(
            R.OUTSIDE_TRADING_WINDOW,
            signal={"occurred_at": late.isoformat()},
            approval={"decided_at": late.isoformat()},
            settings={"trading_window": "09:30-16:00"},
            now=late,
        ),
        "order_rate_limit": Case(R.ORDER_RATE_LIMIT, recent=10),
        "max_daily_loss": Case(
            R.MAX_DAILY_LOSS,
            account={"realized_pnl_today": "-600", "unrealized_pnl": "-400"},
            settings={"max_daily_loss": "1000"},
        ),
        "shorting_disabled": Case(
            R.SHORTING_DISABLED if side is SELL else None, account={"shorting_enabled": False}
        ),
        "same_symbol_position": Case(R.SAME_SYMBOL_POSITION, positions=[("AAPL", "10", "150")]),
        "max_open_positions": Case(
            R.MAX_OPEN_POSITIONS,
            settings={"max_open_positions": 2},
            positions=[("MSFT", "10", "400"), ("GOOG", "10", "150")],
        ),
        "max_gross_exposure": Case(R.MAX_GROSS_EXPOSURE, positions=[("MSFT", "225", "400")]),
        "max_symbol_exposure": Case(
            R.MAX_SYMBOL_EXPOSURE,
            settings={"allow_same_symbol_position": True},
            positions=[("AAPL", "100", "150")],
        ),
        "max_group_exposure": Case(
            R.MAX_GROUP_EXPOSURE,
            settings={"symbol_groups": "AAPL:tech,MSFT:tech"},
            positions=[("MSFT", "100", "400")],
        ),
        "live_trading_not_enabled": Case(
            R.LIVE_TRADING_NOT_ENABLED, account={"account_id": "U7654321", "kind": AccountKind.LIVE}
        ),
        "passes": Case(None),
    }


def run(f: Factory, side: Side, case: Case) -> Refusal | Rejection | OrderIntent | Signal | None:
    signal_data = f.signal_dict(side, **case.signal)
    if case.stage == "parse":
        parsed = parse_approval(f.approval_dict(signal_data, **case.approval))
        assert isinstance(parsed, Refusal)
        return parsed
    if case.stage == "construct":
        bad = Signal.model_construct(**{**f.signal(side).__dict__, **case.signal})
        return validate_signal(bad, f.settings(**case.settings), case.now)
    approval = f.approval(signal_data, **case.approval)
    positions = [f.position(*p) for p in case.positions]
    return decide(
        approval,
        f.account(**case.account),
        positions,
        [],
        case.recent,
        case.now,
        f.settings(**case.settings),
        "sim",
    )


PARAMS = [
    pytest.param(side, name, id=f"{name}-{side}") for name in cases(BUY) for side in (BUY, SELL)
]


@pytest.mark.parametrize(("side", "name"), PARAMS)
def test_reason_code(f: Factory, side: Side, name: str) -> None:
    case = cases(side)[name]
    outcome = run(f, side, case)
    if case.code is None:
        assert isinstance(outcome, OrderIntent), outcome
        assert outcome.side is side
        return
    if isinstance(outcome, Refusal):
        assert outcome.code is case.code, outcome
        assert outcome.message
        return
    assert isinstance(outcome, Rejection), outcome
    assert outcome.reason_code == case.code, outcome
    assert outcome.message
    assert outcome.details


def test_every_reason_code_has_a_case() -> None:
    covered = {c.code for side in (BUY, SELL) for c in cases(side).values() if c.code}
    assert covered == set(ReasonCode) - EXTERNAL_CODES
