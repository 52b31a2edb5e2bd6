"""Slack interactivity at /slack/events, no network: a correctly signed click publishes a
decision signed for the mapped project user and updates the message; a wrong signature, a
stale timestamp and an unmapped Slack user publish nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from api.slack import APPROVE, REJECT, SlackSettings, signal_blocks, slack_for
from schemas.examples import SEED_SIGNAL
from tests.api.conftest import Api, approval_sent, make_api

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SID = SEED_SIGNAL["id"]


@dataclass
class FakeChat:
    posted: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)
    updated: list[tuple[str, str, str]] = field(default_factory=list)
    ephemeral_sent: list[tuple[str, str, str]] = field(default_factory=list)

    async def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> str:
        self.posted.append((channel, text, blocks))
        return "1700000000.000100"

    async def update(self, channel: str, ts: str, text: str,
                     blocks: list[dict[str, Any]]) -> None:
        self.updated.append((channel, ts, text))

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        self.ephemeral_sent.append((channel, user, text))


@dataclass
class SlackApi:
    api: Api
    chat: FakeChat


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[SlackApi]:
    api = make_api(tmp_path / "home")
    mapping = tmp_path / "slack-users.json"
    mapping.write_text(json.dumps({"U_ALICE": "approver-user", "U_VERA": "viewer-user"}))
    settings = SlackSettings(bot_token="xoxb-test", signing_secret=SECRET,
                             users_file=mapping)
    services = api.client.app.state.services  # type: ignore[attr-defined]
    chat = FakeChat()
    services.slack = slack_for(settings, api.settings.jax_home, services.decisions.decide,
                               services.users, chat)
    with api.client:
        yield SlackApi(api, chat)


def click(user: str, action: str = APPROVE) -> str:
    _, blocks = signal_blocks({"signal_id": SID, "symbol": "AAPL", "side": "BUY",
                               "strategy_id": "ma_crossover_v1", "entry_price": "150",
                               "size_now": {"quantity": "133", "binding": "max_position_pct"}})
    payload = {"type": "block_actions", "user": {"id": user, "username": user.lower()},
               "team": {"id": "T1"}, "api_app_id": "A1", "token": "legacy",
               "trigger_id": "1.2.3", "response_url": "https://hooks.slack.invalid/x",
               "channel": {"id": "C1", "name": "approvals"},
               "container": {"type": "message", "message_ts": "1700000000.000100"},
               "message": {"ts": "1700000000.000100", "blocks": blocks},
               "actions": [{"action_id": action, "block_id": "decision", "value": SID,
                            "type": "button", "action_ts": "1700000001.0"}]}
    return urlencode({"payload": json.dumps(payload)})


def post(slack: SlackApi, body: str, timestamp: int | None = None,
         secret: str = SECRET) -> Any:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(),
                                 hashlib.sha256).hexdigest()
    return slack.api.client.post("/slack/events", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature})


def test_signed_click_publishes_a_decision_for_the_mapped_user(slack: SlackApi) -> None:
    resp = post(slack, click("U_ALICE"))
    assert resp.status_code == 200, resp.text
    sent = approval_sent(slack.api)
    assert (sent["approved_by"], sent["decision"], sent["signal"]) == \
        ("approver-user", "approved", SEED_SIGNAL)
    [(channel, ts, text)] = slack.chat.updated
    assert (channel, ts) == ("C1", "1700000000.000100")
    assert "approved* by approver-user" in text
    print(f"slack click -> approval by {sent['approved_by']} signed {sent['key_id']}")


def test_reject_click_publishes_a_rejection_with_a_reason(slack: SlackApi) -> None:
    assert post(slack, click("U_ALICE", REJECT)).status_code == 200
    sent = approval_sent(slack.api)
    assert (sent["decision"], sent["reason"]) == ("rejected", "rejected in Slack by U_ALICE")


def test_wrong_signature_publishes_nothing(slack: SlackApi) -> None:
    resp = post(slack, click("U_ALICE"), secret="not-the-secret")
    assert resp.status_code == 401
    assert slack.api.publisher.sent == []
    assert slack.chat.updated == []


def test_stale_request_publishes_nothing(slack: SlackApi) -> None:
    resp = post(slack, click("U_ALICE"), timestamp=int(time.time()) - 10 * 60)
    assert resp.status_code == 401
    assert slack.api.publisher.sent == []


@pytest.mark.parametrize(("user", "why"), [("U_NOBODY", "not mapped"),
                                           ("U_VERA", "needs the approver role")])
def test_unmapped_or_viewer_slack_user_is_refused_with_a_message(
        slack: SlackApi, user: str, why: str) -> None:
    resp = post(slack, click(user))
    assert resp.status_code == 200
    assert slack.api.publisher.sent == []
    [(channel, to, text)] = slack.chat.ephemeral_sent
    assert (channel, to) == ("C1", user)
    assert why in text


def test_the_posted_message_carries_the_figures_and_both_buttons() -> None:
    text, blocks = signal_blocks({
        "signal_id": SID, "symbol": "AAPL", "side": "BUY", "strategy_id": "ma_crossover_v1",
        "entry_price": "150.00", "stop_loss": "145.00", "take_profit": "160.00",
        "size_now": {"quantity": "133", "binding": "max_position_pct",
                     "figures": {"risk_amount": "665.00", "position_value": "19950.00",
                                 "rr_ratio": "2.0"}}})
    assert text.startswith("BUY 133 AAPL @ 150.00")
    flat = json.dumps(blocks)
    for figure in ("665.00", "19,950.00", "max_position_pct", "145.00", "160.00"):
        assert figure in flat
    buttons = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [APPROVE, REJECT]


def test_not_configured_is_404(tmp_path: Path) -> None:
    api = make_api(tmp_path / "home")
    with api.client:
        assert api.client.post("/slack/events", content="x").status_code == 404
