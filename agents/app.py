"""The faust app: one agent per stage, concurrency 1, at-least-once.

Agents are thin: bytes in, a pure-ish handler, events out. Nothing escapes an agent: an
exception there would ack (skip) the message, so every failure becomes a dead-letter record
with the raw bytes and the reason, and the next message still flows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.streams import Stream
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from agents.codec import DecodeError, encode
from agents.context import Output, Source, StageContext, utc_now
from agents.reconciliation import Reconciler, handle_order_event
from agents.sizing import handle_approval
from agents.submission import handle_intent
from agents.validation import handle_signal
from brokers.exceptions import TransientBrokerError
from schemas.events import DeadLetter, Event
from schemas.topics import TOPICS

log = logging.getLogger(__name__)

STAGES = ("validation", "sizing", "submission", "reconciliation", "audit")
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
    audit_batch_rows: int = 5000
    audit_batch_seconds: float = 1.0
    ticker: Callable[[], None] | None = None  # advances the in-process simulator
    tick_seconds: float = 0.0
    transient_retry_seconds: float = 60.0

    def physical(self, topic: str) -> str:
        return f"{self.topic_prefix}{topic}"

    def logical(self, topic: str) -> str:
        return topic.removeprefix(self.topic_prefix)


def faust_broker(bootstrap: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def build_app(app_id: str, pipeline: Pipeline, stages: Iterable[str], web_port: int | None = None
              ) -> faust.App:
    stages = set(stages)
    unknown = stages - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; choose from {STAGES}")
    app = faust.App(
        app_id,
        broker=faust_broker(pipeline.bootstrap),
        store="memory://",
        processing_guarantee="at_least_once",
        topic_allow_declare=False,  # topics come from schemas.topics, created by jax-exec
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_bind="127.0.0.1",
        autodiscover=False,
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
    if "reconciliation" in stages:
        _reconciliation(app, emitter, pipeline)
    if "audit" in stages:
        _audit(app, pipeline)
    if pipeline.ticker is not None and pipeline.tick_seconds > 0:
        _sim_clock(app, pipeline)
    return app


class Emitter:
    """Sends events keyed by correlation id; faust flushes them before input offsets commit."""

    def __init__(self, app: faust.App, pipeline: Pipeline) -> None:
        self.topics = {
            spec.name: app.topic(pipeline.physical(spec.name), value_serializer="raw",
                                 key_serializer="raw")
            for spec in TOPICS
        }

    async def send(self, topic: str, event: Event) -> None:
        await self.topics[topic].send(key=event.kafka_key, value=encode(event))

    async def send_all(self, outputs: Iterable[Output]) -> None:
        for topic, event in outputs:
            await self.send(topic, event)


async def run_handler(handler: Handler, raw: bytes | None, source: Source, ctx: StageContext,
                      retry_seconds: float) -> list[Output]:
    """Run a stage handler so that nothing escapes: every failure is a dead-letter record."""
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(retry_seconds), wait=wait_exponential(multiplier=0.5, max=10),
            retry=retry_if_exception_type(TransientBrokerError), reraise=True,
        ):
            with attempt:
                return await handler(raw, source, ctx)
    except DecodeError as exc:
        reason = f"undecodable: {exc}"
    except ValidationError as exc:
        reason = f"does not match the {source.topic} schema: {_short(exc)}"
    except TransientBrokerError as exc:
        reason = f"venue unavailable for {retry_seconds:.0f}s: {exc}"
    except Exception as exc:
        log.exception("stage failed on %s[%d]@%d", source.topic, source.partition, source.offset)
        reason = f"internal error {type(exc).__name__}: {exc}"
    dead = DeadLetter.of(raw or b"", source.topic, source.partition, source.offset, reason)
    return [("dead-letter", dead)]


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
        async for event in stream.events():
            msg = event.message
            source = Source(topic, msg.partition, msg.offset)
            outputs = await run_handler(handler, event.value, source, ctx,
                                        pipeline.transient_retry_seconds)
            await emitter.send_all(outputs)

    app.agent(channel, name=f"jax.{stage}", concurrency=1)(agent)


def _reconciliation(app: faust.App, emitter: Emitter, pipeline: Pipeline) -> None:
    reconciler, ctx = pipeline.reconciler, pipeline.ctx
    assert reconciler is not None, "reconciliation needs a Reconciler"
    assert ctx is not None, "reconciliation needs a StageContext"

    async def watch(raw: bytes | None, source: Source, c: StageContext) -> list[Output]:
        return await handle_order_event(raw, source, c, reconciler)

    _stage_agent(app, emitter, pipeline, "reconciliation", "orders", watch)

    @app.timer(pipeline.reconcile_interval, name="jax.reconciliation.poll")
    async def poll() -> None:
        try:
            outputs = await reconciler.poll(utc_now())
        except TransientBrokerError as exc:
            log.warning("reconciliation: venue unavailable (%s); next poll retries", exc)
            return
        except Exception:
            log.exception("reconciliation poll failed; next poll retries")
            return
        await emitter.send_all(outputs)


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
    """Every event of every topic into ClickHouse; offsets are acked only after the insert."""
    from store.writer import EventRecord

    writer = pipeline.writer
    assert writer is not None, "the audit stage needs an AuditWriter"
    channel = app.topic(*[pipeline.physical(s.name) for s in TOPICS], value_serializer="raw",
                        key_serializer="raw")

    async def audit(stream: faust.StreamT) -> None:
        # noack_take is on the concrete Stream only (StreamT lacks it): batches acked by hand.
        concrete = cast(Stream, stream)
        async for batch in concrete.noack_take(pipeline.audit_batch_rows,
                                             within=pipeline.audit_batch_seconds):
            for event in batch:
                msg = event.message
                writer.add(EventRecord(
                    topic=pipeline.logical(msg.topic), partition=msg.partition,
                    offset=msg.offset, key=msg.key, value=msg.value or b"",
                    timestamp=msg.timestamp,
                ))
            await _flush_until_stored(writer)
            for event in batch:
                await stream.ack(event)

    app.agent(channel, name="jax.audit", concurrency=1)(audit)

    @app.on_partitions_assigned.connect
    async def reassigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Another audit worker may have stored these partitions meanwhile: re-read before adding.
        assigned = args[0] if args else kwargs.get("assigned", set())
        writer.forget([(pipeline.logical(tp.topic), tp.partition) for tp in assigned])


async def _flush_until_stored(writer: Any, max_wait: float = 30.0) -> None:
    """Back-pressure, not loss: while ClickHouse refuses, the sink waits and retries, holding
    its offsets; the batch is never acked unstored and never escapes the agent."""
    from store.exceptions import StoreError

    delay = 0.5
    while True:
        try:
            await writer.flush()
            return
        except StoreError as exc:
            log.warning("audit: ClickHouse insert failed (%s); retrying in %.1fs", exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_wait)
