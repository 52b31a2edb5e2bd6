"""The one decision: an approval plus the account now -> an OrderIntent or a Rejection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from uuid import UUID

from agents.decisions.config import RiskSettings
from agents.decisions.instruments import Instrument, InstrumentBook
from agents.decisions.limits import check_limits
from agents.decisions.live import live_guard
from agents.decisions.reasons import Refusal
from agents.decisions.sizing import Sizing, size_position
from agents.decisions.validation import ensure_utc, validate_approval
from brokers.port import AccountSnapshot, OrderReport, Position
from schemas.events import Approval, OrderIntent, Rejection, Signal
from schemas.ids import derive_id


def rejection_from(
    refusal: Refusal,
    *,
    correlation_id: UUID,
    causation_id: UUID | None,
    now: datetime,
    subject_event_id: UUID | None = None,
    signal_id: str | None = None,
    symbol: str | None = None,
    strategy_id: str | None = None,
    event_id: UUID | None = None,
) -> Rejection:
    """The one place a Refusal becomes a Rejection event; its id is derived, so replays match.

    The id derives from the causing event (or, for input that never became an event, from the
    correlation id) and the reason code, unless the caller passes one.
    """
    at = ensure_utc(now)
    origin = causation_id if causation_id is not None else correlation_id
    return Rejection(
        event_id=event_id or derive_id("rejection", origin, refusal.code),
        correlation_id=correlation_id,
        causation_id=causation_id,
        occurred_at=at,
        recorded_at=at,
        stage=refusal.stage,
        reason_code=str(refusal.code),
        message=refusal.message,
        details=dict(refusal.details),
        subject_event_id=subject_event_id,
        signal_id=signal_id,
        symbol=symbol,
        strategy_id=strategy_id,
    )


def reject_signal(signal: Signal, refusal: Refusal, now: datetime) -> Rejection:
    """The validation stage's rejection of a signal, caused by that signal."""
    return rejection_from(
        refusal,
        correlation_id=signal.correlation_id,
        causation_id=signal.event_id,
        now=now,
        subject_event_id=signal.event_id,
        signal_id=signal.id,
        symbol=signal.symbol,
        strategy_id=signal.strategy_id,
    )


def reject_approval(approval: Approval, refusal: Refusal, now: datetime,
                    event_id: UUID | None = None) -> Rejection:
    """A rejection caused by an approval (human 'no', expiry, sizing, limits, live guard)."""
    signal = approval.signal
    return rejection_from(
        refusal,
        correlation_id=approval.correlation_id,
        causation_id=approval.event_id,
        now=now,
        subject_event_id=approval.event_id,
        signal_id=signal.id,
        symbol=signal.symbol,
        strategy_id=signal.strategy_id,
        event_id=event_id,
    )


def evaluate(
    approval: Approval,
    account: AccountSnapshot,
    positions: Iterable[Position],
    open_orders: Iterable[OrderReport],
    recent_order_count: int,
    now: datetime,
    settings: RiskSettings,
    instruments: InstrumentBook,
) -> Sizing | Refusal:
    """Validation, live guard, sizing, limits, in that order; the first refusal wins."""
    refusal = validate_approval(approval, settings, now) or live_guard(account, settings)
    if refusal is not None:
        return refusal
    signal = approval.signal
    sizing = size_position(signal, account, instruments.get(signal.symbol), settings)
    if isinstance(sizing, Refusal):
        return sizing
    limit = check_limits(
        signal,
        sizing,
        account,
        positions,
        open_orders,
        recent_order_count,
        now,
        settings,
        instruments,
    )
    return limit or sizing


def intent_from(
    approval: Approval,
    sizing: Sizing,
    account: AccountSnapshot,
    now: datetime,
    settings: RiskSettings,
    venue: str,
) -> OrderIntent:
    """The order to place, its ids derived from the approval: one signal, one order."""
    signal, at = approval.signal, ensure_utc(now)
    return OrderIntent(
        **OrderIntent.ids_for(approval),
        occurred_at=at,
        recorded_at=at,
        account_id=account.account_id,
        venue=venue,
        symbol=signal.symbol,
        side=signal.side,
        quantity=sizing.quantity,
        order_type=sizing.order_type,
        limit_price=sizing.limit_price,
        take_profit=sizing.take_profit,
        stop_loss=sizing.stop_loss,
        time_in_force=settings.time_in_force,
        strategy_id=signal.strategy_id,
        signal_id=signal.id,
        approved_by=approval.approved_by,
        sizing=sizing.figures,
    )


def decide(
    approval: Approval,
    account: AccountSnapshot,
    positions: Iterable[Position],
    open_orders: Iterable[OrderReport],
    recent_order_count: int,
    now: datetime,
    settings: RiskSettings,
    venue: str,
    instruments: InstrumentBook | Mapping[str, Instrument] | None = None,
) -> OrderIntent | Rejection:
    """The entry point: an approved, valid, sized, within-limits order, or why not."""
    book = InstrumentBook.coerce(instruments, settings)
    outcome = evaluate(
        approval, account, positions, open_orders, recent_order_count, now, settings, book
    )
    if isinstance(outcome, Refusal):
        return reject_approval(approval, outcome, now)
    return intent_from(approval, outcome, account, now, settings, venue)
