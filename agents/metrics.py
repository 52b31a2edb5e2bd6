"""Prometheus metrics of every process: registration, the small functions stages call, and the
HTTP endpoint (/metrics, /health) that METRICS_PORT turns on.

Names and meanings are listed in the README ("Running at scale"). Hooks elsewhere are one call
each: `stage()` around a stage handler, `count_outputs()` for what a timer emits,
`venue_call()` around each venue call, `watch()` once the faust app is built, `mark_ready()`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agents.gc_pauses import measure_pauses

log = logging.getLogger(__name__)
T = TypeVar("T")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
E2E_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

MESSAGES_IN = Counter("jax_stage_messages_in", "Messages a stage consumed", ["stage"])
MESSAGES_OUT = Counter("jax_stage_messages_out", "Events a stage emitted, by topic",
                       ["stage", "topic"])
REFUSED = Counter("jax_stage_refused", "Inputs a stage refused (a Rejection event)", ["stage"])
DEAD_LETTERED = Counter("jax_stage_dead_lettered", "Inputs a stage dead-lettered", ["stage"])
DECISION_SECONDS = Histogram("jax_stage_decision_seconds",
                             "Time a stage's handler took for one input (venue calls included)",
                             ["stage"], buckets=LATENCY_BUCKETS)
END_TO_END_SECONDS = Histogram(
    "jax_stage_end_to_end_seconds",
    "From the input's Kafka timestamp to the stage's outputs being ready (queueing included)",
    ["stage"], buckets=E2E_BUCKETS)
VENUE_CALLS = Counter("jax_venue_calls", "Venue calls by operation", ["venue", "operation"])
VENUE_ERRORS = Counter("jax_venue_errors", "Venue calls that failed or timed out",
                       ["venue", "operation", "error"])
VENUE_SNAPSHOTS = Counter(
    "jax_venue_snapshots", "Venue snapshots read (agents.venue_view), by kind: full (the "
    "look-back's orders whole) or merged (the orders created since the last read)", ["kind"])
VENUE_SECONDS = Histogram("jax_venue_call_seconds", "Venue call latency by operation",
                          ["venue", "operation"], buckets=LATENCY_BUCKETS)
ALERTS = Counter("jax_alerts", "Alerts raised (reconciliation, venue), by kind", ["kind"])
READY = Gauge("jax_ready", "1 once the process serves (worker: partitions assigned)",
              ["component"])
INFO = Gauge("jax_process_info", "Which component this process is", ["component"])

TRADING_MODES = ("ACTIVE", "REDUCE_ONLY", "HALTED", "FLATTEN")


# -- the hooks -----------------------------------------------------------------------------


async def stage(name: str, source: Any, key: bytes | None, call: Awaitable[list[Any]]) -> list[Any]:
    """Around one stage handler: the input counted, the correlation id (the record key) bound
    to the log context, the handler timed, its outputs counted by kind."""
    from jax_exec.logging_setup import correlation

    MESSAGES_IN.labels(name).inc()
    started = time.monotonic()
    with correlation(_key_text(key)):
        outputs = await call
    DECISION_SECONDS.labels(name).observe(time.monotonic() - started)
    kafka_time = getattr(source, "timestamp", None)
    if kafka_time is not None:
        END_TO_END_SECONDS.labels(name).observe(max(0.0, time.time() - kafka_time.timestamp()))
    count_outputs(name, outputs)
    return outputs


def count_outputs(name: str, outputs: Iterable[tuple[str, Any]]) -> None:
    for topic, event in outputs:
        MESSAGES_OUT.labels(name, topic).inc()
        if topic == "rejections":
            REFUSED.labels(name).inc()
        elif topic == "dead-letter":
            DEAD_LETTERED.labels(name).inc()
        elif topic == "alerts":
            ALERTS.labels(str(getattr(getattr(event, "kind", ""), "value", "unknown"))).inc()


async def venue_call(venue: str, operation: str, call: Awaitable[T]) -> T:
    """Around one venue call: counted, timed, its failure counted by exception type."""
    VENUE_CALLS.labels(venue, operation).inc()
    started = time.monotonic()
    try:
        return await call
    except BaseException as exc:  # counted, then re-raised untouched (cancellation too)
        VENUE_ERRORS.labels(venue, operation, type(exc).__name__).inc()
        raise
    finally:
        VENUE_SECONDS.labels(venue, operation).observe(time.monotonic() - started)


def mark_ready(component: str, ready: bool = True) -> None:
    READY.labels(component).set(1 if ready else 0)
    _HEALTH["ready"] = ready


def _key_text(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return key.hex()


# -- collectors read at scrape time --------------------------------------------------------


class WorkerCollector(Collector):
    """Consumer lag per topic/partition, audit sink lag, trading state: read from the running
    faust app and pipeline at each scrape, never stored twice."""

    def __init__(self, app: Any, pipeline: Any) -> None:
        self.app = app
        self.pipeline = pipeline

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield from self._lag()
        yield from self._audit()
        yield from self._trading()

    def _lag(self) -> Iterable[GaugeMetricFamily]:
        lag = GaugeMetricFamily("jax_consumer_lag", "Records not yet committed by this worker's "
                                "consumer group, per assigned topic/partition",
                                labels=["topic", "partition"])
        for topic, partition, value in consumer_lag(self.app, self.pipeline):
            lag.add_metric([topic, str(partition)], value)
        yield lag

    def _audit(self) -> Iterable[GaugeMetricFamily]:
        writer = getattr(self.pipeline, "writer", None)
        if writer is None:
            return
        stats = writer.stats
        yield GaugeMetricFamily("jax_audit_buffered_rows", "Rows waiting for the next insert",
                                value=float(stats.buffered_rows or 0))
        yield GaugeMetricFamily("jax_audit_lag_seconds", "Age of the oldest row not yet stored",
                                value=float(stats.oldest_buffered_seconds or 0))
        yield GaugeMetricFamily("jax_audit_rows_written", "Rows stored in ClickHouse",
                                value=float(stats.rows_written or 0))

    def _trading(self) -> Iterable[GaugeMetricFamily]:
        ctx = getattr(self.pipeline, "ctx", None)
        gate = getattr(ctx, "gate", None)
        if gate is None:
            return
        family = GaugeMetricFamily("jax_trading_state", "1 for each scope's current trading mode "
                                   "(kill switch); no row: ACTIVE", labels=["scope", "mode"])
        for row in gate.table.rows():
            mode = str(getattr(row.mode, "value", row.mode))
            for known in TRADING_MODES:
                family.add_metric([row.scope, known], 1.0 if mode.upper() == known else 0.0)
        yield family


def faust_consumes(app: Any) -> bool:
    """Whether the worker's faust app runs a consumer: only with agents (an audit-only worker
    has none; its audit sink consumes by itself)."""
    return bool(app.agents)


def consumer_lag(app: Any, pipeline: Any) -> list[tuple[str, int, int]]:
    """(logical topic, partition, highwater - committed) for each assigned partition: faust's
    consumer's, then the audit sink's (an audit-only worker starts no faust consumer)."""
    sink = getattr(pipeline, "audit_sink", None)
    own = sink.lag() if sink is not None else []
    try:
        consumer = app.consumer
        assigned = consumer.assignment() if faust_consumes(app) else set()
    except Exception:  # not started yet
        return own
    out = []
    for tp in sorted(assigned):
        try:
            high = consumer.highwater(tp)
            committed = consumer._committed_offset.get(tp)  # faust's own bookkeeping
        except (AttributeError, KeyError):  # faust internals moved: no figure, not a crash
            high, committed = None, None
        if high is None:
            continue
        done = (committed + 1) if committed is not None else 0
        out.append((pipeline.logical(tp.topic), tp.partition, max(0, int(high) - done)))
    return out + own


def watch(app: Any, pipeline: Any, component: str = "worker") -> None:
    """Register the worker's scrape-time collector once (a second worker in the same process,
    a test, replaces the first)."""
    global _COLLECTOR
    if _COLLECTOR is not None:
        REGISTRY.unregister(_COLLECTOR)
    _COLLECTOR = WorkerCollector(app, pipeline)
    REGISTRY.register(_COLLECTOR)
    INFO.labels(component).set(1)
    READY.labels(component).set(0)
    measure_pauses()


_COLLECTOR: WorkerCollector | None = None
_HEALTH: dict[str, Any] = {"status": "ok", "ready": False}
# What the process depends on, asked at each /health and /ready: name -> {"ok": bool, ...}
Checks = Callable[[], dict[str, dict[str, Any]]]
_CHECKS: list[Checks] = []


def add_checks(checks: Checks) -> None:
    """Readiness also needs every check `checks()` returns to be ok (the simulator's door)."""
    _CHECKS.append(checks)


def health() -> dict[str, Any]:
    """The /health and /ready answer: the process's own flag and each dependency's check."""
    body = dict(_HEALTH)
    found: dict[str, dict[str, Any]] = {}
    for source in list(_CHECKS):
        try:
            found.update(source())
        except Exception as exc:  # a broken check reads as not ready, never as a 500
            found[getattr(source, "__name__", "check")] = {"ok": False, "detail": repr(exc)}
    if found:
        body["checks"] = found
        body["ready"] = bool(body.get("ready")) and all(c.get("ok") for c in found.values())
    return body


# -- the endpoint ----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/metrics":
            body, kind, code = generate_latest(REGISTRY), CONTENT_TYPE_LATEST, 200
        elif path in ("/health", "/ready"):
            answer = health()
            code = 200 if path == "/health" or answer["ready"] else 503
            body, kind = json.dumps(answer, default=str).encode(), "application/json"
        else:
            body, kind, code = b"not found\n", "text/plain", 404
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        return


def serve(port: int, host: str = "127.0.0.1", component: str = "process") -> ThreadingHTTPServer:
    """/metrics and /health on host:port in a daemon thread (port 0: any free port)."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    _HEALTH["component"] = component
    if not component.startswith(("worker", "run")):  # a worker is ready once it consumes
        _HEALTH["ready"] = True
    if component == "sim":  # ready once its door listens (brokers/sim/metrics.py)
        from brokers.sim.metrics import checks

        add_checks(checks)
    INFO.labels(component).set(1)
    measure_pauses()
    threading.Thread(target=server.serve_forever, name="jax-metrics", daemon=True).start()
    return server


def serve_from_env(component: str, environ: dict[str, str] | None = None
                   ) -> ThreadingHTTPServer | None:
    """METRICS_PORT set: serve on METRICS_HOST (default 127.0.0.1; compose sets 0.0.0.0)."""
    env = os.environ if environ is None else environ
    port = env.get("METRICS_PORT", "").strip()
    if not port:
        return None
    return serve(int(port), env.get("METRICS_HOST", "127.0.0.1"), component)

