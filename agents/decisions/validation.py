"""Decode and check signals and approvals: every broken input becomes a coded Refusal."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from pydantic import ValidationError

from agents.decisions.config import RiskSettings
from agents.decisions.instruments import EXACT, exact_ratio
from agents.decisions.reasons import ReasonCode, Refusal
from schemas.events import Approval, Decision, Side, Signal

# A ticker (BRK.B, RDS-A) or a currency pair as OANDA writes it (EUR_USD).
SYMBOL_PATTERN = re.compile(r"[A-Z][A-Z0-9.\-_]{0,14}")

Rule = Callable[[Signal, RiskSettings], Refusal | None]


def ensure_utc(now: datetime) -> datetime:
    """Decisions take time as an argument; a naive clock would make expiry ambiguous."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware (UTC); got naive {now.isoformat()}")
    return now.astimezone(UTC)


# --- decoding ---------------------------------------------------------------------------


def _loc(loc: tuple[int | str, ...], prefix: str) -> str:
    """A field path such as 'signal.entry_price'."""
    path = ".".join(str(p) for p in loc) or "(object)"
    return f"{prefix}{path}"


def _decode_refusal(what: str, exc: ValidationError, prefix: str = "") -> Refusal:
    """Missing fields win over invalid ones, since a sender fixes those first."""
    errors = exc.errors(include_url=False, include_input=False)
    missing = [e for e in errors if e["type"] == "missing"]
    chosen = missing or errors
    fields = {_loc(e["loc"], prefix): e["msg"] for e in chosen}
    names = ", ".join(fields)
    if missing:
        return Refusal.of(
            ReasonCode.MISSING_FIELD,
            f"{what} is missing {names}",
            "validation",
            fields=names,
            **fields,
        )
    reasons = "; ".join(f"{k}: {v}" for k, v in fields.items())
    return Refusal.of(
        ReasonCode.INVALID_FIELD,
        f"{what} has invalid {reasons}",
        "validation",
        fields=names,
        **fields,
    )


def _not_an_object(what: str, obj: object) -> Refusal:
    """Input that is not a JSON object has no fields to name."""
    return Refusal.of(
        ReasonCode.INVALID_FIELD,
        f"{what} must be a JSON object; got {type(obj).__name__}",
        "validation",
        fields="(object)",
        type=type(obj).__name__,
    )


def parse_signal(obj: Any, *, prefix: str = "") -> Signal | Refusal:
    """Decode a JSON-decoded signal; a broken one becomes MISSING_FIELD/INVALID_FIELD."""
    if not isinstance(obj, dict):
        return _not_an_object("signal", obj)
    try:
        return Signal.model_validate(obj)
    except ValidationError as exc:
        return _decode_refusal("signal", exc, prefix)


def parse_approval(obj: Any) -> Approval | Refusal:
    """Decode an approval; errors inside its signal are named 'signal.<field>'."""
    if not isinstance(obj, dict):
        return _not_an_object("approval", obj)
    data = dict(obj)
    if isinstance(data.get("signal"), dict):
        signal = parse_signal(data["signal"], prefix="signal.")
        if isinstance(signal, Refusal):
            return signal
        data["signal"] = signal
    try:
        return Approval.model_validate(data)
    except ValidationError as exc:
        return _decode_refusal("approval", exc)


# --- the signal's own rules -------------------------------------------------------------


def _prices(signal: Signal) -> list[tuple[str, Decimal]]:
    """The prices a signal carries (take-profit is optional)."""
    prices = [("entry_price", signal.entry_price), ("stop_loss", signal.stop_loss)]
    if signal.take_profit is not None:
        prices.append(("take_profit", signal.take_profit))
    return prices


