from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.context import StageContext
from agents.decisions.config import RiskSettings
from agents.decisions.ledger import SignalLedger
from agents.decisions.signatures import KeyEntry, KeyRing, sign
from agents.retry import RetryPolicy
from schemas.events import (
    Approval,
    LedgerStatus,
    OrderIntent,
    OrderType,
    SignalRecord,
    SizingBound,
    SizingFigures,
)
from tests.fakes import T0, FakeVenue

SEED = {
    "id": "123e4567-e89b-12d3-a456-426614174000", "symbol": "AAPL", "signal_type": "BUY",
    "entry_price": 150.00, "stop_loss": 145.00, "take_profit": 160.00, "confidence": 0.85,
    "strategy_id": "ma_crossover_v1",
}


def approval(decision: str = "approved", **signal: object) -> Approval:
    return Approval.model_validate({
        "signal": {**SEED, **signal}, "decision": decision, "approved_by": "alice",
        "decided_at": datetime.now(UTC),
    })


def intent_for(a: Approval) -> OrderIntent:
    return OrderIntent(
        **OrderIntent.ids_for(a), account_id="DU1", venue="fake", symbol="AAPL",
        side=a.signal.side, quantity=Decimal(133), order_type=OrderType.LMT,
        limit_price=Decimal("150.00"), take_profit=Decimal("160.00"),
        stop_loss=Decimal("145.00"), strategy_id="ma_crossover_v1", signal_id=a.signal.id,
        approved_by="alice", approvals=(json.dumps(signed(a)),),
        sizing=SizingFigures(
            equity=Decimal(100000), buying_power=Decimal(50000), risk_per_trade=Decimal("0.01"),
            stop_distance=Decimal(5), risk_amount=Decimal(665), risk_percent=Decimal("0.00665"),
            position_value=Decimal(19950), rr_ratio=Decimal(2),
            bound_by=SizingBound.POSITION_PCT, uncapped_quantity=Decimal(200)),
    )


APPROVERS = ("alice", "bob", "carol")
KEYS = {name: Ed25519PrivateKey.generate() for name in APPROVERS}
KEYRING = KeyRing.of(*(KeyEntry.ed25519(f"{name}-test", key.public_key(), [name])
                       for name, key in KEYS.items()))


def signed(a: Approval) -> dict[str, object]:
    """The approval as its approver publishes it: signed with the approver's test key."""
    return sign(a.model_dump(mode="json"), KEYS[a.approved_by], f"{a.approved_by}-test")


def raw(obj: object) -> bytes:
    """Bytes on the topic; an Approval is signed by its approver first."""
    if isinstance(obj, Approval):
        return json.dumps(signed(obj)).encode()
    if hasattr(obj, "model_dump_json"):
        return obj.model_dump_json().encode()
    return json.dumps(obj).encode()


def outcome(outputs: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The stage's outputs without its signal-ledger records."""
    return [(t, e) for t, e in outputs if t != "signal-ledger"]


class AutoSeenLedger(SignalLedger):
    """A ledger in which every signal was seen on `signals` at T0 (the stage tests are not
    about the ledger; tests/unit/agents/test_signal_ledger.py is)."""

    def get(self, correlation_id: UUID) -> SignalRecord | None:
        if correlation_id not in self.records:
            self.records[correlation_id] = SignalRecord(
                event_id=correlation_id, correlation_id=correlation_id, occurred_at=T0,
                signal_id=str(correlation_id), status=LedgerStatus.SEEN, first_seen_at=T0)
        return self.records[correlation_id]


@pytest.fixture
def venue() -> FakeVenue:
    return FakeVenue()


@pytest.fixture
def ctx(venue: FakeVenue) -> StageContext:
    return StageContext(risk=RiskSettings(), venue=venue, clock=lambda: T0,
                        retry=RetryPolicy(attempts=3, sleep=no_sleep), keyring=KEYRING,
                        ledger=AutoSeenLedger())


async def no_sleep(seconds: float) -> None:
    """The retry policy's sleep in unit tests: none."""
