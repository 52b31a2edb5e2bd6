"""The signal ledger's rules: a signal must have been seen on `signals`, it is decided once
(the first valid decision wins for good, however long ago), and above a configured notional it
needs two distinct approvers (four-eyes). Pure: the ledger itself is a compacted Kafka topic,
read back by agents.decision_memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from agents.decisions.reasons import ReasonCode, Refusal
from schemas.events import Approval, LedgerStatus, SignalRecord

_PROGRESS = {LedgerStatus.SEEN: 0, LedgerStatus.AWAITING_SECOND_APPROVAL: 1,
             LedgerStatus.DECIDED: 2}


@dataclass
class SignalLedger:
    """The latest record of every signal, by correlation id."""

    records: dict[UUID, SignalRecord] = field(default_factory=dict)

    def get(self, correlation_id: UUID) -> SignalRecord | None:
        return self.records.get(correlation_id)

    def on_record(self, record: SignalRecord) -> None:
        """Keep the record that went furthest (a read-back copy may be older than one this
        process just wrote)."""
        known = self.records.get(record.correlation_id)
        if known is None or _rank(record) >= _rank(known):
            self.records[record.correlation_id] = record


def _rank(record: SignalRecord) -> tuple[int, int]:
    return _PROGRESS[record.status], len(record.decided_by)


class Verdict(StrEnum):
    DECIDE = "decide"  # the first valid decision, or the second approver of a waiting one
    REDELIVERED = "redelivered"  # the same Kafka record again (a restart): decide the same
    REFUSE = "refuse"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    refusal: Refusal | None = None


def source_of(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


def judge(record: SignalRecord | None, approval: Approval, source: str) -> Judgement:
    """May this approval decide its signal?"""
    if record is not None and record.decision_source == source:
        return Judgement(Verdict.REDELIVERED)
    if record is None or record.first_seen_at is None:
        return Judgement(Verdict.REFUSE, Refusal.of(
            ReasonCode.SIGNAL_NOT_SEEN,
            f"signal {approval.signal.id} was never published on `signals`; an approval must "
            "name a signal the pipeline has seen", "validation",
            signal_id=approval.signal.id, approved_by=approval.approved_by))
    if record.status is LedgerStatus.DECIDED:
        return Judgement(Verdict.REFUSE, _decided(record, approval))
    if record.status is LedgerStatus.AWAITING_SECOND_APPROVAL and \
            approval.approved_by in record.decided_by:
        return Judgement(Verdict.REFUSE, Refusal.of(
            ReasonCode.AWAITING_SECOND_APPROVAL,
            f"{approval.approved_by} already approved signal {approval.signal.id}; it "
            "waits for a second, different approver", "validation",
            approved_by=approval.approved_by, first_approver=record.decided_by[0]))
    return Judgement(Verdict.DECIDE)


def _decided(record: SignalRecord, approval: Approval) -> Refusal:
    by = ", ".join(record.decided_by)
    when = record.occurred_at.isoformat()
    again = "this approval again" if record.decision_event_id == approval.event_id else \
        f"a second decision by {approval.approved_by}"
    return Refusal.of(
        ReasonCode.ALREADY_DECIDED,
        f"signal {approval.signal.id} was already {record.decision} by {by} at {when}; "
        f"{again} places nothing", "validation",
        first_decision=str(record.decision), first_decided_by=by, first_decided_at=when,
        first_approval=str(record.decision_event_id), approved_by=approval.approved_by)


def needs_second_approver(record: SignalRecord | None, approval: Approval, notional: Decimal,
                          threshold: Decimal | None) -> bool:
    """Four-eyes: above the threshold an approval alone does not execute; a second distinct
    approver does."""
    if threshold is None or notional <= threshold:
        return False
    approvers = set(record.decided_by if record else ()) | {approval.approved_by}
    return len(approvers) < 2


def waiting_refusal(approval: Approval, notional: Decimal, threshold: Decimal) -> Refusal:
    return Refusal.of(
        ReasonCode.AWAITING_SECOND_APPROVAL,
        f"order value {notional} is above FOUR_EYES_NOTIONAL {threshold}: approved by "
        f"{approval.approved_by}, recorded, and waiting for a second, different approver",
        "validation", order_value=notional, four_eyes_notional=threshold,
        approved_by=approval.approved_by)


def signal_time_from(raw_approval: Mapping[str, Any]) -> bool:
    """Did the producer give the signal its own time? (The seeds' format has none: its age
    then counts from when it was first seen on `signals`.)"""
    signal = raw_approval.get("signal")
    return isinstance(signal, Mapping) and "occurred_at" in signal


def with_signal_time(approval: Approval, record: SignalRecord, timed: bool) -> Approval:
    """The approval with its signal dated by the ledger when the producer gave no time."""
    if timed or record.first_seen_at is None:
        return approval
    signal = approval.signal.model_copy(update={"occurred_at": record.first_seen_at})
    return approval.model_copy(update={"signal": signal})
