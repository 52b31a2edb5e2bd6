"""Reason codes, one per rule, and the Refusal value every rule returns instead of raising."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Literal

Stage = Literal["validation", "sizing", "risk", "live_guard", "submission", "control",
                "compliance"]


class ReasonCode(StrEnum):
    """Why a signal did not become an order; stable strings for dashboards and alerts."""

    # validation: decoding
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_FIELD = "INVALID_FIELD"
    # validation: the signal's own rules
    INVALID_SYMBOL = "INVALID_SYMBOL"
    SYMBOL_NOT_ALLOWED = "SYMBOL_NOT_ALLOWED"
    INVALID_SIDE = "INVALID_SIDE"
    NON_FINITE_PRICE = "NON_FINITE_PRICE"
    NON_POSITIVE_PRICE = "NON_POSITIVE_PRICE"
    PRICE_TOO_LARGE = "PRICE_TOO_LARGE"
    STOP_WRONG_SIDE = "STOP_WRONG_SIDE"
    TAKE_PROFIT_WRONG_SIDE = "TAKE_PROFIT_WRONG_SIDE"
    TAKE_PROFIT_REQUIRED = "TAKE_PROFIT_REQUIRED"
    REWARD_RISK_TOO_LOW = "REWARD_RISK_TOO_LOW"
    INVALID_CONFIDENCE = "INVALID_CONFIDENCE"
    CONFIDENCE_TOO_LOW = "CONFIDENCE_TOO_LOW"
    SIGNAL_EXPIRED = "SIGNAL_EXPIRED"
    SIGNAL_REJECTED_BY_HUMAN = "SIGNAL_REJECTED_BY_HUMAN"
    # sizing
    NO_EQUITY = "NO_EQUITY"
    STOP_WITHIN_TICK = "STOP_WITHIN_TICK"
    POSITION_TOO_SMALL = "POSITION_TOO_SMALL"
    # risk limits
    OUTSIDE_TRADING_WINDOW = "OUTSIDE_TRADING_WINDOW"
    ORDER_RATE_LIMIT = "ORDER_RATE_LIMIT"
    MAX_DAILY_LOSS = "MAX_DAILY_LOSS"
    SHORTING_DISABLED = "SHORTING_DISABLED"
    SAME_SYMBOL_POSITION = "SAME_SYMBOL_POSITION"
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    MAX_SYMBOL_EXPOSURE = "MAX_SYMBOL_EXPOSURE"
    MAX_GROUP_EXPOSURE = "MAX_GROUP_EXPOSURE"
    # live guard
    LIVE_TRADING_NOT_ENABLED = "LIVE_TRADING_NOT_ENABLED"
    # the rollout gate: a live account trades only on an admin's signed go-live decision
    LIVE_NOT_GRANTED = "LIVE_NOT_GRANTED"
    # set by the agents' stages around the decision (kept here so all codes live in one place)
    ALREADY_DECIDED = "ALREADY_DECIDED"
    VENUE_REJECTED = "VENUE_REJECTED"
    VENUE_UNAVAILABLE = "VENUE_UNAVAILABLE"
    # signed approvals (agents.decisions.signatures.verify)
    UNSIGNED = "UNSIGNED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    REVOKED_KEY = "REVOKED_KEY"
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    SIGNER_MISMATCH = "SIGNER_MISMATCH"
    # the signal ledger (agents.decisions.ledger): seen, decided once, four-eyes
    SIGNAL_NOT_SEEN = "SIGNAL_NOT_SEEN"
    AWAITING_SECOND_APPROVAL = "AWAITING_SECOND_APPROVAL"
    # submission's own check of the approval an intent carries (defence in depth)
    INTENT_NOT_APPROVED = "INTENT_NOT_APPROVED"
    # the trading gate (agents.control.TradingGate, agents.decisions.trading_state)
    HALTED = "HALTED"
    REDUCE_ONLY = "REDUCE_ONLY"
    TRADING_STATE_UNKNOWN = "TRADING_STATE_UNKNOWN"
    # pre-trade compliance (agents.decisions.compliance, called by the sizing stage)
    SYMBOL_RESTRICTED = "SYMBOL_RESTRICTED"
    MARKET_CLOSED = "MARKET_CLOSED"
    SHORT_NOT_SHORTABLE = "SHORT_NOT_SHORTABLE"
    SHORT_HARD_TO_BORROW = "SHORT_HARD_TO_BORROW"
    SHORT_SALE_RESTRICTED = "SHORT_SALE_RESTRICTED"
    SELF_CROSS = "SELF_CROSS"
    PATTERN_DAY_TRADER = "PATTERN_DAY_TRADER"


# Signature codes come from signatures.verify, which the stages call beside decide().
SIGNATURE_CODES = frozenset(
    {ReasonCode.UNSIGNED, ReasonCode.BAD_SIGNATURE, ReasonCode.UNKNOWN_KEY,
     ReasonCode.REVOKED_KEY, ReasonCode.APPROVAL_EXPIRED, ReasonCode.SIGNER_MISMATCH}
)
# The trading gate's codes: the kill switch, beside decide() in sizing and submission.
GATE_CODES = frozenset(
    {ReasonCode.HALTED, ReasonCode.REDUCE_ONLY, ReasonCode.TRADING_STATE_UNKNOWN}
)
# Compliance codes: agents.decisions.compliance.check_compliance, beside decide() in sizing.
COMPLIANCE_CODES = frozenset(
    {ReasonCode.SYMBOL_RESTRICTED, ReasonCode.MARKET_CLOSED, ReasonCode.SHORT_NOT_SHORTABLE,
     ReasonCode.SHORT_HARD_TO_BORROW, ReasonCode.SHORT_SALE_RESTRICTED, ReasonCode.SELF_CROSS,
     ReasonCode.PATTERN_DAY_TRADER}
)
# Codes produced outside decide() (sizing agent, submission agent, signature check, gate).
LEDGER_CODES = frozenset(
    {ReasonCode.SIGNAL_NOT_SEEN, ReasonCode.AWAITING_SECOND_APPROVAL,
     ReasonCode.INTENT_NOT_APPROVED}
)
# The rollout gate's code: agents.decisions.rollout.live_settings, before decide() in sizing.
ROLLOUT_CODES = frozenset({ReasonCode.LIVE_NOT_GRANTED})
EXTERNAL_CODES = frozenset(
    {ReasonCode.ALREADY_DECIDED, ReasonCode.VENUE_REJECTED, ReasonCode.VENUE_UNAVAILABLE}
) | LEDGER_CODES | SIGNATURE_CODES | GATE_CODES | COMPLIANCE_CODES | ROLLOUT_CODES


def _text(value: object) -> str:
    """Details are strings; Decimals keep their exact digits."""
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    return str(value)


@dataclass(frozen=True)
class Refusal:
    """A rule's 'no': a code, a human sentence, the numbers behind it and the stage."""

    code: ReasonCode
    message: str
    details: dict[str, str] = field(default_factory=dict)
    stage: Stage = "validation"

    @classmethod
    def of(cls, code: ReasonCode, message: str, stage: Stage, **details: object) -> Refusal:
        """Build a refusal, turning every detail into its exact string form."""
        return cls(code, message, {k: _text(v) for k, v in details.items() if v is not None}, stage)
