"""Decoding and the signal's own rules: boundaries and details, for BUY and SELL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agents.decisions import (
    ReasonCode,
    Refusal,
    parse_approval,
    parse_signal,
    validate_approval,
    validate_signal,
)
from agents.decisions.validation import ensure_utc
from schemas.events import Approval, Side, Signal
from tests.unit.decisions.decisions_factory import DROP, T0, Factory

R = ReasonCode
BUY, SELL = Side.BUY, Side.SELL


def code_of(result: object) -> R | None:
    return result.code if isinstance(result, Refusal) else None


# --- decoding ---------------------------------------------------------------------------


def test_parse_signal_accepts_seed_shape(f: Factory) -> None:
    assert isinstance(parse_signal(f.signal_dict()), Signal)


@pytest.mark.parametrize(
    ("over", "code", "fields"),
    [
        pytest.param({"entry_price": DROP}, R.MISSING_FIELD, "entry_price", id="missing-entry"),
        pytest.param(
            {"symbol": DROP, "stop_loss": DROP}, R.MISSING_FIELD, "symbol, stop_loss", id="two"
        ),
        pytest.param({"entry_price": "abc"}, R.INVALID_FIELD, "entry_price", id="entry-text"),
        pytest.param({"signal_type": "HOLD"}, R.INVALID_FIELD, "signal_type", id="side-hold"),
        pytest.param({"ttl_seconds": 0}, R.INVALID_FIELD, "ttl_seconds", id="ttl-zero"),
        pytest.param(
            {"occurred_at": "2026-02-06T15:00:00"}, R.INVALID_FIELD, "occurred_at", id="naive"
        ),
    ],
)
def test_parse_signal_names_fields(f: Factory, over: dict, code: R, fields: str) -> None:
    refusal = parse_signal(f.signal_dict(**over))
    assert isinstance(refusal, Refusal)
    assert refusal.code is code
    assert refusal.stage == "validation"
    assert refusal.details["fields"] == fields
    for name in fields.split(", "):
        assert name in refusal.message


@pytest.mark.parametrize("obj", [None, [], "signal", 3], ids=["none", "list", "str", "int"])
def test_parse_non_object(obj: object) -> None:
    assert code_of(parse_signal(obj)) is R.INVALID_FIELD
    assert code_of(parse_approval(obj)) is R.INVALID_FIELD


@pytest.mark.parametrize(
    "price", ["NaN", "Infinity", "-Infinity", "0", "-1"], ids=["nan", "inf", "-inf", "0", "neg"]
)
def test_parse_keeps_bad_prices_for_the_rules(f: Factory, price: str) -> None:
    signal = parse_signal(f.signal_dict(entry_price=price))
    assert isinstance(signal, Signal)
    refusal = validate_signal(signal, f.settings(), T0)
    assert code_of(refusal) in {R.NON_FINITE_PRICE, R.NON_POSITIVE_PRICE}


def test_parse_approval_names_nested_signal_field(f: Factory) -> None:
    refusal = parse_approval(f.approval_dict(f.signal_dict(stop_loss=DROP)))
    assert isinstance(refusal, Refusal)
    assert refusal.code is R.MISSING_FIELD
    assert refusal.details["fields"] == "signal.stop_loss"


@pytest.mark.parametrize(
    ("over", "code", "field"),
    [
        pytest.param({"decided_at": DROP}, R.MISSING_FIELD, "decided_at", id="no-decided-at"),
        pytest.param({"signal": DROP}, R.MISSING_FIELD, "signal", id="no-signal"),
        pytest.param({"decision": "maybe"}, R.INVALID_FIELD, "decision", id="bad-decision"),
        pytest.param({"approved_by": ""}, R.INVALID_FIELD, "approved_by", id="empty-approver"),
    ],
)
def test_parse_approval_errors(f: Factory, over: dict, code: R, field: str) -> None:
    refusal = parse_approval(f.approval_dict(**over))
    assert isinstance(refusal, Refusal)
    assert refusal.code is code
    assert field in refusal.details["fields"]


def test_parse_approval_ok(f: Factory) -> None:
    assert isinstance(parse_approval(f.approval_dict()), Approval)


# --- the signal's own rules ---------------------------------------------------------------


def sided(buy: dict, sell: dict, code: R | None, name: str) -> list:
    return [
        pytest.param(BUY, buy, code, id=f"{name}-BUY"),
        pytest.param(SELL, sell, code, id=f"{name}-SELL"),
    ]


def same(over: dict, code: R | None, name: str) -> list:
    return sided(over, over, code, name)


RULES = [
    *same({}, None, "valid"),
    *same({"symbol": "BRK.B"}, None, "symbol-dot"),
    *same({"symbol": "BF-B"}, None, "symbol-dash"),
    *same({"symbol": "A" * 15}, None, "symbol-15"),
    *same({"symbol": "A" * 16}, R.INVALID_SYMBOL, "symbol-16"),
    *same({"symbol": "1AB"}, R.INVALID_SYMBOL, "symbol-digit-first"),
    *same({"symbol": "AAPL\n"}, R.INVALID_SYMBOL, "symbol-newline"),
    *same({"symbol": ""}, R.INVALID_SYMBOL, "symbol-empty"),
    *same({"symbol": "AA PL"}, R.INVALID_SYMBOL, "symbol-space"),
    *same({"stop_loss": "NaN"}, R.NON_FINITE_PRICE, "stop-nan"),
    *same({"take_profit": "Infinity"}, R.NON_FINITE_PRICE, "tp-inf"),
    *same({"entry_price": "-Infinity"}, R.NON_FINITE_PRICE, "entry-neg-inf"),
    *same({"entry_price": "0"}, R.NON_POSITIVE_PRICE, "entry-zero"),
    *same({"stop_loss": "-5"}, R.NON_POSITIVE_PRICE, "stop-negative"),
    *same({"take_profit": "0"}, R.NON_POSITIVE_PRICE, "tp-zero"),
    *same({"entry_price": "1000000.01"}, R.PRICE_TOO_LARGE, "entry-above-max"),
    *sided({"take_profit": "1e9"}, {"stop_loss": "1e9"}, R.PRICE_TOO_LARGE, "exit-above-max"),
    *same({"stop_loss": "150.00"}, R.STOP_WRONG_SIDE, "stop-at-entry"),
    *sided({"stop_loss": "150.01"}, {"stop_loss": "149.99"}, R.STOP_WRONG_SIDE, "stop-1c-wrong"),
    *sided({"stop_loss": "149.99"}, {"stop_loss": "150.01"}, None, "stop-1c-right"),
    *same({"take_profit": "150.00"}, R.TAKE_PROFIT_WRONG_SIDE, "tp-at-entry"),
    *sided({"take_profit": "149"}, {"take_profit": "151"}, R.TAKE_PROFIT_WRONG_SIDE, "tp-wrong"),
    *same({"take_profit": None}, None, "tp-optional"),
    *same({"confidence": None}, None, "confidence-optional"),
    *same({"confidence": "0"}, None, "confidence-0"),
    *same({"confidence": "1"}, None, "confidence-1"),
    *same({"confidence": "1.01"}, R.INVALID_CONFIDENCE, "confidence-above-1"),
    *same({"confidence": "-0.01"}, R.INVALID_CONFIDENCE, "confidence-negative"),
    *same({"confidence": "NaN"}, R.INVALID_CONFIDENCE, "confidence-nan"),
]


@pytest.mark.parametrize(("side", "over", "code"), RULES)
def test_signal_rules(f: Factory, side: Side, over: dict, code: R | None) -> None:
    assert code_of(validate_signal(f.signal(side, **over), f.settings(), T0)) is code


SETTING_RULES = [
    *same({}, None, "allowlisted"),
    pytest.param(BUY, {"symbol": "MSFT"}, R.SYMBOL_NOT_ALLOWED, id="not-allowlisted-BUY"),
    pytest.param(SELL, {"symbol": "MSFT"}, R.SYMBOL_NOT_ALLOWED, id="not-allowlisted-SELL"),
]


@pytest.mark.parametrize(("side", "over", "code"), SETTING_RULES)
def test_allowlist(f: Factory, side: Side, over: dict, code: R | None) -> None:
    settings = f.settings(symbol_allowlist="aapl, GOOG")
    assert code_of(validate_signal(f.signal(side, **over), settings, T0)) is code


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize(
    ("minimum", "over", "code"),
    [
        pytest.param("2", {}, None, id="rr-2-meets-2"),
        pytest.param("2.01", {}, R.REWARD_RISK_TOO_LOW, id="rr-2-below-2.01"),
        pytest.param("1", {"take_profit": None}, R.TAKE_PROFIT_REQUIRED, id="rr-needs-tp"),
    ],
)
def test_min_reward_risk(f: Factory, side: Side, minimum: str, over: dict, code: R | None) -> None:
    settings = f.settings(min_reward_risk=minimum)
    refusal = validate_signal(f.signal(side, **over), settings, T0)
    assert code_of(refusal) is code
    if code is R.REWARD_RISK_TOO_LOW:
        assert isinstance(refusal, Refusal)
        assert refusal.details["rr_ratio"] == "2"
        assert refusal.details["min_reward_risk"] == minimum


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize(
    ("confidence", "code"),
    [
        pytest.param("0.85", None, id="above"),
        pytest.param("0.6", None, id="equal"),
        pytest.param("0.59", R.CONFIDENCE_TOO_LOW, id="below"),
        pytest.param(None, R.CONFIDENCE_TOO_LOW, id="missing"),
    ],
)
def test_min_confidence(f: Factory, side: Side, confidence: str | None, code: R | None) -> None:
    settings = f.settings(min_confidence="0.6")
    signal = f.signal(side, confidence=confidence)
    assert code_of(validate_signal(signal, settings, T0)) is code


# --- expiry and approval ------------------------------------------------------------------


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize(
    ("ttl", "age", "code"),
    [
        pytest.param(None, 3600, None, id="default-ttl-edge"),
        pytest.param(None, 3601, R.SIGNAL_EXPIRED, id="default-ttl-past"),
        pytest.param(60, 60, None, id="own-ttl-edge"),
        pytest.param(60, 61, R.SIGNAL_EXPIRED, id="own-ttl-past"),
        pytest.param(7200, 3601, None, id="own-ttl-longer"),
    ],
)
def test_expiry(f: Factory, side: Side, ttl: int | None, age: int, code: R | None) -> None:
    signal = f.signal(side, ttl_seconds=ttl)
    now = T0 + timedelta(seconds=age)
    assert code_of(validate_signal(signal, f.settings(), now)) is code


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize(
    ("decided", "now", "code"),
    [
        pytest.param(10, 20, None, id="in-time"),
        pytest.param(3601, 3601, R.SIGNAL_EXPIRED, id="decided-late"),
        pytest.param(10, 3601, R.SIGNAL_EXPIRED, id="processed-late"),
        pytest.param(3601, 10, R.SIGNAL_EXPIRED, id="decided-late-clock-behind"),
    ],
)
def test_approval_expiry(f: Factory, side: Side, decided: int, now: int, code: R | None) -> None:
    decided_at = (T0 + timedelta(seconds=decided)).isoformat()
    approval = f.approval(f.signal_dict(side), decided_at=decided_at)
    refusal = validate_approval(approval, f.settings(), T0 + timedelta(seconds=now))
    assert code_of(refusal) is code


@pytest.mark.parametrize("side", [BUY, SELL])
def test_human_rejection_is_on_record(f: Factory, side: Side) -> None:
    approval = f.approval(f.signal_dict(side), decision="rejected", reason="earnings tomorrow")
    refusal = validate_approval(approval, f.settings(), T0)
    assert isinstance(refusal, Refusal)
    assert refusal.code is R.SIGNAL_REJECTED_BY_HUMAN
    assert refusal.details["approved_by"] == "test_user"
    assert refusal.details["reason"] == "earnings tomorrow"
    assert "earnings tomorrow" in refusal.message


@pytest.mark.parametrize("side", [BUY, SELL])
def test_approval_rechecks_signal_rules(f: Factory, side: Side) -> None:
    approval = f.approval(f.signal_dict(side, entry_price="NaN"))
    assert code_of(validate_approval(approval, f.settings(), T0)) is R.NON_FINITE_PRICE


def test_naive_now_is_refused(f: Factory) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_signal(f.signal(), f.settings(), datetime(2026, 2, 6, 15))
    assert ensure_utc(T0) == T0
