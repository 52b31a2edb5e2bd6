"""The faust app: one agent per stage, concurrency 1, at-least-once.

Agents are thin: bytes in, a pure-ish handler, events out. Nothing escapes an agent: an
exception there would ack (skip) the message, so every failure becomes a dead-letter record
with the raw bytes and the reason, and the next message still flows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError
from faust.streams import Stream
from pydantic import ValidationError

from agents import metrics
from agents.codec import MAX_MESSAGE_BYTES, DecodeError, encode
from agents.context import Output, Source, StageContext, utc_now
from agents.kafka_auth import NO_AUTH, KafkaAuth
from agents.reconciliation import Reconciler, handle_order_event
from agents.sizing import handle_approval
from agents.submission import handle_intent
from agents.validation import handle_signal
from brokers.exceptions import TransientBrokerError
from schemas.events import DeadLetter, Event
from schemas.topics import TOPICS

log = logging.getLogger(__name__)

STAGES = ("validation", "sizing", "submission", "reconciliation", "control", "audit")
Handler = Callable[[bytes | None, Source, StageContext], Awaitable[list[Output]]]


@dataclass
class Pipeline:
    """Everything the agents of one worker process need, built by the entry point."""

    bootstrap: str
    topic_prefix: str
    ctx: StageContext | None = None
    reconciler: Reconciler | None = None
    reconcile_interval: float = 0.5
    writer: Any = None  # store.writer.AuditWriter when this process runs the audit stage
    audit_batch_rows: int = 50_000
    audit_batch_seconds: float = 0.5
    audit_group: str = "jax-audit-sink"  # the audit sink's consumer group (kafka_acls.sink_group)
    audit_sink: Any = None  # agents.audit_sink.AuditSink, once the audit stage is built
    ticker: Callable[[], None] | None = None  # advances the in-process simulator
    tick_seconds: float = 0.0
    session_timeout: float = 10.0  # Kafka consumer group session, seconds
    trips: Any = None  # agents.control.TripSettings when this process runs the control stage
    auth: KafkaAuth = NO_AUTH  # how this process authenticates to Kafka (SASL or none)

    def physical(self, topic: str) -> str:
        return f"{self.topic_prefix}{topic}"

    def logical(self, topic: str) -> str:
        return topic.removeprefix(self.topic_prefix)


def faust_broker(bootstrap: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def faust_datadir() -> str:
    """Where faust keeps its per-app directory: nothing durable (tables are in memory), so the
    system temp directory, not `<app id>-data` in whatever directory the worker started in.
    APP_DATADIR, faust's own setting, still wins."""
    if env := os.environ.get("APP_DATADIR"):
        return env
    parent = Path(tempfile.gettempdir()) / f"jax-faust-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)  # faust makes only the last level
    return str(parent / "{conf.name}-data")


def build_app(app_id: str, pipeline: Pipeline, stages: Iterable[str], web_port: int | None = None
              ) -> faust.App:
    stages = set(stages)
    unknown = stages - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; choose from {STAGES}")
    app = faust.App(
        app_id,
        broker=faust_broker(pipeline.bootstrap),
        broker_credentials=pipeline.auth.faust_credentials(),
        store="memory://",
        processing_guarantee="at_least_once",
        topic_allow_declare=False,  # topics come from schemas.topics, created by jax-exec
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        # A worker that died (SIGKILL, a lost host) holds its partitions until its session
        # times out: keep that short so another worker, or its restart, takes over quickly.
        broker_session_timeout=pipeline.session_timeout,
        broker_heartbeat_interval=max(pipeline.session_timeout / 5, 0.5),
        # Stopping must not wait for a message stuck on a venue call: it is not committed, so
        # it is processed again at the next start.
        stream_wait_empty=False,
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_bind=os.environ.get("WEB_HOST", "127.0.0.1"),  # compose: 0.0.0.0
        autodiscover=False,
        datadir=faust_datadir(),
    )
    emitter = Emitter(app, pipeline)
    handlers: dict[str, tuple[str, Handler]] = {
        "validation": ("signals", handle_signal),
        "sizing": ("approvals", handle_approval),
        "submission": ("order-intents", handle_intent),
    }
    for stage, (topic, handler) in handlers.items():
        if stage in stages:
            _stage_agent(app, emitter, pipeline, stage, topic, handler)
    if stages & {"sizing", "submission"}:
        _read_afresh_when_partitions_move(app, pipeline)
    if "reconciliation" in stages:
        _reconciliation(app, emitter, pipeline)
    if "audit" in stages:
        _audit(app, pipeline)
    if "control" in stages:
        from agents.control import register_control

        register_control(app, emitter, pipeline, pipeline.trips)
    if pipeline.ticker is not None and pipeline.tick_seconds > 0:
        _sim_clock(app, pipeline)
    if not metrics.faust_consumes(app):  # faust would have no topic to subscribe
        app.boot_strategy = app.BootStrategy(app, enable_kafka_consumer=False)
    return app


