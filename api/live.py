"""Live updates for the web page: one background aiokafka consumer (no group, from the end)
tails orders, fills, rejections, trading-state, signals and alerts, and fans each event out to
the page's server-sent-event streams. Nothing polls ClickHouse; a slow browser is cut off
(its queue is bounded) and reconnects, never holding the consumer back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from mode import Service

from agents.background import Restarting
from agents.kafka_auth import NO_AUTH, KafkaAuth

log = logging.getLogger(__name__)

LIVE_TOPICS = ("orders", "fills", "rejections", "trading-state", "signals", "alerts")
QUEUE_SIZE = 1000  # events a browser may fall behind by before it is cut off
HEARTBEAT_SECONDS = 15.0  # an SSE comment line, so proxies keep the stream open
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # backoff after the consumer fails, capped at the last


@dataclass(frozen=True)
class LiveEvent:
    topic: str  # logical name (no prefix)
    data: dict[str, Any]

    def sse(self) -> bytes:
        """One server-sent event: `event: <topic>` and the JSON on one data line."""
        return f"event: {self.topic}\ndata: {json.dumps(self.data)}\n\n".encode()


@dataclass
class LiveFeed:
    """The fan-out hub. `publish` is what the consumer calls; `subscribe` is one browser."""

    queue_size: int = QUEUE_SIZE
    _subscribers: set[asyncio.Queue[LiveEvent | None]] = field(default_factory=set)
    delivered: int = 0
    dropped_subscribers: int = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event: LiveEvent) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
                self.delivered += 1
            except asyncio.QueueFull:  # too slow: cut it off; its EventSource reconnects
                self._subscribers.discard(queue)
                self.dropped_subscribers += 1
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    async def subscribe(self, heartbeat: float = HEARTBEAT_SECONDS) -> AsyncIterator[bytes]:
        """The SSE byte stream of one client, until it goes away or is cut off."""
        queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(self.queue_size)
        self._subscribers.add(queue)
        try:
            yield b": connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), heartbeat)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event is None:
                    return
                yield event.sse()
        finally:
            self._subscribers.discard(queue)


class KafkaTail:
    """The background consumer: group-less, starts at the end of each topic, restarts with
    backoff when Kafka fails; every call bounded by `timeout`."""

    def __init__(self, feed: LiveFeed, bootstrap: str, topic: Callable[[str], str],
                 topics: tuple[str, ...] = LIVE_TOPICS, auth: KafkaAuth = NO_AUTH,
                 timeout: float = 30.0) -> None:
        self.feed = feed
        self.bootstrap = bootstrap
        self.names = {topic(name): name for name in topics}
        self.auth = auth
        self.timeout = timeout
        self.ready = asyncio.Event()  # set once the consumer has its positions
        self.consumed = 0
        # Kafka away: the page shows stale data, not an error
        self._task = Restarting("jax.api.live", self._consume, delays=RETRY_SECONDS)

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(*self.names, bootstrap_servers=self.bootstrap,
                                    group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="latest", fetch_max_wait_ms=100,
                                    request_timeout_ms=int(self.timeout * 1000),
                                    **self.auth.aiokafka_kwargs())
        await asyncio.wait_for(consumer.start(), self.timeout)
        try:
            self.ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, messages in batches.items():
                    for msg in messages:
                        self._forward(self.names.get(tp.topic, tp.topic), msg.value)
        finally:
            self.ready.clear()
            await consumer.stop()

    def _forward(self, topic: str, raw: bytes | None) -> None:
        try:
            data = json.loads(raw or b"")
        except ValueError:
            return  # the validation stage dead-letters it; the page has nothing to show
        if isinstance(data, dict):
            self.consumed += 1
            self.feed.publish(LiveEvent(topic, data))


class LiveApiService(Service):
    """The embedded API with its live feed: the Kafka tail starts before the API serves and
    stops after it (mode service, passed to the faust Worker after the worker's resources)."""

    def __init__(self, api: Service, tail: KafkaTail, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api = api
        self.tail = tail

    async def on_start(self) -> None:
        await self.tail.start()
        await self.api.start()

    async def on_stop(self) -> None:
        await self.api.stop()
        await self.tail.stop()


def attach_live(api_service: Any, settings: Any) -> Service:
    """api.server.ApiService -> the same with a live feed for the page (`/api/v1/stream`), fed
    by a group-less consumer authenticated as the operator. Idempotent."""
    from jax_exec.kafka_security import client_auth

    if isinstance(api_service, LiveApiService):
        return api_service
    services = api_service.server.services
    if services.live is None:
        services.live = LiveFeed()
    tail = KafkaTail(services.live, settings.kafka_bootstrap, settings.topic,
                     auth=client_auth(settings, "operator"))
    return LiveApiService(api_service, tail)
