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

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from mode import Service
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult

from agents.background import Restarting, cancel_and_wait
from agents.kafka_auth import NO_AUTH, KafkaAuth
from agents.notify import Attempted, DeliveryPolicy, attempt
from agents.readback import read_all
from api.services import ServiceError
from api.users import Role, User, UserStore
from schemas.events import Decision, Event
from schemas.ids import derive_id

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


# --- pending signals posted, and updated with their outcome -------------------------------

FINAL = frozenset({"approved", "rejected", "expired"})
DECIDED = frozenset({"approved", "rejected"})


class SlackMessage(Event):
    """What a signal's Slack message shows, as posted or updated (or failed to be), recorded
    on `notifications`: the record of the post (its ts) makes posting idempotent across
    restarts, one message per signal and channel."""

    event_type: Literal["slack_message"] = "slack_message"
    signal_id: str = Field(min_length=1, max_length=128)
    channel: str = Field(min_length=1, max_length=256)
    shows: Literal["pending", "approved", "rejected", "expired"]
    ts: str | None = Field(None, description="Slack's id of the message (chat.postMessage)")
    delivered: bool
    attempts: int = Field(ge=1)
    error: str | None = Field(default=None, max_length=1000)
    elapsed_seconds: float = Field(ge=0)
    text: str = Field(max_length=3000)
    blocks: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, row: dict[str, Any], channel: str, shows: str, tried: Attempted, text: str,
           blocks: list[dict[str, Any]], ts: str | None) -> SlackMessage:
        return cls.model_validate({
            "event_id": derive_id("slack-message", row["signal_id"], channel, shows),
            "correlation_id": row["correlation_id"], "signal_id": row["signal_id"],
            "channel": channel, "shows": shows, "ts": ts, "delivered": tried.ok,
            "attempts": max(tried.attempts, 1), "error": tried.error,
            "elapsed_seconds": tried.elapsed, "text": text[:3000], "blocks": blocks})



def outcome_text(row: dict[str, Any]) -> str:
    """What a decided or expired signal's message says (a row of the signals query)."""
    status = row["status"]
    if status == "expired":
        return f":hourglass: *expired* undecided at {row.get('expires_at')}"
    icon = ":white_check_mark:" if status == "approved" else ":no_entry:"
    by = ", ".join(row.get("decided_by") or []) or "someone"
    return f"{icon} *{status}* by {by} at {row.get('decided_at')}"


SignalLookup = Callable[[str], Awaitable[dict[str, Any] | None]]
PendingList = Callable[[], Awaitable[list[dict[str, Any]]]]
RecordMessage = Callable[[SlackMessage], Awaitable[None]]


def store_signals(services: Any, limit: int = 200) -> tuple[SignalLookup, PendingList]:
    """One signal by id (any status; a pending one sized now) and every pending signal, as
    GET /api/v1/signals answers them: the API's own SignalService over the store."""

    def row_of(row: Any, preview: Any) -> dict[str, Any]:
        size = None if preview is None else {
            "quantity": None if preview.quantity is None else str(preview.quantity),
            "binding": preview.binding, "message": preview.message,
            "figures": preview.figures}
        return {**row.model_dump(mode="json"), "size_now": size}

    async def pending(symbol: str | None = None, strategy: str | None = None
                      ) -> list[dict[str, Any]]:
        page, previews = await services.signals.list("pending", limit, None, symbol, strategy)
        return [row_of(r, previews.get(r.signal_id)) for r in page.items]

    async def lookup(signal_id: str) -> dict[str, Any] | None:
        sig = services.signals
        page = await sig.queries.signals(None, sig.clock(), int(sig.risk.signal_ttl_seconds),
                                         signal_id=signal_id, limit=1)
        if not page.items:
            return None
        row = page.items[0]
        if row.status == "pending":
            sized = [r for r in await pending(row.symbol, row.strategy_id)
                     if r["signal_id"] == signal_id]
            if sized:
                return sized[0]
        return row_of(row, None)

    return lookup, pending