class Emitter:
    """Sends events keyed by correlation id and waits for the broker's acknowledgement, so a
    failed send is retried here (the input offset does not move meanwhile) and never lost."""

    def __init__(self, app: faust.App, pipeline: Pipeline) -> None:
        self.topics = {
            spec.name: app.topic(pipeline.physical(spec.name), value_serializer="raw",
                                 key_serializer="raw")
            for spec in TOPICS
        }
        self.max_wait = 10.0

    async def send(self, topic: str, event: Event) -> None:
        await self.send_all([(topic, event)])

    async def send_all(self, outputs: Iterable[Output]) -> None:
        await self.deliver(list(outputs), None, None)

    async def deliver(self, outputs: list[Output], source: Source | None,
                      raw: bytes | None) -> None:
        """Send every output and wait until the broker has them all. An output too large for
        a Kafka record becomes a dead-letter record that references its input; a broker that
        refuses or is away is retried with backoff (events have derived ids, so a repeat is
        recognised downstream)."""
        encoded = [_fit(topic, event, source, raw) for topic, event in outputs]
        delay = 0.2
        while True:
            try:
                acks = [await self.topics[topic].send(key=key, value=value)
                        for topic, key, value in encoded]
                await asyncio.gather(*acks)
                return
            except (KafkaError, OSError) as exc:
                log.warning("sending %d event(s) failed (%r); retrying in %.1fs",
                            len(encoded), exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_wait)


def _fit(topic: str, event: Event, source: Source | None,
         raw: bytes | None) -> tuple[str, bytes, bytes]:
    """The record to send; one that exceeds the record limit is replaced by a dead-letter."""
    value = encode(event)
    if len(value) <= MAX_MESSAGE_BYTES:
        return topic, event.kafka_key, value
    kind = getattr(event, "event_type", type(event).__name__)
    reason = (f"output {kind} {event.event_id} for {topic} is {len(value)} bytes, over the "
              f"{MAX_MESSAGE_BYTES}-byte record limit; not sent")
    src = source or Source(topic, -1, -1)
    dead = DeadLetter.of(raw or b"", src.topic, src.partition, src.offset, reason)
    return "dead-letter", dead.kafka_key, encode(dead)


async def run_handler(handler: Handler, raw: bytes | None, source: Source,
                      ctx: StageContext) -> list[Output]:
    """Run a stage handler so that nothing escapes: every failure is a dead-letter record.
    A transient venue failure that a handler lets through is retried by the one policy
    (handlers are idempotent); if the venue stays away the input is dead-lettered with why."""
    try:
        return await ctx.retry.call(lambda: handler(raw, source, ctx))
    except DecodeError as exc:
        reason = f"undecodable: {exc}"
    except ValidationError as exc:
        reason = f"does not match the {source.topic} schema: {_short(exc)}"
    except TransientBrokerError as exc:
        reason = f"venue unavailable after {ctx.retry.attempts} attempts: {exc}"
    except Exception as exc:
        log.exception("stage failed on %s[%d]@%d", source.topic, source.partition, source.offset)
        reason = f"internal error {type(exc).__name__}: {exc}"
    dead = DeadLetter.of(raw or b"", source.topic, source.partition, source.offset, reason)
    return [("dead-letter", dead)]


