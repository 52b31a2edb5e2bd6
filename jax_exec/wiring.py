"""Build one worker process from settings: venue, ClickHouse, reconciler, the faust app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import faust
from mode import Service

from agents import metrics
from agents.app import STAGES, Pipeline, build_app
from agents.context import NoVenue, StageContext
from agents.control import TradingGate, TripSettings
from agents.decision_memory import DecisionMemory
from agents.decisions.config import RiskSettings
from agents.decisions.ledger import SignalLedger
from agents.decisions.live import check_account_mode
from agents.decisions.reservations import ReservationBook
from agents.decisions.rollout import RolloutThresholds
from agents.decisions.signatures import KeyRing
from agents.reconciliation import Reconciler
from agents.reconciliation_seed import seed_reconciler
from agents.retry import RetryPolicy
from agents.rollout_reader import RolloutReader
from brokers import registry
from brokers.bounded import BoundedVenue
from brokers.pacing import PUBLISHED, PacedVenue
from brokers.port import OrderService
from jax_exec.kafka_acls import sink_group, stage_principal
from jax_exec.kafka_security import client_auth
from jax_exec.keys import keyring_path, load_keyring
from jax_exec.settings import Settings
from jax_exec.topics_admin import ensure_topics

log = logging.getLogger(__name__)

# Stages that talk to the venue; a process running none of them (validation, audit) opens none.
VENUE_STAGES = frozenset({"sizing", "submission", "reconciliation", "control"})
# Stages that read the signal ledger and the recent decisions before they consume anything.
DECIDING_STAGES = frozenset({"validation", "sizing"})


def load_approval_keyring(settings: Settings) -> KeyRing:
    """The public keys (and upstream HMAC secrets) approvals are verified with; none (every
    approval refused) when the keyring file does not exist."""
    path = keyring_path(settings.jax_home, settings.approval_keyring)
    if not path.exists():
        log.warning("no approval keyring at %s: every approval will be refused", path)
        return KeyRing()
    return load_keyring(path)


@dataclass
class Venue:
    service: OrderService
    description: str = ""  # the plugin's banner line: where it connects
    closers: list[Callable[[], Any]] = field(default_factory=list)


def build_venue(settings: Settings, venue_settings: Any = None) -> Venue:
    """The venue VENUE names, built by its plugin from its own settings (read from the
    environment unless given: `jax-exec run` points them at the simulator's door), every call
    of it bounded by VENUE_TIMEOUT_SECONDS."""
    venue = _venue(settings, venue_settings)
    service: OrderService = BoundedVenue(venue.service, settings.venue_timeout_seconds,
                                         observe=metrics.venue_call)
    # Paced outside the deadline: time queued for the venue's message limit is not a timeout.
    venue.service = PacedVenue.published(service) if service.venue in PUBLISHED else service
    return venue


def _venue(settings: Settings, venue_settings: Any) -> Venue:
    plugin = registry.plugin(settings.venue)
    config = venue_settings if venue_settings is not None else plugin.settings()
    return Venue(plugin.build(config, settings.venue_timeout_seconds),
                 description=plugin.describe(config))


class Resources(Service):
    """Closes what the worker opened, after faust has stopped consuming."""

    def __init__(self, closers: list[Callable[[], Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.closers = closers

    async def on_stop(self) -> None:
        for close in reversed(self.closers):
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("closing %r failed", close)


@dataclass
class Worker:
    app: faust.App
    resources: Resources
    venue: Venue | None
    pipeline: Pipeline


def app_id_for(settings: Settings, stages: Iterable[str]) -> str:
    """One consumer group per stage set, so stages can run as separate processes."""
    chosen = sorted(set(stages))
    if chosen == sorted(STAGES):
        return settings.app_id
    return f"{settings.app_id}-{'-'.join(chosen)}"


async def build_worker(settings: Settings, stages: Iterable[str], risk: RiskSettings | None = None,
                       venue_settings: Any = None, web_port: int | None = None,
                       closers: list[Callable[[], Any]] | None = None) -> Worker:
    """Everything async a worker needs before faust starts: topics, venue, store, seeds."""
    stages = set(stages)
    risk = risk or RiskSettings()
    auth = client_auth(settings, stage_principal(stages))  # one stage: its own principal
    await ensure_topics(settings.kafka_bootstrap, settings.topic_prefix, auth=auth)
    venue: Venue | None = None
    closers = list(closers or [])
    if stages & VENUE_STAGES:
        venue = build_venue(settings, venue_settings)
        closers.append(venue.service.close)
        policy = RetryPolicy(attempts=settings.venue_retry_attempts,
                             total_seconds=settings.venue_retry_seconds)
        await policy.call(venue.service.connect)
        account = await policy.call(venue.service.account)
        check_account_mode(account.account_id, account.kind, risk)
    book = ReservationBook(ttl=timedelta(seconds=settings.reservation_ttl_seconds))
    keyring = load_approval_keyring(settings)
    ledger = SignalLedger()
    gate = None
    if stages & {"sizing", "submission", "control"}:
        gate = TradingGate(settings.kafka_bootstrap, settings.topic, auth=auth)
        await gate.start()
        closers.append(gate.stop)
    grants = None
    if "sizing" in stages:  # a live account sizes only on a signed go-live (never fails start)
        grants = RolloutReader(settings.kafka_bootstrap, settings.topic, keyring,
                               RolloutThresholds(), auth=auth)
        await grants.start()
        closers.append(grants.stop)
    if stages & DECIDING_STAGES:
        memory = DecisionMemory(settings.kafka_bootstrap, book, ledger, settings.topic,
                                auth=auth)
        await memory.start()
        closers.append(memory.stop)
    pipeline = Pipeline(
        bootstrap=settings.kafka_bootstrap, topic_prefix=settings.topic_prefix,
        ctx=StageContext(risk=risk, venue=venue.service if venue else cast(OrderService, NoVenue()),
                         retry=RetryPolicy(attempts=settings.venue_retry_attempts,
                                           total_seconds=settings.venue_retry_seconds),
                         book=book, ledger=ledger, keyring=keyring, gate=gate, grants=grants,
                         signal_grace=timedelta(seconds=settings.signal_grace_seconds),
                         snapshot_max_age=timedelta(seconds=settings.venue_snapshot_seconds),
                         lookback=timedelta(hours=settings.reconcile_lookback_hours)),
        reconcile_interval=settings.reconcile_interval_seconds,
        session_timeout=settings.kafka_session_timeout_seconds,
        trips=TripSettings() if "control" in stages else None,
        audit_batch_rows=settings.audit_batch_rows,
        audit_batch_seconds=settings.audit_batch_seconds,
        audit_group=sink_group(settings.app_id),
        auth=auth,
    )
    assert pipeline.ctx is not None
    closers.append(pipeline.ctx.rules.close)  # its refreshes stop before the venue closes
    if "reconciliation" in stages:
        assert venue is not None
        pipeline.reconciler = Reconciler(
            venue.service, lookback=timedelta(hours=settings.reconcile_lookback_hours),
            commission_grace=timedelta(seconds=settings.reconcile_commission_grace_seconds))
        await seed_reconciler(pipeline.reconciler, settings.kafka_bootstrap, settings.topic,
                              auth=auth)
    if "audit" in stages:
        pipeline.writer = await open_writer(settings, closers)
    app = build_app(app_id_for(settings, stages), pipeline, stages, web_port=web_port)
    metrics.watch(app, pipeline)  # lag, audit sink, trading state, read at each scrape
    if web_port is not None and pipeline.writer is not None:
        from jax_exec.web import add_pages

        add_pages(app, pipeline.writer)
    return Worker(app, Resources(closers), venue, pipeline)


async def open_writer(settings: Settings, closers: list[Callable[[], Any]]) -> Any:
    from store.client import ClickHouse
    from store.migrate import migrate
    from store.writer import AuditWriter

    clickhouse = await ClickHouse(settings.clickhouse_dsn).open()
    closers.append(clickhouse.close)
    await migrate(clickhouse)
    return AuditWriter(clickhouse, max_batch_rows=settings.audit_batch_rows,
                       max_batch_seconds=settings.audit_batch_seconds)