def check_side(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """Only BUY and SELL can be sized."""
    if signal.signal_type in (Side.BUY, Side.SELL):
        return None
    return Refusal.of(
        ReasonCode.INVALID_SIDE,
        f"side must be BUY or SELL; got {signal.signal_type!r}",
        "validation",
        side=signal.signal_type,
    )


def check_symbol(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """A malformed symbol would be rejected or, worse, mean a different instrument."""
    if SYMBOL_PATTERN.fullmatch(signal.symbol):
        return None
    return Refusal.of(
        ReasonCode.INVALID_SYMBOL,
        f"symbol {signal.symbol!r} is not an upper-case ticker or pair (A-Z, 0-9, '.', '-', "
        "'_'; max 15)",
        "validation",
        symbol=signal.symbol,
        pattern=SYMBOL_PATTERN.pattern,
    )


def check_allowlist(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """When an allow-list is configured, nothing else trades."""
    allowed = settings.symbol_allowlist
    if allowed is None or signal.symbol in allowed:
        return None
    return Refusal.of(
        ReasonCode.SYMBOL_NOT_ALLOWED,
        f"{signal.symbol} is not in SYMBOL_ALLOWLIST",
        "validation",
        symbol=signal.symbol,
        allowlist=",".join(sorted(allowed)),
    )


def _finite(signal: Signal) -> Refusal | None:
    """NaN or infinite prices cannot be sized."""
    for name, price in _prices(signal):
        if not price.is_finite():
            return Refusal.of(
                ReasonCode.NON_FINITE_PRICE,
                f"{name} must be a finite number; got {price}",
                "validation",
                field=name,
                value=price,
            )
    return None


def _positive(signal: Signal) -> Refusal | None:
    """Zero or negative prices are data errors."""
    for name, price in _prices(signal):
        if price <= 0:
            return Refusal.of(
                ReasonCode.NON_POSITIVE_PRICE,
                f"{name} must be positive; got {price}",
                "validation",
                field=name,
                value=price,
            )
    return None


def check_finite(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """NaN or infinite prices cannot be sized."""
    return _finite(signal)


def check_positive(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """Zero or negative prices are data errors."""
    return _positive(signal)


def check_magnitude(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """Guard against absurd magnitudes (a misplaced decimal point, a unit mix-up)."""
    for name, price in _prices(signal):
        if price > settings.max_price:
            return Refusal.of(
                ReasonCode.PRICE_TOO_LARGE,
                f"{name} {price} is above MAX_PRICE {settings.max_price}",
                "validation",
                field=name,
                value=price,
                max_price=settings.max_price,
            )
    return None


def loss_side(side: Side, entry: Decimal, price: Decimal) -> bool:
    """Whether price is strictly on the losing side of entry for this side."""
    return price < entry if side is Side.BUY else price > entry


def _stop_side(signal: Signal) -> Refusal | None:
    """The stop must sit on the loss side, or there is no risk to size against."""
    if loss_side(signal.side, signal.entry_price, signal.stop_loss):
        return None
    where = "below" if signal.side is Side.BUY else "above"
    return Refusal.of(
        ReasonCode.STOP_WRONG_SIDE,
        f"{signal.side} stop_loss {signal.stop_loss} must be {where} entry {signal.entry_price}",
        "validation",
        side=signal.side,
        entry_price=signal.entry_price,
        stop_loss=signal.stop_loss,
    )


def check_stop_side(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """A stop on the profit side (or at entry) gives no risk to size against."""
    return _stop_side(signal)


def price_refusal(signal: Signal) -> Refusal | None:
    """The price rules sizing relies on: finite, positive, stop on the loss side."""
    return _finite(signal) or _positive(signal) or _stop_side(signal)


def check_take_profit_side(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """A take-profit on the loss side would close the trade at a loss."""
    tp = signal.take_profit
    if tp is None or (
        tp != signal.entry_price and not loss_side(signal.side, signal.entry_price, tp)
    ):
        return None
    where = "above" if signal.side is Side.BUY else "below"
    return Refusal.of(
        ReasonCode.TAKE_PROFIT_WRONG_SIDE,
        f"{signal.side} take_profit {tp} must be {where} entry {signal.entry_price}",
        "validation",
        side=signal.side,
        entry_price=signal.entry_price,
        take_profit=tp,
    )


def reward_risk(signal: Signal) -> Decimal | None:
    """Reward:risk of the signal, e.g. 2 for entry 150, stop 145, take-profit 160."""
    if signal.take_profit is None:
        return None
    risk = abs(signal.entry_price - signal.stop_loss)
    reward = abs(signal.take_profit - signal.entry_price)
    if risk == 0:
        return None
    return exact_ratio(reward, risk)


def check_reward_risk(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """With MIN_REWARD_RISK set, the take-profit must pay enough for the risk."""
    minimum = settings.min_reward_risk
    if minimum is None:
        return None
    if signal.take_profit is None:
        return Refusal.of(
            ReasonCode.TAKE_PROFIT_REQUIRED,
            f"MIN_REWARD_RISK is {minimum}, so the signal needs a take_profit",
            "validation",
            min_reward_risk=minimum,
        )
    reward = abs(signal.take_profit - signal.entry_price)
    risk = abs(signal.entry_price - signal.stop_loss)
    if reward >= minimum * risk:
        return None
    return Refusal.of(
        ReasonCode.REWARD_RISK_TOO_LOW,
        f"reward:risk {reward_risk(signal)} is below MIN_REWARD_RISK {minimum}",
        "validation",
        rr_ratio=reward_risk(signal),
        min_reward_risk=minimum,
        reward=reward,
        risk=risk,
    )


def check_confidence(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """Confidence is a probability-like score in [0, 1]."""
    value = signal.confidence
    if value is None or (value.is_finite() and 0 <= value <= 1):
        return None
    return Refusal.of(
        ReasonCode.INVALID_CONFIDENCE,
        f"confidence must be in [0, 1]; got {value}",
        "validation",
        confidence=value,
    )


def check_min_confidence(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """With MIN_CONFIDENCE set, weak (or unscored) signals are refused."""
    minimum, value = settings.min_confidence, signal.confidence
    if minimum is None or (value is not None and value >= minimum):
        return None
    shown = "none" if value is None else str(value)
    return Refusal.of(
        ReasonCode.CONFIDENCE_TOO_LOW,
        f"confidence {shown} is below MIN_CONFIDENCE {minimum}",
        "validation",
        confidence=shown,
        min_confidence=minimum,
    )


SIGNAL_RULES: tuple[Rule, ...] = (
    check_side,
    check_symbol,
    check_allowlist,
    check_finite,
    check_positive,
    check_magnitude,
    check_stop_side,
    check_take_profit_side,
    check_reward_risk,
    check_confidence,
    check_min_confidence,
)


def check_signal_rules(signal: Signal, settings: RiskSettings) -> Refusal | None:
    """The first rule the signal breaks, in a fixed order, or None (exact arithmetic)."""
    with localcontext(EXACT):
        for rule in SIGNAL_RULES:
            refusal = rule(signal, settings)
            if refusal is not None:
                return refusal
    return None


def check_expiry(signal: Signal, settings: RiskSettings, at: datetime) -> Refusal | None:
    """A stale signal's prices no longer describe the market; refuse it past its TTL."""
    ttl = settings.ttl_for(signal.ttl_seconds)
    expires_at = signal.occurred_at + timedelta(seconds=ttl)
    if ensure_utc(at) <= expires_at:
        return None
    return Refusal.of(
        ReasonCode.SIGNAL_EXPIRED,
        f"signal {signal.id} expired at {expires_at.isoformat()} (TTL {ttl}s); "
        f"it is now {at.isoformat()}",
        "validation",
        occurred_at=signal.occurred_at.isoformat(),
        expires_at=expires_at.isoformat(),
        ttl_seconds=ttl,
        at=ensure_utc(at).isoformat(),
    )


def validate_signal(signal: Signal, settings: RiskSettings, now: datetime) -> Refusal | None:
    """The validation stage: the signal's own rules, then its expiry at `now`."""
    return check_signal_rules(signal, settings) or check_expiry(signal, settings, now)


def _human_rejection(approval: Approval) -> Refusal:
    """A human 'no' is kept on record like any other refusal."""
    because = f": {approval.reason}" if approval.reason else ""
    return Refusal.of(
        ReasonCode.SIGNAL_REJECTED_BY_HUMAN,
        f"signal {approval.signal.id} was rejected by {approval.approved_by}{because}",
        "validation",
        approved_by=approval.approved_by,
        reason=approval.reason or "",
        decided_at=approval.decided_at.isoformat(),
    )


def validate_approval(approval: Approval, settings: RiskSettings, now: datetime) -> Refusal | None:
    """Approved, still valid, and not expired at the later of decision time and now."""
    if approval.decision is not Decision.APPROVED:
        return _human_rejection(approval)
    at = max(approval.decided_at, ensure_utc(now))
    return check_signal_rules(approval.signal, settings) or check_expiry(
        approval.signal, settings, at
    )
