"""The notifications stage: orders (rejected, filled, partially filled, cancelled, expired),
refusals, kill-switch changes, automatic trips and reconciliation alerts, delivered to Slack and
to generic webhooks (JSON signed with HMAC-SHA256, see agents.decisions.notifications), each
retried with its own bounded backoff, each delivery recorded on `notifications`.

Microsoft Teams is reached through an incoming webhook (NOTIFY_TEAMS): an Adaptive Card (or a
legacy MessageCard) posted to the URL Teams gave; the URL is the secret, Teams checks nothing.

It never blocks trading: its own consumer group (APP_ID-notify), its own consumer and producer,
and a receiver that is down only delays its own notifications: each receiver has its own lane
(a bounded queue and one task, in order), every attempt is bounded and the whole delivery too.
It starts at the end of the topics the first time (no flood of history), and commits an offset
once every delivery of it and of all before it is recorded (at-least-once: a crash
re-notifies)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from mode import Service
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.background import Restarting
from agents.decisions.notifications import (
    NOTIFY_TOPICS,
    Notice,
    notice_for,
    sign_body,
    slack_text,
    teams_card,
)
from agents.kafka_auth import NO_AUTH, KafkaAuth
from schemas.events import Notification
from schemas.ids import derive_id

log = logging.getLogger(__name__)


class Webhook(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=8, max_length=2000)
    secret: SecretStr = Field(min_length=16)


class TeamsHook(BaseModel):
    """A Teams incoming webhook: a Workflows "when a Teams webhook request is received" URL
    (card "adaptive") or a legacy Office 365 connector URL (card "messagecard")."""

    name: str = Field(min_length=1, max_length=64)
    url: SecretStr = Field(description="Whoever has the URL can post: keep it secret")
    card: Literal["adaptive", "messagecard"] = "adaptive"


class NotifySettings(BaseSettings):
    """NOTIFY_*: where notifications go and how hard delivery tries."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_prefix="NOTIFY_")

    webhooks: list[Webhook] = Field(default_factory=list, description=(
        'NOTIFY_WEBHOOKS: JSON [{"name": "ops", "url": "https://...", "secret": "..."}]'))
    teams: list[TeamsHook] = Field(default_factory=list, description=(
        'NOTIFY_TEAMS: JSON [{"name": "desk", "url": "https://...", "card": "adaptive"}]'))
    backlog: int = Field(1000, ge=1, description="NOTIFY_BACKLOG: notifications a receiver "
                                                 "may fall behind by; beyond, recorded failed")
    slack_channel: str | None = Field(None, description="NOTIFY_SLACK_CHANNEL (needs "
                                                        "SLACK_BOT_TOKEN)")
    attempts: int = Field(4, ge=1, le=10, description="NOTIFY_ATTEMPTS per receiver")
    attempt_timeout_seconds: float = Field(5.0, gt=0, description="NOTIFY_ATTEMPT_TIMEOUT_SECONDS")
    backoff_seconds: float = Field(0.5, gt=0, description="NOTIFY_BACKOFF_SECONDS (doubles)")
    backoff_max_seconds: float = Field(5.0, gt=0, description="NOTIFY_BACKOFF_MAX_SECONDS")
    total_seconds: float = Field(30.0, gt=0, description="NOTIFY_TOTAL_SECONDS: one delivery's "
                                                         "budget, retries included")


@dataclass(frozen=True)
class DeliveryPolicy:
    """Bounded retries with doubling backoff (its own policy, not agents.retry's)."""

    attempts: int = 4
    attempt_timeout: float = 5.0
    backoff: float = 0.5
    backoff_max: float = 5.0
    total: float = 30.0

    @classmethod
    def of(cls, s: NotifySettings) -> DeliveryPolicy:
        return cls(s.attempts, s.attempt_timeout_seconds, s.backoff_seconds,
                   s.backoff_max_seconds, s.total_seconds)

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff * 2 ** (attempt - 1), self.backoff_max))


