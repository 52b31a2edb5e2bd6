"""Defence in depth at submission: an intent is placed only if the signed approvals it carries
verify again and say what the intent says (same signal, side and symbol, an approval, enough
distinct approvers). An intent written to `order-intents` by anything but the sizing stage, or
altered on the way, is refused here. Pure."""

from __future__ import annotations

from datetime import datetime

from agents.decisions.config import RiskSettings
from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.signatures import KeyRing, Verified, verify
from schemas.canonical import CanonicalError, loads
from schemas.events import Approval, Decision, OrderIntent


def check_intent(intent: OrderIntent, keyring: KeyRing, settings: RiskSettings) -> Refusal | None:
    """None when the intent descends from valid approvals; else why not."""
    if not intent.approvals:
        return _refuse("carries no signed approval", intent)
    approvers: set[str] = set()
    for raw in intent.approvals:
        found = _approval(raw, keyring, intent.occurred_at)
        if isinstance(found, Refusal):
            return found
        mismatch = _mismatch(found, intent)
        if mismatch:
            return _refuse(mismatch, intent)
        approvers.add(found.approved_by)
    threshold = settings.four_eyes_notional
    if threshold is not None and intent.sizing.position_value > threshold and len(approvers) < 2:
        return _refuse(f"is worth {intent.sizing.position_value}, above FOUR_EYES_NOTIONAL "
                       f"{threshold}, with only one approver", intent)
    return None


def _approval(raw: str, keyring: KeyRing, at: datetime) -> Approval | Refusal:
    verified = verify(raw, keyring, at, stage="submission")
    if not isinstance(verified, Verified):
        return verified
    try:
        return Approval.model_validate(loads(raw))
    except (CanonicalError, ValueError) as exc:
        return Refusal.of(ReasonCode.INTENT_NOT_APPROVED,
                          f"an approval the intent carries does not decode: {exc}",
                          "submission")


def _mismatch(approval: Approval, intent: OrderIntent) -> str | None:
    signal = approval.signal
    if approval.decision is not Decision.APPROVED:
        return f"carries a '{approval.decision}' decision, not an approval"
    if approval.correlation_id != intent.correlation_id or signal.id != intent.signal_id:
        return f"carries an approval of another signal ({signal.id})"
    if signal.symbol != intent.symbol or signal.side != intent.side:
        return (f"is {intent.side} {intent.symbol} but its approval is for "
                f"{signal.side} {signal.symbol}")
    return None


def _refuse(what: str, intent: OrderIntent) -> Refusal:
    return Refusal.of(ReasonCode.INTENT_NOT_APPROVED,
                      f"intent {intent.client_order_id} {what}; nothing was placed",
                      "submission", client_order_id=intent.client_order_id)