class SignalPoster:
    """Each pending signal posted once to the channel; its message updated with the outcome
    once the store says it was decided (on the web page, by the CLI, in Slack) or expired.
    Every Slack call is retried within `policy` and recorded; nothing here is in the way of
    trading (it reads what the pipeline wrote)."""

    def __init__(self, chat: SlackChat, channel: str, lookup: SignalLookup,
                 pending: PendingList, record: RecordMessage, policy: DeliveryPolicy,
                 store_wait: float = 30.0, clock: Callable[[], datetime] = lambda:
                 datetime.now(UTC)) -> None:
        self.chat = chat
        self.channel = channel
        self.lookup = lookup
        self.pending = pending
        self.record = record
        self.policy = policy
        self.store_wait = store_wait
        self.clock = clock
        self.messages: dict[str, SlackMessage] = {}  # signal id -> what its message shows
        self.expiries: dict[str, datetime] = {}
        self.changed = asyncio.Event()  # an expiry was added
        self._locks: dict[str, asyncio.Lock] = {}

    def remember(self, message: SlackMessage) -> None:
        """A record read back from `notifications` (at start) or just written."""
        if message.channel != self.channel or not message.delivered or message.ts is None:
            return
        known = self.messages.get(message.signal_id)
        if known is None or known.shows == "pending":
            self.messages[message.signal_id] = message

    async def catch_up(self) -> None:
        """At start: post the pending signals never posted; settle the messages still
        showing pending (decided or expired while this process was away)."""
        for row in await self.pending():
            await self._locked(row["signal_id"], self._apply, row)
        for sid in [s for s, m in self.messages.items() if m.shows == "pending"]:
            await self.settle(sid, FINAL, wait=0.0)

    async def settle(self, signal_id: str, expect: frozenset[str] | None = None,
                     wait: float | None = None) -> None:
        """Bring the signal's message in line with the store, once the store shows it (and,
        with `expect`, shows one of those statuses: the audit sink writes in batches)."""
        row = await self._row(signal_id, expect, self.store_wait if wait is None else wait)
        if row is not None:
            await self._locked(signal_id, self._apply, row)

    async def _locked(self, signal_id: str, act: Callable[[dict[str, Any]], Awaitable[None]],
                      row: dict[str, Any]) -> None:
        async with self._locks.setdefault(signal_id, asyncio.Lock()):
            await act(row)

    async def _row(self, signal_id: str, expect: frozenset[str] | None,
                   wait: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + wait
        row, step = None, 0.2
        while True:
            try:
                row = await asyncio.wait_for(self.lookup(signal_id), 30.0)
            except Exception as exc:  # the store or the venue away: try again within `wait`
                log.warning("slack: signal %s not looked up: %r", signal_id, exc)
            if row is not None and (expect is None or row["status"] in expect):
                return row
            if time.monotonic() + step > deadline:
                return row
            await asyncio.sleep(step)
            step = min(step * 2, 2.0)

    async def _apply(self, row: dict[str, Any]) -> None:
        sid, status = row["signal_id"], row["status"]
        shown = self.messages.get(sid)
        if status == "pending":
            if shown is None:
                await self._post(row)
            else:
                self._expire_at(sid, row)
        elif shown is not None and shown.shows == "pending":
            await self._update(shown, row)

    async def _post(self, row: dict[str, Any]) -> None:
        text, blocks = signal_blocks(row)
        tried = await attempt(lambda within: asyncio.wait_for(
            self.chat.post(self.channel, text, blocks), within), self.policy)
        message = SlackMessage.of(row, self.channel, "pending", tried, text, blocks,
                                  str(tried.result) if tried.ok else None)
        await self.record(message)
        self.remember(message)
        if message.delivered:
            self._expire_at(row["signal_id"], row)
        else:
            log.warning("slack: signal %s not posted after %d attempt(s): %s",
                        row["signal_id"], message.attempts, message.error)

    async def _update(self, shown: SlackMessage, row: dict[str, Any]) -> None:
        assert shown.ts is not None
        text = outcome_text(row)
        blocks = outcome_blocks(shown.blocks, text)
        tried = await attempt(lambda within: asyncio.wait_for(
            self.chat.update(self.channel, str(shown.ts), text, blocks), within), self.policy)
        message = SlackMessage.of(row, self.channel, row["status"], tried, text, blocks,
                                  shown.ts)
        await self.record(message)
        if message.delivered:
            self.messages[row["signal_id"]] = message
            self.expiries.pop(row["signal_id"], None)

    def _expire_at(self, signal_id: str, row: dict[str, Any]) -> None:
        at = datetime.fromisoformat(str(row["expires_at"]))
        self.expiries[signal_id] = max(at, self.clock() + timedelta(seconds=2))
        self.changed.set()

    async def expire(self) -> None:
        """For good: when a posted signal's time is up, settle it (the store says expired)."""
        while True:
            now = self.clock()
            due = [sid for sid, at in self.expiries.items() if at <= now]
            for sid in due:
                self.expiries.pop(sid, None)
                await self.settle(sid, FINAL, wait=5.0)
            soonest = min(self.expiries.values(), default=None)
            pause = 60.0 if soonest is None else (soonest - self.clock()).total_seconds()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(max(pause, 0.05), 60.0))