class Receiver(Protocol):
    name: str
    channel: str

    async def send(self, notice: Notice, within: float) -> int | None:
        """Deliver once; the HTTP status, or raise."""
        ...


class WebhookReceiver:
    channel = "webhook"

    def __init__(self, hook: Webhook, client: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = hook.name
        self.url = hook.url
        self.secret = hook.secret.get_secret_value().encode()
        self.client = client
        self.clock = clock

    async def send(self, notice: Notice, within: float) -> int | None:
        body = json.dumps(notice.body(), default=str).encode()
        headers = {"Content-Type": "application/json",
                   **sign_body(self.secret, body, int(self.clock()))}
        resp = await self.client.post(self.url, content=body, headers=headers, timeout=within)
        resp.raise_for_status()
        return resp.status_code


class TeamsReceiver:
    channel = "teams"

    def __init__(self, hook: TeamsHook, client: httpx.AsyncClient) -> None:
        self.name = hook.name
        self.url = hook.url.get_secret_value()
        self.card = hook.card
        self.client = client

    async def send(self, notice: Notice, within: float) -> int | None:
        resp = await self.client.post(self.url, json=teams_card(notice, self.card),
                                      timeout=within)
        resp.raise_for_status()
        return resp.status_code


class SlackReceiver:
    channel = "slack"

    def __init__(self, chat: Any, slack_channel: str) -> None:
        self.name = f"slack:{slack_channel}"
        self.chat = chat
        self.slack_channel = slack_channel

    async def send(self, notice: Notice, within: float) -> int | None:
        text = slack_text(notice)
        await asyncio.wait_for(self.chat.post(self.slack_channel, text, [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}]), within)
        return None


@dataclass(frozen=True)
class Attempted:
    """How a call tried within a policy ended."""

    result: Any
    attempts: int
    error: str | None
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.error is None and self.attempts > 0


async def attempt(call: Callable[[float], Awaitable[Any]], policy: DeliveryPolicy,
                  sleep: Callable[[float], Any] = asyncio.sleep) -> Attempted:
    """call(time limit) until it returns, within the policy's attempts, backoff and total
    budget; never raises (the last error is in the result)."""
    started = time.monotonic()
    attempts, result, error = 0, None, None
    for attempts in range(1, policy.attempts + 1):
        left = policy.total - (time.monotonic() - started)
        if left <= 0:
            break
        try:
            result = await asyncio.wait_for(call(min(policy.attempt_timeout, left)), left)
            error = None
            break
        except Exception as exc:  # any failure of a receiver is retried, then recorded
            error = _describe(exc)
            if attempts < policy.attempts:
                await sleep(min(policy.delay(attempts),
                                max(policy.total - (time.monotonic() - started), 0)))
    return Attempted(result, attempts, error, round(time.monotonic() - started, 3))


async def deliver(notice: Notice, receiver: Receiver, policy: DeliveryPolicy,
                  sleep: Callable[[float], Any] = asyncio.sleep) -> Notification:
    """Try within the policy; the record of how it ended (never raises)."""
    tried = await attempt(lambda within: receiver.send(notice, within), policy, sleep)
    if not tried.ok:
        log.warning("notification %s to %s failed after %d attempt(s): %s", notice.kind.value,
                    receiver.name, tried.attempts, tried.error)
    return record_of(notice, receiver, tried.ok, max(tried.attempts, 1), tried.result,
                     tried.error, tried.elapsed)


def record_of(notice: Notice, receiver: Receiver, delivered: bool, attempts: int,
              status: int | None, error: str | None, elapsed: float) -> Notification:
    return Notification(
        event_id=derive_id("notification", notice.subject_event_id, notice.kind.value,
                           receiver.name),
        correlation_id=_correlation(notice), kind=notice.kind, channel=receiver.channel,
        target=receiver.name, subject_event_id=_uuid_or(notice),
        subject_topic=notice.subject_topic, title=notice.title[:500], delivered=delivered,
        attempts=attempts, status_code=status, error=error, elapsed_seconds=elapsed)


