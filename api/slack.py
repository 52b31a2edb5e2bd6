"""Slack approvals (slack-bolt): each pending signal is posted as an interactive message with
its figures and Approve / Reject buttons; a click publishes a decision signed for the project
user the Slack user is mapped to (approver role or above), and the message is updated with
the outcome. Slack's request signature and timestamp are verified by slack-bolt (a wrong
signature or a request older than five minutes never reaches a handler).

The mapping is a JSON file {"<Slack user id>": "<project user>"} (SLACK_USERS_FILE, default
JAX_HOME/api/slack-users.json); an unmapped Slack user, or one mapped to a viewer or a revoked
user, is refused with a message only they see. The Slack Web API is a port (`SlackChat`) with
a fake in the tests; every call is bounded."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult

from api.services import ServiceError
from api.users import Role, User, UserStore
from schemas.events import Decision

log = logging.getLogger(__name__)

APPROVE, REJECT = "jax_approve", "jax_reject"


class SlackSettings(BaseSettings):
    """SLACK_*: the Slack app's credentials, channel and user mapping."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_prefix="SLACK_")

    bot_token: SecretStr | None = Field(None, description="SLACK_BOT_TOKEN (xoxb-...)")
    signing_secret: SecretStr | None = Field(
        None, description="SLACK_SIGNING_SECRET: verifies every request from Slack")
    channel: str | None = Field(None, description="SLACK_CHANNEL: where signals are posted")
    users_file: Path | None = Field(
        None, description="SLACK_USERS_FILE: {slack user id: project user} (default "
                          "JAX_HOME/api/slack-users.json)")
    timeout_seconds: float = Field(10.0, gt=0, description="SLACK_TIMEOUT_SECONDS")

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None and self.signing_secret is not None


class SlackChat(Protocol):
    """What we ask of Slack's Web API."""

    async def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> str: ...

    async def update(self, channel: str, ts: str, text: str,
                     blocks: list[dict[str, Any]]) -> None: ...

    async def ephemeral(self, channel: str, user: str, text: str) -> None: ...


class WebApiChat:
    """SlackChat over slack_sdk's AsyncWebClient (its own timeout on every call)."""

    def __init__(self, token: str, timeout: float) -> None:
        from slack_sdk.web.async_client import AsyncWebClient

        self.client = AsyncWebClient(token=token, timeout=int(max(timeout, 1)))

    async def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> str:
        resp = await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        return str(resp["ts"])

    async def update(self, channel: str, ts: str, text: str,
                     blocks: list[dict[str, Any]]) -> None:
        await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        await self.client.chat_postEphemeral(channel=channel, user=user, text=text)


class UserMap:
    """Slack user id -> project user, read from the file on each click (edits apply at once)."""

    def __init__(self, path: Path, users: UserStore) -> None:
        self.path = path
        self.users = users

    def project_user(self, slack_user: str) -> tuple[User | None, str]:
        """The mapped user allowed to approve, or None and why not."""
        try:
            mapping = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError) as exc:
            return None, f"the Slack user mapping {self.path} is unreadable: {exc}"
        name = mapping.get(slack_user) if isinstance(mapping, dict) else None
        if not name:
            return None, (f"your Slack user ({slack_user}) is not mapped to a Jax Execution "
                          "user; ask an admin to add it to the Slack user mapping")
        user = next((u for u in self.users.list() if u.name == name and not u.revoked), None)
        if user is None:
            return None, f"{name} (your mapped user) does not exist or is revoked"
        if not user.role.allows(Role.APPROVER):
            return None, f"{name} is a {user.role.value}; approving needs the approver role"
        return user, ""


# --- messages --------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "—"
    try:
        return f"{Decimal(str(value)):,.2f}"
    except ArithmeticError:
        return str(value)