class SlackPosterStage:
    """The poster over Kafka: reads back its records on `notifications` (what was posted),
    tails `signal-ledger` from the end with no group (a signal seen -> post it; decided ->
    update it), catches up on the pending signals, and expires what times out. Kafka away:
    restarted with backoff; each reaction is a task of its own (bounded in number)."""

    def __init__(self, poster: SignalPoster, bootstrap: str, topic: Callable[[str], str],
                 auth: KafkaAuth = NO_AUTH, timeout: float = 30.0, parallel: int = 8) -> None:
        self.poster = poster
        self.bootstrap = bootstrap
        self.topic = topic
        self.auth = auth
        self.timeout = timeout
        self.ready = asyncio.Event()
        self._gate = asyncio.Semaphore(parallel)
        self._tasks: set[asyncio.Task[None]] = set()
        # Kafka away: signals wait for the web page meanwhile
        self._main = Restarting("jax.slack.poster", self._consume)

    async def start(self) -> None:
        self._main.start()

    async def stop(self) -> None:
        await self._main.stop()
        await cancel_and_wait(*self._tasks)

    async def _consume(self) -> None:
        kw = self.auth.aiokafka_kwargs()
        ledger = AIOKafkaConsumer(self.topic("signal-ledger"), bootstrap_servers=self.bootstrap,
                                  group_id=None, enable_auto_commit=False,
                                  auto_offset_reset="latest", fetch_max_wait_ms=200, **kw)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                    enable_idempotence=True, **kw)
        await asyncio.wait_for(ledger.start(), self.timeout)
        try:
            await asyncio.wait_for(producer.start(), self.timeout)
            try:
                await self._follow(ledger, producer)
            finally:
                await producer.stop()
        finally:
            self.ready.clear()
            await ledger.stop()

    async def _follow(self, ledger: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        for tp in ledger.assignment():  # pin the start: nothing after this is missed
            await ledger.position(tp)

        async def record(message: SlackMessage) -> None:
            await asyncio.wait_for(producer.send_and_wait(
                self.topic("notifications"), message.model_dump_json().encode(),
                key=message.kafka_key), self.timeout)

        self.poster.record = record
        await asyncio.wait_for(read_all(self.bootstrap, self.topic("notifications"),
                                        self._remember, self.auth), self.timeout)
        self._spawn(self.poster.catch_up())
        self._spawn(self.poster.expire())
        self.ready.set()
        while True:
            batches = await ledger.getmany(timeout_ms=500)
            for msgs in batches.values():
                for m in msgs:
                    self._on_ledger(m.value)

    def _remember(self, obj: dict[str, Any]) -> None:
        if obj.get("event_type") == "slack_message":
            with contextlib.suppress(ValueError):
                self.poster.remember(SlackMessage.model_validate(obj))

    def _on_ledger(self, raw: bytes | None) -> None:
        try:
            record = json.loads(raw or b"")
        except ValueError:
            return
        if not isinstance(record, dict) or not record.get("signal_id"):
            return
        status = record.get("status")
        if status == "seen":
            self._spawn(self.poster.settle(str(record["signal_id"])))
        elif status == "decided":
            self._spawn(self.poster.settle(str(record["signal_id"]), DECIDED))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def bounded() -> None:
            async with self._gate:
                try:
                    await work
                except Exception:  # one signal's trouble is logged; the others go on
                    log.exception("slack poster")

        task = asyncio.create_task(bounded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class SlackApiService(Service):
    """The embedded API with the poster beside it (started before it, stopped after)."""

    def __init__(self, api: Service, stage: SlackPosterStage, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api = api
        self.stage = stage

    async def on_start(self) -> None:
        await self.stage.start()
        await self.api.start()

    async def on_stop(self) -> None:
        await self.api.stop()
        await self.stage.stop()


def _services_of(api_service: Any) -> Any:
    """api.server.ApiService, or a wrapper of it (api.live.LiveApiService): its Services."""
    while not hasattr(api_service, "server"):
        api_service = api_service.api
    return api_service.server.services


def attach_slack(api_service: Any, settings: Any, slack: SlackSettings | None = None,
                 chat: SlackChat | None = None) -> Any:
    """The embedded API with pending signals posted to SLACK_CHANNEL (when SLACK_BOT_TOKEN,
    SLACK_SIGNING_SECRET and SLACK_CHANNEL are set; else `api_service` as it is)."""
    from agents.notify import NotifySettings
    from jax_exec.kafka_security import client_auth

    slack = slack or SlackSettings()
    if isinstance(api_service, SlackApiService) or not slack.enabled or not slack.channel:
        return api_service
    assert slack.bot_token is not None
    chat = chat or WebApiChat(slack.bot_token.get_secret_value(), slack.timeout_seconds)
    lookup, pending = store_signals(_services_of(api_service))
    poster = SignalPoster(chat, slack.channel, lookup, pending, _unrecorded,
                          DeliveryPolicy.of(NotifySettings()))
    # It runs in the worker (reads signal-ledger and notifications, writes notifications):
    # the operator principal may do neither.
    stage = SlackPosterStage(poster, settings.kafka_bootstrap, settings.topic,
                             auth=client_auth(settings, "worker"))
    return SlackApiService(api_service, stage)


async def _unrecorded(message: SlackMessage) -> None:
    raise RuntimeError("the poster records only once its Kafka producer is up")
