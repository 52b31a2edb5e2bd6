"""The live guard of the rollout gate, pure: a live account trades only with an admin's signed
go-live decision for it, at that decision's ramp; paper accounts are unaffected."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.decisions import decide
from agents.decisions.config import RiskSettings
from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.rollout import (
    LiveGrant,
    RolloutBook,
    RolloutThresholds,
    go_live,
    live_settings,
    ramp,
    rollout_report,
    unsigned_body,
)
from agents.decisions.signatures import KeyEntry, KeyRing, sign
from brokers.port import AccountKind
from schemas.events import OrderIntent, Rejection, RolloutDecision, SizingBound
from tests.unit.decisions.decisions_factory import T0, Factory
from tests.unit.decisions.test_rollout import NOW, figures

LIVE = "U7654321"
ADMIN = Ed25519PrivateKey.generate()
STRANGER = Ed25519PrivateKey.generate()
RING = KeyRing.of(KeyEntry.ed25519("carol-1", ADMIN.public_key(), ["carol"]))
REVOKED = KeyRing.of(KeyEntry.ed25519("carol-1", ADMIN.public_key(), ["carol"], revoked=True))
T = RolloutThresholds(min_days_traded=20, min_orders=50, admins=frozenset({"carol"}))


def go_live_decision() -> RolloutDecision:
    decision = go_live(rollout_report(figures(), T), LIVE, "carol", NOW, T)
    assert isinstance(decision, RolloutDecision)
    return decision


def signed(decision: RolloutDecision, key: Ed25519PrivateKey = ADMIN) -> bytes:
    return json.dumps(sign(unsigned_body(decision), key, "carol-1")).encode()


def tampered(decision: RolloutDecision) -> bytes:
    body = json.loads(signed(decision))
    body["ramp_factor"] = "1"  # raised after signing
    return json.dumps(body).encode()


class Unreadable:
    """The Kafka reader while `rollout` cannot be read."""

    def grant(self, account_id: str) -> LiveGrant | None:
        raise AssertionError("no grant is looked up while the decisions are unknown")

    def unavailable(self) -> str | None:
        return "rollout has not been read to its end: KafkaConnectionError"


def refused(outcome: RiskSettings | Refusal) -> Refusal:
    assert isinstance(outcome, Refusal), outcome
    assert outcome.code is ReasonCode.LIVE_NOT_GRANTED
    assert outcome.stage == "live_guard"
    print(outcome.message)
    return outcome


def test_paper_is_unaffected_with_or_without_grants(f: Factory) -> None:
    account = f.account(account_id="DU1234567", kind=AccountKind.PAPER)
    settings = f.settings()
    assert live_settings(account, settings, None) is settings
    assert live_settings(account, settings, Unreadable()) is settings
    assert live_settings(account, settings, RolloutBook(RING, T)) is settings


@pytest.mark.parametrize(
    ("records", "ring"),
    [
        pytest.param([], RING, id="no-decision"),
        pytest.param([signed(go_live_decision(), STRANGER)], RING, id="bad-signature"),
        pytest.param([tampered(go_live_decision())], RING, id="tampered"),
        pytest.param([json.dumps(unsigned_body(go_live_decision())).encode()], RING,
                     id="unsigned"),
        pytest.param([signed(go_live_decision())], REVOKED, id="revoked-key"),
    ],
)
def test_live_without_a_valid_grant_is_refused(f: Factory, records: list[bytes],
                                               ring: KeyRing) -> None:
    book = RolloutBook(ring, T)
    for raw in records:
        book.on_record(raw, NOW)
    account = f.account(account_id=LIVE, kind=AccountKind.LIVE)
    # LIVE_TRADING_ACCOUNT naming the account is not enough without the signed decision
    refusal = refused(live_settings(account, f.settings(live_trading_account=LIVE), book))
    assert f"live account {LIVE} has no signed go-live decision" in refusal.message
    assert "jax-exec rollout report" in refusal.message
    assert refusal.details["account_id"] == LIVE


def test_live_refused_while_the_decisions_are_unknown(f: Factory) -> None:
    account = f.account(account_id=LIVE, kind=AccountKind.LIVE)
    unknown = refused(live_settings(account, f.settings(), Unreadable()))
    assert "KafkaConnectionError" in unknown.message
    assert "paper accounts are unaffected" in unknown.message
    none = refused(live_settings(account, f.settings(), None))
    assert "reads no go-live decisions" in none.message


def test_a_grant_for_another_account_does_not_count(f: Factory) -> None:
    book = RolloutBook(RING, T)
    assert book.on_record(signed(go_live_decision()), NOW) is None
    other = f.account(account_id="U1111111", kind=AccountKind.LIVE)
    refused(live_settings(other, f.settings(), book))


def test_grant_then_ramp_sizes_the_order(f: Factory) -> None:
    book = RolloutBook(RING, T)
    decision = go_live_decision()
    assert book.on_record(signed(decision), NOW) is None
    account = f.account(account_id=LIVE, kind=AccountKind.LIVE)
    settings = f.settings()  # LIVE_TRADING_ACCOUNT unset: the grant alone enables the account
    granted = live_settings(account, settings, book)
    assert isinstance(granted, RiskSettings)
    assert (granted.live_trading_account, granted.live_ramp_factor,
            granted.live_max_order_notional) == (LIVE, Decimal("0.1"), Decimal(1000))
    intent = decide(f.approval(), account, [], [], 0, T0, granted, "ib")
    assert isinstance(intent, OrderIntent)
    assert intent.quantity == 6  # 133 on paper; x0.1 = 13; the 1,000 cap at 150.00 allows 6
    assert intent.sizing.bound_by is SizingBound.LIVE_NOTIONAL_CAP

    grant = book.grant(LIVE)
    step = ramp(grant, LIVE, Decimal("0.2"), Decimal(5000), "carol", NOW + timedelta(days=7),
                T.model_copy(update={"max_ramp_step": Decimal(5)}))
    assert isinstance(step, RolloutDecision)
    assert book.on_record(signed(step), NOW) is None
    ramped = live_settings(account, settings, book)
    assert isinstance(ramped, RiskSettings)
    intent = decide(f.approval(), account, [], [], 0, T0, ramped, "ib")
    assert isinstance(intent, OrderIntent)
    assert intent.quantity == 26  # 133 x 0.2 = 26.6; the 5,000 cap allows 33
    assert intent.sizing.scale == Decimal("0.2")


def test_without_a_grant_decide_never_sees_a_live_account(f: Factory) -> None:
    """The refusal comes before decide(): the live guard's own LIVE_TRADING_ACCOUNT check is
    no longer what stands between a live account and an order."""
    account = f.account(account_id=LIVE, kind=AccountKind.LIVE)
    outcome = live_settings(account, f.settings(live_trading_account=LIVE), RolloutBook(RING, T))
    assert isinstance(outcome, Refusal)
    rejection = decide(f.approval(), account, [], [], 0, T0, f.settings(), "ib")
    assert isinstance(rejection, Rejection)  # and decide() alone still refuses it
