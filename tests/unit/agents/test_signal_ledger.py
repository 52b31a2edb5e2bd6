"""Signed approvals through the sizing and submission stages: a signal must have been seen,
it is decided once, four-eyes above a notional, and submission verifies again."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from agents.context import Source, StageContext
from agents.decisions.config import RiskSettings
from agents.decisions.ledger import SignalLedger
from agents.decisions.reservations import ReservationBook
from agents.decisions.signatures import sign
from agents.sizing import handle_approval
from agents.submission import handle_intent
from agents.validation import handle_signal
from schemas.events import Approval, LedgerStatus, OrderIntent, Rejection, SignalRecord
from tests.fakes import T0, FakeVenue
from tests.unit.agents.conftest import KEYS, SEED, approval, intent_for, outcome, raw, signed


@pytest.fixture
def lctx(ctx: StageContext) -> StageContext:
    """A context with a real (empty) ledger and no wait for late signals."""
    return replace(ctx, ledger=SignalLedger(), signal_grace=timedelta(0))


def by(a: Approval, name: str, decision: str = "approved") -> Approval:
    return Approval.model_validate({**a.model_dump(mode="json", exclude={"event_id"}),
                                    "approved_by": name, "decision": decision})


async def see(ctx: StageContext, a: Approval, at: Source | None = None) -> None:
    """The signal of `a` arrives on `signals` (the validation stage records it)."""
    signal = {**SEED, "id": a.signal.id}
    await handle_signal(json.dumps(signal).encode(), at or Source("signals", 0, 1, T0), ctx)


async def decide(ctx: StageContext, a: Approval | bytes, offset: int) -> list[tuple[str, object]]:
    body = a if isinstance(a, bytes) else raw(a)
    return await handle_approval(body, Source("approvals", 0, offset), ctx)


def codes(outputs: list[tuple[str, object]]) -> list[str]:
    return [e.reason_code if isinstance(e, Rejection) else type(e).__name__
            for _, e in outcome(outputs)]


async def test_an_unsigned_approval_is_refused(lctx: StageContext) -> None:
    a = approval(id=str(uuid.uuid4()))
    await see(lctx, a)
    out = await decide(lctx, a.model_dump_json().encode(), 1)
    assert codes(out) == ["UNSIGNED"]


async def test_a_tampered_approval_is_refused(lctx: StageContext) -> None:
    a = approval(id=str(uuid.uuid4()))
    await see(lctx, a)
    body = signed(a)
    body["signal"] = {**body["signal"], "entry_price": 140}  # type: ignore[dict-item]
    assert codes(await decide(lctx, json.dumps(body).encode(), 1)) == ["BAD_SIGNATURE"]


async def test_an_approval_of_a_signal_never_seen_is_refused(lctx: StageContext) -> None:
    out = await decide(lctx, approval(id=str(uuid.uuid4())), 1)
    assert codes(out) == ["SIGNAL_NOT_SEEN"]


async def test_an_approval_decided_already_is_not_refused_for_a_ledger_behind(
        lctx: StageContext) -> None:
    # A worker decided it and was killed: its decision reached Kafka, the signal's ledger
    # entry it wrote did not. The process that takes the approval over has the decision
    # (read back from Kafka) but not the entry yet: it publishes nothing, not SIGNAL_NOT_SEEN.
    a = approval(id=str(uuid.uuid4()))
    elsewhere = replace(lctx, ledger=SignalLedger(), book=ReservationBook())
    await see(elsewhere, a)
    first = await decide(elsewhere, a, 1)
    assert codes(first) == ["OrderIntent"]
    for _, event in outcome(first):
        assert isinstance(event, OrderIntent)
        lctx.book.on_intent(event)
    assert await decide(lctx, a, 1) == []
    # an approval with no outcome anywhere is still refused
    assert codes(await decide(lctx, approval(id=str(uuid.uuid4())), 2)) == ["SIGNAL_NOT_SEEN"]


async def test_a_record_refused_before_its_signal_came_is_not_decided_when_taken_again(
        lctx: StageContext) -> None:
    # One process refuses the approval (its signal has not come: it overtook it, or the
    # signal's partition belongs to a worker just killed); a rebalance gives the same record
    # to another process, by then with the signal: it publishes nothing, not an order too.
    a = approval(id=str(uuid.uuid4()))
    first = await decide(lctx, a, 7)
    assert codes(first) == ["SIGNAL_NOT_SEEN"]
    await see(lctx, a)
    assert await decide(lctx, a, 7) == []
    # the same approval published again, a record of its own, is decided now
    assert codes(await decide(lctx, a, 8)) == ["OrderIntent"]


async def test_validation_records_the_first_sighting_once(lctx: StageContext) -> None:
    a = approval(id=str(uuid.uuid4()))
    body = json.dumps({**SEED, "id": a.signal.id}).encode()
    first = await handle_signal(body, Source("signals", 0, 1, T0), lctx)
    again = await handle_signal(body, Source("signals", 0, 2, T0 + timedelta(hours=1)), lctx)
    (topic, record), = first
    assert topic == "signal-ledger"
    assert isinstance(record, SignalRecord)
    assert record.first_seen_at == T0
    assert again == []


async def test_a_timeless_signal_ages_from_its_first_sighting(lctx: StageContext) -> None:
    a = approval(id=str(uuid.uuid4()))
    await see(lctx, a, Source("signals", 0, 1, T0 - timedelta(hours=2)))  # TTL is 1 h
    # as the seeds' producers send it: the signal has no time of its own
    body = {"signal": {**SEED, "id": a.signal.id}, "decision": "approved",
            "approved_by": "alice", "decided_at": T0.isoformat()}
    published = sign(body, KEYS["alice"], "alice-test")
    assert codes(await decide(lctx, json.dumps(published).encode(), 1)) == ["SIGNAL_EXPIRED"]


async def test_a_signal_is_decided_once(lctx: StageContext) -> None:
    a = approval(id=str(uuid.uuid4()))
    await see(lctx, a)
    first = await decide(lctx, a, 1)
    assert codes(first) == ["OrderIntent"]
    (_, record), = [(t, e) for t, e in first if t == "signal-ledger"]
    assert isinstance(record, SignalRecord)
    assert record.status is LedgerStatus.DECIDED
    assert codes(await decide(lctx, by(a, "bob"), 2)) == ["ALREADY_DECIDED"]
    assert codes(await decide(lctx, by(a, "bob", "rejected"), 3)) == ["ALREADY_DECIDED"]
    assert codes(await decide(lctx, a, 4)) == ["ALREADY_DECIDED"]  # the same, replayed


async def test_a_rejection_first_is_final_too(lctx: StageContext) -> None:
    a = approval("rejected", id=str(uuid.uuid4()))
    await see(lctx, a)
    assert codes(await decide(lctx, a, 1)) == ["SIGNAL_REJECTED_BY_HUMAN"]
    assert codes(await decide(lctx, by(a, "bob", "approved"), 2)) == ["ALREADY_DECIDED"]


async def test_four_eyes_above_the_notional(lctx: StageContext) -> None:
    ctx = replace(lctx, risk=RiskSettings(four_eyes_notional=Decimal(10000)))
    a = approval(id=str(uuid.uuid4()))  # 133 x 150 = 19,950
    await see(ctx, a)
    assert codes(await decide(ctx, a, 1)) == ["AWAITING_SECOND_APPROVAL"]
    assert codes(await decide(ctx, by(a, "alice"), 2)) == ["AWAITING_SECOND_APPROVAL"]
    out = await decide(ctx, by(a, "bob"), 3)
    (intent,) = [e for _, e in outcome(out)]
    assert isinstance(intent, OrderIntent)
    assert len(intent.approvals) == 2
    assert codes(await decide(ctx, by(a, "carol"), 4)) == ["ALREADY_DECIDED"]


async def test_four_eyes_below_the_notional_needs_one(lctx: StageContext) -> None:
    ctx = replace(lctx, risk=RiskSettings(four_eyes_notional=Decimal(50000)))
    a = approval(id=str(uuid.uuid4()))
    await see(ctx, a)
    assert codes(await decide(ctx, a, 1)) == ["OrderIntent"]


async def test_submission_refuses_an_intent_without_approval(
        ctx: StageContext, venue: FakeVenue) -> None:
    intent = intent_for(approval()).model_copy(update={"approvals": ()})
    (_, refusal), = await handle_intent(raw(intent), Source("order-intents", 0, 1), ctx)
    assert isinstance(refusal, Rejection)
    assert refusal.reason_code == "INTENT_NOT_APPROVED"
    assert not venue.orders


async def test_submission_refuses_an_intent_that_differs_from_its_approval(
        ctx: StageContext, venue: FakeVenue) -> None:
    intent = intent_for(approval()).model_copy(update={"symbol": "TSLA"})
    (_, refusal), = await handle_intent(raw(intent), Source("order-intents", 0, 1), ctx)
    assert refusal.reason_code == "INTENT_NOT_APPROVED"  # type: ignore[attr-defined]
    assert "approval is for BUY AAPL" in refusal.message  # type: ignore[attr-defined]
    assert not venue.orders


async def test_submission_refuses_a_forged_approval(ctx: StageContext, venue: FakeVenue) -> None:
    body = signed(approval())
    body["approved_by"] = "mallory"
    intent = intent_for(approval()).model_copy(update={"approvals": (json.dumps(body),)})
    (_, refusal), = await handle_intent(raw(intent), Source("order-intents", 0, 1), ctx)
    assert refusal.reason_code == "BAD_SIGNATURE"  # type: ignore[attr-defined]
    assert not venue.orders


async def test_submission_enforces_four_eyes(ctx: StageContext, venue: FakeVenue) -> None:
    strict = replace(ctx, risk=RiskSettings(four_eyes_notional=Decimal(10000)))
    (_, refusal), = await handle_intent(raw(intent_for(approval())),
                                        Source("order-intents", 0, 1), strict)
    assert refusal.reason_code == "INTENT_NOT_APPROVED"  # type: ignore[attr-defined]
    assert not venue.orders