def _uuid_or(notice: Notice) -> Any:
    try:
        import uuid

        return uuid.UUID(notice.subject_event_id)
    except ValueError:
        return derive_id("subject", notice.subject_event_id)


def _correlation(notice: Notice) -> Any:
    """The signal's correlation id when the event carries one (the trace finds the
    notification beside the order), else the subject's."""
    try:
        import uuid

        return uuid.UUID(str(notice.fields.get("correlation_id")))
    except ValueError:
        return _uuid_or(notice)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return (repr(exc) or type(exc).__name__)[:1000]


class NotifyStage:
    """The stage's loop over Kafka (own group), its receivers and its producer."""

    def __init__(self, bootstrap: str, topic: Callable[[str], str], group_id: str,
                 receivers: list[Receiver], policy: DeliveryPolicy,
                 auth: KafkaAuth = NO_AUTH, timeout: float = 30.0,
                 backlog: int = 1000) -> None:
        self.bootstrap = bootstrap
        self.backlog = backlog
        self.topic = topic
        self.names = {topic(name): name for name in NOTIFY_TOPICS}
        self.group_id = group_id
        self.receivers = receivers
        self.policy = policy
        self.auth = auth
        self.timeout = timeout
        self.recorded: list[Notification] = []  # this process's deliveries (tests, metrics)
        self.ready = asyncio.Event()
        # Kafka away: try again; trading is not concerned
        self._task = Restarting("jax.notify", self._consume, delays=(2.0,))

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _consume(self) -> None:
        kw = self.auth.aiokafka_kwargs()
        consumer = AIOKafkaConsumer(*self.names, bootstrap_servers=self.bootstrap,
                                    group_id=self.group_id, enable_auto_commit=False,
                                    auto_offset_reset="latest", fetch_max_wait_ms=200, **kw)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                    enable_idempotence=True, **kw)
        await asyncio.wait_for(consumer.start(), self.timeout)
        try:
            await asyncio.wait_for(producer.start(), self.timeout)
            try:
                await self._loop(consumer, producer)
            finally:
                await producer.stop()
        finally:
            self.ready.clear()
            await consumer.stop()

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        offsets = Offsets()

        async def record(notification: Notification) -> None:
            await asyncio.wait_for(producer.send_and_wait(
                self.topic("notifications"), notification.model_dump_json().encode(),
                key=notification.kafka_key), self.timeout)
            self.recorded.append(notification)

        lanes = [Lane(r, self.policy, record, self.backlog) for r in self.receivers]
        tasks = [asyncio.create_task(lane.run(), name=f"jax.notify.{lane.receiver.name}")
                 for lane in lanes]
        try:
            while True:
                await self._announce(consumer)
                for lane in lanes:
                    if lane.failed is not None:
                        raise lane.failed  # not recorded: restart from the last commit
                batches = await consumer.getmany(timeout_ms=500, max_records=50)
                for tp, msgs in batches.items():
                    for m in msgs:
                        notice = _notice(self.names.get(tp.topic, tp.topic), m.value)
                        entry = offsets.add(tp, m.offset, len(lanes) if notice else 0)
                        for lane in lanes if notice else []:
                            await lane.offer(notice, entry)  # type: ignore[arg-type]
                done = offsets.committable()
                if done:
                    await asyncio.wait_for(consumer.commit(done), self.timeout)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _announce(self, consumer: AIOKafkaConsumer) -> None:
        if not self.ready.is_set() and consumer.assignment():
            for tp in consumer.assignment():  # pin the start before announcing it
                # position() waits, 40 s at a time, for as long as none is found: bounded,
                # the stage restarts with a new consumer instead of never announcing
                await asyncio.wait_for(consumer.position(tp), self.timeout)
            self.ready.set()


