"""The contract: seed JSON accepted as is, deterministic envelopes, strict models, exported
JSON Schema in step with the models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from pydantic import ValidationError

from schemas.events import (
    APPROVAL_KEY,
    EVENT_TYPES,
    Approval,
    ControlCommand,
    DeadLetter,
    Decision,
    OrderIntent,
    Side,
    Signal,
)
from schemas.export import JSON_DIR, render, topic_schemas
from schemas.ids import client_order_id, correlation_from_client_order_id, signal_event_id
from schemas.topics import BY_NAME, TOPICS, topic_name

SEED_JSON = """{
  "id": "123e4567-e89b-12d3-a456-426614174000",
  "symbol": "AAPL",
  "signal_type": "BUY",
  "entry_price": 150.00,
  "stop_loss": 145.00,
  "take_profit": 160.00,
  "confidence": 0.85,
  "strategy_id": "ma_crossover_v1"
}"""


def seed() -> Signal:
    return Signal.model_validate_json(SEED_JSON)


def test_seed_signal_is_accepted_as_published() -> None:
    signal = seed()
    assert signal.symbol == "AAPL"
    assert signal.side is Side.BUY
    assert signal.entry_price == Decimal("150.00")
    assert signal.stop_loss == Decimal("145")
    assert signal.take_profit == Decimal("160")
    assert signal.confidence == Decimal("0.85")


def test_seed_envelope_is_derived_from_the_signal_id() -> None:
    a, b = seed(), seed()
    assert a.event_id == b.event_id == UUID("123e4567-e89b-12d3-a456-426614174000")
    assert a.correlation_id == a.event_id
    assert a.causation_id is None
    assert a.schema_version == 1
    assert a.occurred_at.tzinfo is UTC


def test_non_uuid_signal_ids_still_derive_a_stable_event_id() -> None:
    assert signal_event_id("sig-42") == signal_event_id("sig-42")
    assert signal_event_id("sig-42") != signal_event_id("sig-43")


def test_approval_envelope_descends_from_its_signal() -> None:
    signal = seed()
    approval = Approval.model_validate({
        "signal": json.loads(SEED_JSON), "decision": "approved", "approved_by": "alice",
        "decided_at": "2026-11-21T14:30:00Z",
    })
    again = Approval.model_validate_json(approval.model_dump_json())
    assert again == approval
    assert approval.correlation_id == signal.correlation_id
    assert approval.causation_id == signal.event_id
    assert approval.decision is Decision.APPROVED
    assert approval.occurred_at == datetime(2026, 11, 21, 14, 30, tzinfo=UTC)


def test_approvals_are_keyed_by_account_so_one_worker_sizes_them_in_order() -> None:
    def approval(signal_id: str) -> Approval:
        return Approval.model_validate({
            "signal": {**json.loads(SEED_JSON), "id": signal_id}, "decision": "approved",
            "approved_by": "alice", "decided_at": "2026-11-21T14:30:00Z"})

    first, second = approval("sig-1"), approval("sig-2")
    assert first.correlation_id != second.correlation_id
    assert first.kafka_key == second.kafka_key == APPROVAL_KEY


def test_models_are_frozen_and_strict() -> None:
    signal = seed()
    with pytest.raises(ValidationError, match="frozen"):
        signal.symbol = "MSFT"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Signal.model_validate({**json.loads(SEED_JSON), "colour": "blue"})


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError, match="timestamp must carry a timezone"):
        Approval.model_validate({
            "signal": json.loads(SEED_JSON), "decision": "approved", "approved_by": "a",
            "decided_at": "2026-11-21T14:30:00",
        })


def test_offsets_are_normalised_to_utc() -> None:
    approval = Approval.model_validate({
        "signal": json.loads(SEED_JSON), "decision": "rejected", "approved_by": "a",
        "decided_at": "2026-11-21T09:30:00-05:00",
    })
    assert approval.decided_at == datetime(2026, 11, 21, 14, 30, tzinfo=UTC)


def test_limit_intent_needs_a_limit_price() -> None:
    with pytest.raises(ValidationError, match="LMT order needs a limit_price"):
        OrderIntent.model_validate({
            "event_id": str(signal_event_id("x")), "correlation_id": str(signal_event_id("x")),
            "client_order_id": "jx-1", "account_id": "DU1", "venue": "sim", "symbol": "AAPL",
            "side": "BUY", "quantity": "1", "order_type": "LMT", "strategy_id": "s",
            "signal_id": "x", "approved_by": "a",
            "sizing": {"equity": "1", "buying_power": "1", "risk_per_trade": "0.01",
                       "stop_distance": "1", "risk_amount": "1", "risk_percent": "0.01",
                       "position_value": "1", "rr_ratio": None, "bound_by": "risk",
                       "uncapped_quantity": "1"},
        })


def test_client_order_id_round_trips_to_its_signal() -> None:
    corr = seed().correlation_id
    coid = client_order_id(corr)
    assert correlation_from_client_order_id(coid) == corr
    assert correlation_from_client_order_id(coid + "-tp") == corr
    assert correlation_from_client_order_id("manual-123") is None


def test_control_command_ids_are_derived() -> None:
    body = {"command": "halt", "issued_by": "ops", "occurred_at": "2026-11-21T10:00:00Z"}
    assert ControlCommand.model_validate(body).event_id == \
        ControlCommand.model_validate(body).event_id


def test_dead_letter_keeps_the_raw_bytes() -> None:
    raw = b"\xff\x00 not json"
    dead = DeadLetter.of(raw, "signals", 2, 17, "undecodable")
    assert dead.raw == raw
    assert DeadLetter.model_validate_json(dead.model_dump_json()).raw == raw
    assert dead.event_id == DeadLetter.of(raw, "signals", 2, 17, "x").event_id


def test_every_event_type_has_a_topic() -> None:
    assert {t.model for t in TOPICS} == set(EVENT_TYPES.values())
    assert set(BY_NAME) == {"signals", "approvals", "order-intents", "orders", "fills",
                            "rejections", "control", "dead-letter", "alerts",
                            "trading-state", "signal-ledger", "notifications", "rollout"}
    assert topic_name("fills", "t1-") == "t1-fills"
    with pytest.raises(KeyError, match="unknown topic"):
        topic_name("fils")


@pytest.mark.parametrize("topic", sorted(BY_NAME))
def test_exported_json_schema_matches_the_model(topic: str) -> None:
    path = JSON_DIR / f"{topic}.schema.json"
    assert path.exists(), f"{path} missing: run `make schemas`"
    assert path.read_text() == render(topic_schemas()[topic]), \
        f"{path} drifted from the model: run `make schemas` and commit the result"
