"""The notifications stage: orders (rejected, filled, partially filled, cancelled, expired),
refusals, kill-switch changes, automatic trips and reconciliation alerts, delivered to Slack and
to generic webhooks (JSON signed with HMAC-SHA256, see agents.decisions.notifications), each
retried with its own bounded backoff, each delivery recorded on `notifications`.

It never blocks trading: its own consumer group (APP_ID-notify), its own consumer and producer,
and a receiver that is down only delays the notifications (every attempt is bounded, the whole
delivery too). It starts at the end of the topics the first time (no flood of history), then
commits after each batch's deliveries are recorded (at-least-once: a crash re-notifies)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from mode import Service
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.decisions.notifications import NOTIFY_TOPICS, Notice, notice_for, sign_body, slack_text
from agents.kafka_auth import NO_AUTH, KafkaAuth
from schemas.events import Notification
from schemas.ids import derive_id

log = logging.getLogger(__name__)


class Webhook(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=8, max_length=2000)
    secret: SecretStr = Field(min_length=16)


class NotifySettings(BaseSettings):
    """NOTIFY_*: where notifications go and how hard delivery tries."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_prefix="NOTIFY_")

    webhooks: list[Webhook] = Field(default_factory=list, description=(
        'NOTIFY_WEBHOOKS: JSON [{"name": "ops", "url": "https://...", "secret": "..."}]'))
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


async def deliver(notice: Notice, receiver: Receiver, policy: DeliveryPolicy,
                  sleep: Callable[[float], Any] = asyncio.sleep) -> Notification:
    """Try within the policy; the record of how it ended (never raises)."""
    started = time.monotonic()
    attempt, status, error = 0, None, None
    for attempt in range(1, policy.attempts + 1):
        left = policy.total - (time.monotonic() - started)
        if left <= 0:
            break
        try:
            status = await asyncio.wait_for(receiver.send(notice, min(policy.attempt_timeout,
                                                                      left)), left)
            error = None
            break
        except Exception as exc:  # any failure of a receiver is retried, then recorded
            error = _describe(exc)
            if attempt < policy.attempts:
                await sleep(min(policy.delay(attempt),
                                max(policy.total - (time.monotonic() - started), 0)))
    delivered = error is None and attempt > 0
    if not delivered:
        log.warning("notification %s to %s failed after %d attempt(s): %s", notice.kind.value,
                    receiver.name, attempt, error)
    return Notification(
        event_id=derive_id("notification", notice.subject_event_id, notice.kind.value,
                           receiver.name),
        correlation_id=_uuid_or(notice), kind=notice.kind, channel=receiver.channel,
        target=receiver.name, subject_event_id=_uuid_or(notice),
        subject_topic=notice.subject_topic, title=notice.title[:500], delivered=delivered,
        attempts=max(attempt, 1), status_code=status, error=error,
        elapsed_seconds=round(time.monotonic() - started, 3))


def _uuid_or(notice: Notice) -> Any:
    try:
        import uuid

        return uuid.UUID(notice.subject_event_id)
    except ValueError:
        return derive_id("subject", notice.subject_event_id)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return (repr(exc) or type(exc).__name__)[:1000]


class NotifyStage:
    """The stage's loop over Kafka (own group), its receivers and its producer."""

    def __init__(self, bootstrap: str, topic: Callable[[str], str], group_id: str,
                 receivers: list[Receiver], policy: DeliveryPolicy,
                 auth: KafkaAuth = NO_AUTH, timeout: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.names = {topic(name): name for name in NOTIFY_TOPICS}
        self.group_id = group_id
        self.receivers = receivers
        self.policy = policy
        self.auth = auth
        self.timeout = timeout
        self.recorded: list[Notification] = []  # this process's deliveries (tests, metrics)
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jax.notify")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away: try again; trading is not concerned
                log.warning("notify stage: %r; restarting in 2s", exc)
                await asyncio.sleep(2.0)

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
        while True:
            if not self.ready.is_set() and consumer.assignment():
                for tp in consumer.assignment():  # pin the start before announcing it
                    await consumer.position(tp)
                self.ready.set()
            batches = await consumer.getmany(timeout_ms=500, max_records=50)
            notices = [n for tp, msgs in batches.items() for m in msgs
                       if (n := _notice(self.names.get(tp.topic, tp.topic), m.value))]
            if notices:
                records = await asyncio.gather(*(deliver(n, r, self.policy)
                                                 for n in notices for r in self.receivers))
                for record in records:
                    await asyncio.wait_for(producer.send_and_wait(
                        self.topic("notifications"), record.model_dump_json().encode(),
                        key=record.kafka_key), self.timeout)
                    self.recorded.append(record)
            if batches:
                await asyncio.wait_for(consumer.commit(), self.timeout)


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
                        auth=client_auth(settings, "operator"))
    return NotifyService(stage, closers=[client.aclose])
