"""GET /api/v1/rollout/report and /rollout/grants over fakes of the store's figures and the
`rollout` topic: each check with its value, threshold and verdict; the grants in force."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agents.decisions.rollout import (
    PaperFigures,
    RolloutBook,
    RolloutThresholds,
    fold,
    go_live,
    rollout_report,
    unsigned_body,
)
from agents.decisions.signatures import KeyEntry, KeyRing, sign
from api.services import RolloutService
from schemas.events import RolloutDecision
from tests.api.conftest import Api

NOW = datetime(2026, 12, 2, 15, tzinfo=UTC)
LIVE = "U7654321"
KEY = Ed25519PrivateKey.generate()
RING = KeyRing.of(KeyEntry.ed25519("carol-1", KEY.public_key(), ["carol"]))
T = RolloutThresholds(min_days_traded=20, min_orders=50, admins=frozenset({"carol"}))


def period(days: int) -> PaperFigures:
    return PaperFigures(
        since=NOW - timedelta(days=30), until=NOW, days_traded=days, orders=120,
        filled_orders=100, rejections={"MAX_DAILY_LOSS": 3}, avg_slippage_bps=2.5,
        ack_latency_p95_ms=350.0, reconciliation_alerts=0, kill_switch_trips=0,
        daily_pnl=((date(2026, 11, 2), Decimal(100)), (date(2026, 11, 3), Decimal(-40))))


class Fakes:
    def __init__(self) -> None:
        self.days = 12
        self.asked: list[tuple[Any, ...]] = []
        self.records: list[bytes] = []

    async def figures(self, since: datetime | None, until: datetime | None,
                      account: str | None) -> PaperFigures:
        self.asked.append((since, until, account))
        return period(self.days)

    async def book(self, now: datetime) -> RolloutBook:
        return fold(self.records, RING, T, now)


def with_rollout(api: Api) -> Fakes:
    fakes = Fakes()
    api.client.app.state.services.rollout = RolloutService(  # type: ignore[attr-defined]
        fakes.figures, fakes.book, T, clock=lambda: NOW)
    return fakes


def test_report_lists_each_check_and_fails_on_a_threshold(api: Api) -> None:
    fakes = with_rollout(api)
    resp = api.client.get("/api/v1/rollout/report", headers=api.auth("viewer"),
                          params={"since": "2026-11-01T00:00:00Z", "account": "DU1"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    print(json.dumps(body["checks"], indent=1))
    assert body["passed"] is False
    days = next(c for c in body["checks"] if c["name"] == "days traded")
    assert days == {"name": "days traded", "value": "12", "threshold": ">= 20", "passed": False}
    assert [c["name"] for c in body["checks"] if not c["passed"]] == ["days traded"]
    assert len(body["checks"]) == 10
    assert body["rejections_by_reason"] == {"MAX_DAILY_LOSS": 3}
    assert body["daily_pnl"][1] == {"day": "2026-11-03", "realized_pnl": "-40"}
    assert fakes.asked == [(datetime(2026, 11, 1, tzinfo=UTC), None, "DU1")]

    fakes.days = 25
    passing = api.client.get("/api/v1/rollout/report", headers=api.auth("viewer")).json()
    assert passing["passed"] is True
    assert passing["sha256"] == rollout_report(period(25), T).sha256()


def test_grants_show_the_signed_decisions_in_force(api: Api) -> None:
    fakes = with_rollout(api)
    empty = api.client.get("/api/v1/rollout/grants", headers=api.auth("viewer"))
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"grants": [], "ignored": []}

    decision = go_live(rollout_report(period(25), T), LIVE, "carol", NOW, T)
    assert isinstance(decision, RolloutDecision)
    body = unsigned_body(decision)
    fakes.records = [json.dumps(body).encode(),  # unsigned: ignored
                     json.dumps(sign(body, KEY, "carol-1")).encode()]
    got = api.client.get("/api/v1/rollout/grants", headers=api.auth("viewer")).json()
    assert got["grants"] == [{"account_id": LIVE, "ramp_factor": "0.1",
                              "max_order_notional": "1000", "decided_by": "carol",
                              "decision_event_id": str(decision.event_id)}]
    assert [i["reason_code"] for i in got["ignored"]] == ["UNSIGNED"]


def test_rollout_needs_a_token_and_a_store(api: Api) -> None:
    assert api.client.get("/api/v1/rollout/report").status_code == 401
    unread = api.client.get("/api/v1/rollout/grants", headers=api.auth("viewer"))
    assert unread.status_code == 404  # the fakes' API has no ClickHouse: no rollout service
    assert unread.headers["content-type"].startswith("application/problem+json")
    assert "not read in this process" in unread.json()["detail"]
