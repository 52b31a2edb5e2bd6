"""Every endpoint, every role, and the 401 / 403 / 404 / 422 paths, over fakes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agents.decisions.signatures import verify
from jax_exec.keys import keyring_path, load_keyring
from schemas.events import ControlCommand
from schemas.examples import SEED_SIGNAL
from tests.api.conftest import COID, NOW, SEED_CID, Api, approval_sent

SID = SEED_SIGNAL["id"]
ROLES = ("viewer", "approver", "admin")
# (method, path, body, the least role that may)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/api/v1/me", None, "viewer"),
    ("GET", "/api/v1/signals?status=pending", None, "viewer"),
    ("GET", "/api/v1/orders?status=open", None, "viewer"),
    ("GET", f"/api/v1/orders/{COID}", None, "viewer"),
    ("GET", "/api/v1/fills", None, "viewer"),
    ("GET", "/api/v1/positions", None, "viewer"),
    ("GET", "/api/v1/trades", None, "viewer"),
    ("GET", f"/api/v1/trades/{SEED_CID}", None, "viewer"),
    ("GET", "/api/v1/pnl?by=symbol", None, "viewer"),
    ("GET", "/api/v1/rejections", None, "viewer"),
    ("GET", f"/api/v1/trace/{SEED_CID}", None, "viewer"),
    ("GET", "/api/v1/kill-switch", None, "viewer"),
    ("POST", f"/api/v1/signals/{SID}/approve", {}, "approver"),
    ("POST", f"/api/v1/signals/{SID}/reject", {"reason": "no"}, "approver"),
    ("POST", "/api/v1/execute", {"signal_id": SID}, "approver"),
    ("POST", "/api/v1/kill-switch/halt", {"reason": "test"}, "admin"),
]


def _call(api: Api, method: str, path: str, body: Any, role: str | None) -> Any:
    return api.client.request(method, path, json=body, headers=api.auth(role))


@pytest.mark.parametrize(("method", "path", "body", "least"), ENDPOINTS,
                         ids=[f"{m} {p.split('?')[0]}" for m, p, _, _ in ENDPOINTS])
def test_every_endpoint_every_role(api: Api, method: str, path: str, body: Any,
                                   least: str) -> None:
    for who in (None, "bad"):
        resp = _call(api, method, path, body, who)
        assert resp.status_code == 401, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.headers["www-authenticate"].startswith("Bearer")
    for role in ROLES:
        resp = _call(api, method, path, body, role)
        allowed = ROLES.index(role) >= ROLES.index(least)
        if allowed:
            assert resp.status_code in (200, 202), (role, resp.text)
        else:
            assert resp.status_code == 403, (role, resp.text)
            assert least in resp.json()["detail"]


def test_health_and_ready(api: Api) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}
    ready = api.client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["venue"]["ok"] is True


def test_ready_names_the_failing_part(api: Api) -> None:
    async def down() -> Any:
        raise ConnectionError("venue gone")

    api.venue.account = down  # type: ignore[method-assign]
    resp = api.client.get("/ready")
    assert resp.status_code == 503
    body = resp.json()
    assert body["failing"] == ["venue"]
    assert "venue" in body["detail"]
    assert "venue gone" in body["checks"]["venue"]["error"]


def test_pending_signal_has_its_size_now_and_the_binding_limit(api: Api) -> None:
    page = api.client.get("/api/v1/signals", headers=api.auth("viewer")).json()
    [signal] = page["items"]
    assert signal["signal_id"] == SID
    # FakeVenue: equity 100,000, buying power 50,000 -> the seeds' 133 shares, 20% bound
    assert Decimal(signal["size_now"]["quantity"]) == 133
    assert signal["size_now"]["binding"] == "max_position_pct"


def test_approve_publishes_an_approval_signed_for_the_token_user(api: Api) -> None:
    resp = api.client.post(f"/api/v1/signals/{SID}/approve", headers=api.auth("approver"),
                           json={"reason": "looks good"})
    assert resp.status_code == 202, resp.text
    sent = approval_sent(api)
    assert sent["approved_by"] == "approver-user"
    assert sent["signal"] == SEED_SIGNAL
    ring = load_keyring(keyring_path(api.settings.jax_home))
    verified = verify(__import__("json").dumps(sent), ring, NOW)
    assert getattr(verified, "approved_by", None) == "approver-user", verified
    assert resp.json()["key_id"] == sent["key_id"]


def test_seeds_body_with_another_approver_is_refused(api: Api) -> None:
    resp = api.client.post(f"/api/v1/signals/{SID}/approve", headers=api.auth("approver"),
                           json={"approved_by": "test_user"})
    assert resp.status_code == 400
    assert "authenticated user" in resp.json()["detail"]
    assert api.publisher.sent == []


def test_decided_signal_is_a_conflict(api: Api) -> None:
    api.queries.signal_status = "approved"
    resp = api.client.post("/api/v1/execute", headers=api.auth("approver"),
                           json={"signal_id": SID})
    assert resp.status_code == 409
    assert "decided once" in resp.json()["detail"]


def test_kill_switch_command_is_issued_by_the_user(api: Api) -> None:
    resp = api.client.post("/api/v1/kill-switch/reduce-only", headers=api.auth("admin"),
                           json={"reason": "drill", "symbol": "AAPL"})
    assert resp.status_code == 202, resp.text
    topic, _, value = api.publisher.sent[-1]
    command = ControlCommand.model_validate_json(value)
    assert (topic, command.issued_by, command.scope) == ("control", "admin-user", "symbol:AAPL")
    refused = api.client.post("/api/v1/kill-switch/flatten", headers=api.auth("admin"),
                              json={"reason": "drill"})
    assert refused.status_code == 400
    assert "confirm" in refused.json()["detail"]


@pytest.mark.parametrize("path", [
    "/api/v1/orders/jx-nope", "/api/v1/trades/nope",
    "/api/v1/trace/00000000-0000-4000-8000-000000000000",
])
def test_not_found_is_a_problem(api: Api, path: str) -> None:
    resp = api.client.get(path, headers=api.auth("viewer"))
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == 404


def test_unknown_signal_is_not_found(api: Api) -> None:
    resp = api.client.post("/api/v1/signals/nope/approve", headers=api.auth("approver"))
    assert resp.status_code == 404


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/v1/signals?status=maybe", None),
    ("GET", "/api/v1/orders?since=2026-01-01T00:00:00", None),  # no UTC offset
    ("GET", "/api/v1/orders?cursor=not-a-cursor", None),
    ("GET", "/api/v1/orders?limit=0", None),
    ("GET", "/api/v1/pnl?by=week", None),
    ("GET", "/api/v1/trace/not-a-uuid", None),
    ("POST", f"/api/v1/signals/{SID}/reject", {}),  # a reason is required
    ("POST", "/api/v1/execute", {"signal": SID}),
    ("POST", "/api/v1/kill-switch/explode", {"reason": "x"}),
])
def test_invalid_requests_are_422_problems(api: Api, method: str, path: str, body: Any) -> None:
    resp = api.client.request(method, path, json=body, headers=api.auth("admin"))
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["status"] == 422
    assert problem["detail"]


def test_cursor_is_handed_back(api: Api) -> None:
    page = api.client.get("/api/v1/orders", headers=api.auth("viewer")).json()
    assert page["next_cursor"]
    again = api.client.get("/api/v1/orders", params={"cursor": page["next_cursor"]},
                           headers=api.auth("viewer"))
    assert again.status_code == 200
    _, kwargs = api.queries.calls[-1]
    assert kwargs["args"][-1].key == COID


def test_revoked_token_is_refused_at_once(api: Api) -> None:
    from api.users import UserStore

    assert api.client.get("/api/v1/me", headers=api.auth("viewer")).status_code == 200
    UserStore.under(api.settings.jax_home).revoke("viewer-user")
    assert api.client.get("/api/v1/me", headers=api.auth("viewer")).status_code == 401


def test_openapi_and_docs_are_served(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/trades/{trade_id}" in spec["paths"]
    assert api.client.get("/docs").status_code == 200