def _kafka_time(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def _short(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors()[:5]
    )


def _stage_agent(app: faust.App, emitter: Emitter, pipeline: Pipeline, stage: str, topic: str,
                 handler: Handler) -> None:
    ctx = pipeline.ctx
    assert ctx is not None, f"stage {stage} needs a StageContext"
    channel = app.topic(pipeline.physical(topic), value_serializer="raw", key_serializer="raw")

    async def agent(stream: faust.StreamT) -> None:
        # Acked by hand once delivered: faust acks an auto-acked event when its iterator is
        # closed, so a stop that cancels a handler mid-call would commit (lose) the message.
        manual = cast(Stream, stream).noack()  # noack is on the concrete Stream only
        async for event in manual.events():
            msg = event.message
            source = Source(topic, msg.partition, msg.offset, _kafka_time(msg.timestamp))
            outputs = await metrics.stage(stage, source, event.key,
                                          run_handler(handler, event.value, source, ctx))
            await emitter.deliver(outputs, source, event.value)
            await manual.ack(event)

    app.agent(channel, name=f"jax.{stage}", concurrency=1)(agent)


def _read_afresh_when_partitions_move(app: faust.App, pipeline: Pipeline) -> None:
    ctx = pipeline.ctx
    assert ctx is not None, "sizing and submission need a StageContext"

    @app.on_partitions_assigned.connect
    async def moved(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        ctx.partitions_moved()
        log.info("partitions assigned: the next venue snapshots are full reads, asked afresh")


def _reconciliation(app: faust.App, emitter: Emitter, pipeline: Pipeline) -> None:
    reconciler, ctx = pipeline.reconciler, pipeline.ctx
    assert reconciler is not None, "reconciliation needs a Reconciler"
    assert ctx is not None, "reconciliation needs a StageContext"

    async def watch(raw: bytes | None, source: Source, c: StageContext) -> list[Output]:
        return await handle_order_event(raw, source, c, reconciler)

    _stage_agent(app, emitter, pipeline, "reconciliation", "orders", watch)

    started = False

    @app.timer(pipeline.reconcile_interval, name="jax.reconciliation.poll")
    async def poll() -> None:
        # The first pass is the full start-up reconciliation; a pass that fails publishes and
        # advances nothing, so the next one sees the same fills again.
        nonlocal started
        try:
            now = utc_now()
            result = await (reconciler.poll(now) if started else reconciler.start_up(now))
        except TransientBrokerError as exc:
            log.warning("reconciliation: venue unavailable (%s); next poll retries", exc)
            return
        except Exception:
            log.exception("reconciliation poll failed; next poll retries")
            return
        await emitter.send_all(result.outputs)
        metrics.count_outputs("reconciliation", result.outputs)
        result.commit()
        started = True


def _sim_clock(app: faust.App, pipeline: Pipeline) -> None:
    ticker = pipeline.ticker
    assert ticker is not None

    @app.timer(pipeline.tick_seconds, name="jax.sim.clock")
    async def tick() -> None:
        try:
            ticker()
        except Exception:
            log.exception("simulator clock step failed")


def _audit(app: faust.App, pipeline: Pipeline) -> None:
    """Every event of every topic into ClickHouse, by the audit sink (agents/audit_sink.py: an
    aiokafka consumer of its own, not a faust agent); offsets are committed only after the
    insert."""
    from aiokafka import AIOKafkaConsumer

    from agents.audit_sink import AuditSink

    writer = pipeline.writer
    assert writer is not None, "the audit stage needs an AuditWriter"
    session_ms = int(pipeline.session_timeout * 1000)

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=pipeline.bootstrap, group_id=pipeline.audit_group,
            client_id=pipeline.audit_group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 5, 500),
            max_partition_fetch_bytes=4 << 20, request_timeout_ms=30_000,
            **pipeline.auth.aiokafka_kwargs())

    sink = pipeline.audit_sink = AuditSink(
        writer, consumer, [pipeline.physical(s.name) for s in TOPICS],
        logical=pipeline.logical, physical=pipeline.physical)

    @app.task
    async def audit() -> None:
        await sink.run()

    @app.on_before_shutdown.connect
    async def stopping(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # before faust cancels the task: the last batch stored and committed, within bounds
        await sink.close(within=sink.call_seconds + pipeline.audit_batch_seconds + 5)
