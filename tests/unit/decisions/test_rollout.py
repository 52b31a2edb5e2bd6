"""The rollout gate, pure: the report against thresholds, go-live only from a passing report
and an admin's signed decision, the ramp only by further signed steps."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.decisions.live import live_guard
from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.rollout import (
    PaperFigures,
    RolloutBook,
    RolloutThresholds,
    go_live,
    ramp,
    rollout_report,
    unsigned_body,
)
from agents.decisions.signatures import KeyEntry, KeyRing, sign
from brokers.port import AccountKind
from schemas.events import RolloutAction, RolloutDecision
from tests.unit.decisions.decisions_factory import Factory

NOW = datetime(2026, 12, 2, 15, tzinfo=UTC)
LIVE = "U7654321"
ADMIN_KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
RING = KeyRing.of(KeyEntry.ed25519("admin-1", ADMIN_KEY.public_key(), ["carol"]),
                  KeyEntry.ed25519("trader-1", OTHER_KEY.public_key(), ["alice"]))
T = RolloutThresholds(min_days_traded=20, min_orders=50, admins=frozenset({"carol"}))


def figures(**over: Any) -> PaperFigures:
    days = tuple((date(2026, 11, 1) + timedelta(days=i), Decimal(100)) for i in range(25))
    base: dict[str, Any] = {
        "since": NOW - timedelta(days=30), "until": NOW, "days_traded": 25, "orders": 120,
        "filled_orders": 100, "rejections": {"MAX_DAILY_LOSS": 3, "VENUE_REJECTED": 0},
        "avg_slippage_bps": 2.5, "ack_latency_p95_ms": 350.0, "reconciliation_alerts": 0,
        "kill_switch_trips": 0, "daily_pnl": days}
    base.update(over)
    return PaperFigures(**base)


@pytest.mark.parametrize(
    ("over", "failing"),
    [
        ({}, None),
        ({"days_traded": 19}, "days traded"),
        ({"orders": 40, "filled_orders": 30}, "orders"),
        ({"filled_orders": 50}, "fill rate"),
        ({"rejections": {"VENUE_REJECTED": 5}}, "venue rejection rate"),
        ({"avg_slippage_bps": 12.0}, "avg slippage (bps)"),
        ({"avg_slippage_bps": None}, "avg slippage (bps)"),
        ({"ack_latency_p95_ms": 2500.0}, "approval-to-ack p95 (ms)"),
        ({"reconciliation_alerts": 1}, "reconciliation alerts"),
        ({"kill_switch_trips": 1}, "kill-switch trips"),
        ({"daily_pnl": ((date(2026, 11, 1), Decimal(-10)),)}, "realized P&L"),
        ({"daily_pnl": ((date(2026, 11, 1), Decimal(9000)), (date(2026, 11, 2), Decimal(-6000)))},
         "max drawdown"),
    ],
)
def test_report_each_threshold(over: dict[str, Any], failing: str | None) -> None:
    report = rollout_report(figures(**over), T)
    for c in report.checks:
        print(f"{'PASS' if c.passed else 'FAIL'} {c.name}: {c.value} ({c.threshold})")
    assert [c.name for c in report.failed] == ([] if failing is None else [failing])
    assert report.passed is (failing is None)


def test_drawdown_is_peak_to_trough() -> None:
    pnl = [Decimal(x) for x in ("100", "-300", "50", "-100", "400")]
    f = figures(daily_pnl=tuple((date(2026, 11, 1 + i), p) for i, p in enumerate(pnl)))
    assert f.max_drawdown == Decimal(350)
    assert f.realized_pnl == Decimal(150)


def signed(decision: RolloutDecision, key: Ed25519PrivateKey = ADMIN_KEY,
           key_id: str = "admin-1") -> bytes:
    return json.dumps(sign(unsigned_body(decision), key, key_id)).encode()


def test_go_live_refused_without_a_passing_report() -> None:
    refusal = go_live(rollout_report(figures(days_traded=3), T), LIVE, "carol", NOW, T)
    assert isinstance(refusal, Refusal)
    assert refusal.code is ReasonCode.LIVE_TRADING_NOT_ENABLED
    assert "days traded 3 (needs >= 20)" in refusal.message


def test_go_live_refuses_a_paper_account_and_a_non_admin() -> None:
    report = rollout_report(figures(), T)
    paper = go_live(report, "DU1234567", "carol", NOW, T)
    assert isinstance(paper, Refusal)
    assert "paper account" in paper.message
    stranger = go_live(report, LIVE, "alice", NOW, T)
    assert isinstance(stranger, Refusal)
    assert "not a rollout admin" in stranger.message


def test_live_needs_a_signed_go_live_then_ramps_only_by_signed_steps(f: Factory) -> None:
    account = f.account(account_id=LIVE, kind=AccountKind.LIVE)
    settings = f.settings()
    book = RolloutBook(RING, T)
    assert book.grant(LIVE) is None
    assert live_guard(account, settings) is not None  # no decision: refused

    report = rollout_report(figures(), T)
    decision = go_live(report, LIVE, "carol", NOW, T)
    assert isinstance(decision, RolloutDecision)
    assert decision.report_sha256 == report.sha256()
    unsigned = json.dumps(unsigned_body(decision)).encode()
    assert book.on_record(unsigned, NOW).code is ReasonCode.UNSIGNED  # type: ignore[union-attr]
    forged = signed(decision, OTHER_KEY, "trader-1")  # alice's key cannot sign for carol
    assert book.on_record(forged, NOW).code is ReasonCode.SIGNER_MISMATCH  # type: ignore[union-attr]
    assert book.grant(LIVE) is None

    assert book.on_record(signed(decision), NOW) is None
    grant = book.grant(LIVE)
    assert grant is not None
    assert (grant.ramp_factor, grant.max_order_notional) == (Decimal("0.1"), Decimal(1000))
    assert live_guard(account, grant.apply(settings)) is None  # now live is accepted

    too_far = ramp(grant, LIVE, Decimal("0.5"), Decimal(1000), "carol", NOW, T)
    assert isinstance(too_far, Refusal)
    assert "at most multiply by 2" in too_far.message
    step = ramp(grant, LIVE, Decimal("0.2"), Decimal(2000), "carol", NOW + timedelta(days=7), T)
    assert isinstance(step, RolloutDecision)
    assert step.action is RolloutAction.RAMP
    assert book.on_record(signed(step), NOW) is None
    stepped = book.grant(LIVE)
    assert stepped is not None
    assert stepped.apply(settings).live_ramp_factor == Decimal("0.2")
    assert stepped.apply(settings).live_max_order_notional == Decimal(2000)

    replayed = book.on_record(signed(step), NOW)  # a ramp must step from the grant in force
    assert isinstance(replayed, Refusal)
    assert "does not step from the grant in force" in replayed.message
    assert len(book.refused) == 3


def test_ramp_needs_a_grant() -> None:
    refusal = ramp(None, LIVE, Decimal("0.2"), Decimal(2000), "carol", NOW, T)
    assert isinstance(refusal, Refusal)
    assert "no signed go-live" in refusal.message


def test_thresholds_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_MIN_DAYS_TRADED", "40")
    monkeypatch.setenv("ROLLOUT_ADMINS", "carol, dave")
    t = RolloutThresholds()
    assert t.min_days_traded == 40
    assert t.admins == {"carol", "dave"}