@dataclass
class Offsets:
    """Per partition, the offsets read in order with the deliveries each still waits for;
    what may be committed is the position past the longest prefix with none left."""

    waiting: dict[TopicPartition, deque[list[int]]] = field(default_factory=dict)

    def add(self, tp: TopicPartition, offset: int, deliveries: int) -> list[int]:
        entry = [offset, deliveries]
        self.waiting.setdefault(tp, deque()).append(entry)
        return entry

    def committable(self) -> dict[TopicPartition, int]:
        done: dict[TopicPartition, int] = {}
        for tp, entries in self.waiting.items():
            while entries and entries[0][1] <= 0:
                done[tp] = entries.popleft()[0] + 1
        return done


Record = Callable[[Notification], Awaitable[None]]


class Lane:
    """One receiver's queue and task: its notifications in order, one at a time, so a
    receiver that hangs holds up only itself. Beyond `backlog` waiting, a notification is
    recorded failed at once rather than held."""

    def __init__(self, receiver: Receiver, policy: DeliveryPolicy, record: Record,
                 backlog: int = 1000) -> None:
        self.receiver = receiver
        self.policy = policy
        self.record = record
        self.queue: asyncio.Queue[tuple[Notice, list[int]]] = asyncio.Queue(backlog)
        self.failed: BaseException | None = None

    async def offer(self, notice: Notice, entry: list[int]) -> None:
        try:
            self.queue.put_nowait((notice, entry))
        except asyncio.QueueFull:
            log.warning("notify: %s is %d behind; %s recorded undelivered", self.receiver.name,
                        self.queue.qsize(), notice.kind.value)
            await self._recorded(record_of(notice, self.receiver, False, 1, None,
                                           "receiver backlog full", 0.0), entry)

    async def run(self) -> None:
        while True:
            notice, entry = await self.queue.get()
            await self._recorded(await deliver(notice, self.receiver, self.policy), entry)

    async def _recorded(self, notification: Notification, entry: list[int]) -> None:
        try:
            await self.record(notification)
        except Exception as exc:  # Kafka away: the stage restarts from its last commit
            self.failed = exc
            raise
        entry[1] -= 1


def _notice(topic: str, raw: bytes | None) -> Notice | None:
    try:
        event = json.loads(raw or b"")
    except ValueError:
        return None
    return notice_for(topic, event) if isinstance(event, dict) else None


class NotifyService(Service):
    """The stage as a mode service beside the worker's own (or alone)."""

    def __init__(self, stage: NotifyStage, closers: list[Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stage = stage
        self.closers = closers or []

    async def on_start(self) -> None:
        await self.stage.start()

    async def on_stop(self) -> None:
        await self.stage.stop()
        for close in self.closers:
            with contextlib.suppress(Exception):
                await close()


def build_notify(settings: Any, notify: NotifySettings | None = None,
                 slack_chat: Any = None) -> NotifyService | None:
    """The stage from settings (jax_exec.Settings + NOTIFY_*); None when nothing is configured."""
    from jax_exec.kafka_security import client_auth

    notify = notify or NotifySettings()
    client = httpx.AsyncClient()
    receivers: list[Receiver] = [WebhookReceiver(h, client) for h in notify.webhooks]
    receivers += [TeamsReceiver(h, client) for h in notify.teams]
    if notify.slack_channel:
        if slack_chat is None:
            from api.slack import SlackSettings, WebApiChat

            slack = SlackSettings()
            if slack.bot_token is not None:
                slack_chat = WebApiChat(slack.bot_token.get_secret_value(),
                                        notify.attempt_timeout_seconds)
        if slack_chat is not None:
            receivers.append(SlackReceiver(slack_chat, notify.slack_channel))
    if not receivers:
        return None
    stage = NotifyStage(settings.kafka_bootstrap, settings.topic, f"{settings.app_id}-notify",
                        receivers, DeliveryPolicy.of(notify),
                        auth=client_auth(settings, "worker"), backlog=notify.backlog)
    return NotifyService(stage, closers=[client.aclose])