def signal_blocks(signal: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The message of one pending signal (a row of GET /api/v1/signals, size_now included)."""
    size = signal.get("size_now") or {}
    figures = size.get("figures") or {}
    quantity = size.get("quantity")
    text = (f"{signal['side']} {quantity if quantity is not None else '?'} {signal['symbol']} "
            f"@ {_fmt(signal.get('entry_price'))} ({signal['strategy_id']}): approve?")
    fields = [
        ("Signal", signal["signal_id"]), ("Strategy", signal["strategy_id"]),
        ("Side", signal["side"]), ("Symbol", signal["symbol"]),
        ("Entry", _fmt(signal.get("entry_price"))), ("Stop", _fmt(signal.get("stop_loss"))),
        ("Target", _fmt(signal.get("take_profit"))),
        ("Size now", "—" if quantity is None else str(Decimal(str(quantity)).normalize())),
        ("Binding limit", size.get("binding") or size.get("message") or "—"),
        ("Risk", _fmt(figures.get("risk_amount"))),
        ("Position value", _fmt(figures.get("position_value"))),
        ("R:R", str(figures.get("rr_ratio") or "—")),
    ]
    sid = signal["signal_id"]
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"}
                                       for k, v in fields[:10]]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(
            f"{k}: {v}" for k, v in fields[10:])}]},
        {"type": "actions", "block_id": "decision", "elements": [
            {"type": "button", "action_id": APPROVE, "style": "primary", "value": sid,
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": REJECT, "style": "danger", "value": sid,
             "text": {"type": "plain_text", "text": "Reject"}}]},
    ]


def outcome_blocks(original: list[dict[str, Any]], outcome: str) -> list[dict[str, Any]]:
    """The message with its buttons replaced by the outcome."""
    kept = [b for b in original if b.get("type") != "actions"]
    return [*kept, {"type": "section", "text": {"type": "mrkdwn", "text": outcome}}]


# --- the bolt app ------------------------------------------------------------------------


Decide = Callable[[str, Decision, str, str | None], Awaitable[Any]]


def build_slack_app(settings: SlackSettings, decide: Decide, users: UserMap,
                    chat: SlackChat) -> AsyncApp:
    """The bolt app for /slack/events; `decide` is DecisionService.decide."""
    assert settings.signing_secret is not None
    token = settings.bot_token.get_secret_value() if settings.bot_token else ""

    async def authorize(**_: Any) -> AuthorizeResult:  # single workspace, no auth.test call
        return AuthorizeResult(enterprise_id=None, team_id=None, bot_token=token)

    app = AsyncApp(signing_secret=settings.signing_secret.get_secret_value(),
                   authorize=authorize, process_before_response=True)

    async def on_click(ack: Callable[[], Awaitable[Any]], body: dict[str, Any]) -> None:
        await ack()
        await handle_click(body, decide, users, chat)

    app.action(APPROVE)(on_click)
    app.action(REJECT)(on_click)
    return app


async def handle_click(body: dict[str, Any], decide: Decide, users: UserMap,
                       chat: SlackChat) -> str:
    """One Approve / Reject click (signature already verified); returns the outcome shown."""
    action = body["actions"][0]
    slack_user = body["user"]["id"]
    channel = body.get("channel", {}).get("id", "")
    message = body.get("message", {})
    user, why = users.project_user(slack_user)
    if user is None:
        log.warning("slack: click by %s refused: %s", slack_user, why)
        await _quietly(chat.ephemeral(channel, slack_user, f"Refused: {why}"))
        return f"refused: {why}"
    decision = Decision.APPROVED if action["action_id"] == APPROVE else Decision.REJECTED
    reason = None if decision is Decision.APPROVED else f"rejected in Slack by {slack_user}"
    try:
        decided = await decide(action["value"], decision, user.name, reason)
        outcome = (f":white_check_mark: *{decision.value}* by {user.name} (<@{slack_user}>), "
                   f"signed with {decided.key_id}")
    except ServiceError as exc:
        outcome = f":warning: not {decision.value}: {exc.detail}"
    if message.get("ts"):
        await _quietly(chat.update(channel, message["ts"], outcome,
                                   outcome_blocks(message.get("blocks", []), outcome)))
    return outcome


async def _quietly(call: Awaitable[Any]) -> None:
    """A Slack call that fails is logged: the decision (or refusal) stands either way."""
    try:
        await call
    except Exception as exc:
        log.warning("slack call failed: %r", exc)


def slack_for(settings: SlackSettings, jax_home: Path, decide: Decide, users: UserStore,
              chat: SlackChat | None = None) -> AsyncApp | None:
    """The bolt app when SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set, else None."""
    if not settings.enabled:
        return None
    assert settings.bot_token is not None
    path = settings.users_file or jax_home / "api" / "slack-users.json"
    chat = chat or WebApiChat(settings.bot_token.get_secret_value(), settings.timeout_seconds)
    return build_slack_app(settings, decide, UserMap(path, users), chat)


async def post_signal(chat: SlackChat, channel: str, signal: dict[str, Any]) -> str:
    """Post one pending signal (a row of GET /api/v1/signals?status=pending); its ts."""
    text, blocks = signal_blocks(signal)
    return await chat.post(channel, text, blocks)
