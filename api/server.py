"""Serve the API: embedded in the worker's asyncio loop (the process that owns embedded
ClickHouse shares its client, venue, trading gate and audit writer), or standalone
(`jax-exec api`, for a ClickHouse server or a test's own chdb path)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import uvicorn
from mode import Service

from agents.decisions.config import RiskSettings
from api.app import Services, create_app
from api.services import (
    ControlService,
    DecisionService,
    KafkaPublisher,
    Publisher,
    Readiness,
    SignalLookup,
    SignalService,
    audit_check,
    clickhouse_check,
    find_published_signal,
    kafka_check,
    rollout_service,
    trading_check,
    venue_check,
)
from api.settings import ApiSettings
from api.users import UserStore
from brokers.port import OrderService
from jax_exec.settings import Settings
from store.queries import Queries

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn inside someone else's loop: the host process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def build_services(settings: Settings, api: ApiSettings, risk: RiskSettings, *,
                   clickhouse: Any, venue: OrderService | None, gate: Any,
                   writer: Any = None, publisher: Publisher | None = None,
                   lookup: SignalLookup | None = None, grants: Any = None
                   ) -> tuple[Services, list[Any]]:
    """The services over what the host process already has; returns what to close."""
    from jax_exec.kafka_security import client_auth

    closers: list[Any] = []
    upstream, operator = client_auth(settings, "upstream"), client_auth(settings, "operator")
    approvals, control = publisher, publisher
    if publisher is None:  # approvals as an upstream producer, commands as an operator
        approvals = KafkaPublisher(settings.kafka_bootstrap, settings.topic,
                                   api.timeout_seconds, upstream)
        control = KafkaPublisher(settings.kafka_bootstrap, settings.topic, api.timeout_seconds,
                                 operator)
        closers += [approvals.close, control.close]
    assert approvals is not None
    assert control is not None
    queries = Queries(clickhouse)

    async def from_kafka(signal_id: str, around: Any) -> dict[str, Any] | None:
        return await find_published_signal(settings.kafka_bootstrap, settings.topic("signals"),
                                           signal_id, around, api.timeout_seconds,
                                           auth=upstream)

    readiness = Readiness({
        "kafka": kafka_check(settings.kafka_bootstrap, settings.topic("control"), operator),
        "clickhouse": clickhouse_check(clickhouse),
        "venue": venue_check(venue),
        "audit": audit_check(writer, api.ready_max_audit_lag_seconds),
        "trading": trading_check(gate),
    }, api.timeout_seconds)
    services = Services(
        users=UserStore.under(settings.jax_home),
        queries=queries,
        decisions=DecisionService(settings, approvals, lookup or from_kafka,
                                  timedelta(seconds=api.approval_ttl_seconds), queries, risk),
        # A live account's preview sizes at its go-live grant: the worker's reader when the
        # API runs in the worker, else the `rollout` topic read when a live account shows.
        signals=SignalService(queries, risk, venue, gate, api.timeout_seconds, grants=grants,
                              read_grants=None if grants is not None
                              else rollout_service(settings, queries).book),
        control=ControlService(control, gate),
        readiness=readiness,
        venue=venue,
        timeout=api.timeout_seconds,
    )
    from api.slack import SlackSettings, slack_for

    services.slack = slack_for(SlackSettings(), settings.jax_home, services.decisions.decide,
                               services.users)
    return services, closers


@dataclass
class ApiServer:
    """One uvicorn server for `services`; `serve()` runs until `stop()`."""

    services: Services
    host: str
    port: int
    closers: list[Any] = field(default_factory=list)
    quiet: bool = True  # True inside a host process: no signal handlers of its own
    _server: uvicorn.Server | None = None

    def __post_init__(self) -> None:
        config = uvicorn.Config(create_app(self.services), host=self.host, port=self.port,
                                log_level="warning", lifespan="off", access_log=False)
        self._server = (_QuietServer if self.quiet else uvicorn.Server)(config)

    @property
    def started(self) -> bool:
        return bool(self._server and self._server.started)

    @property
    def bound_port(self) -> int:
        """The port listened on (the real one when `port` was 0)."""
        assert self._server is not None
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.port

    async def serve(self) -> None:
        assert self._server is not None
        try:
            await self._server.serve()
        finally:
            await self._close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    async def _close(self) -> None:
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:
                log.exception("closing %r failed", close)


def embedded(settings: Settings, risk: RiskSettings, *, clickhouse: Any,
             venue: OrderService | None, gate: Any, writer: Any,
             api: ApiSettings | None = None, grants: Any = None) -> ApiServer:
    """The API inside the worker that owns ClickHouse: run `serve()` as a task in its loop,
    call `stop()` (then await the task) before the worker closes ClickHouse."""
    api = api or ApiSettings()
    services, closers = build_services(settings, api, risk, clickhouse=clickhouse,
                                       venue=venue, gate=gate, writer=writer, grants=grants)
    return ApiServer(services, api.host, api.port, closers)


async def serve_standalone(settings: Settings, api: ApiSettings, risk: RiskSettings) -> None:
    """`jax-exec api`: its own ClickHouse client, venue connection (client id + 10) and
    trading gate; uvicorn handles SIGINT/SIGTERM."""
    import os

    from agents.control import TradingGate
    from jax_exec.kafka_security import client_auth
    from jax_exec.wiring import build_venue
    from store.client import ClickHouse

    clickhouse = await ClickHouse(settings.clickhouse_dsn).open()
    # The worker holds IB_CLIENT_ID: this process's own IB session takes another id.
    client_id = api.venue_client_id if api.venue_client_id is not None else \
        int(os.environ.get("IB_CLIENT_ID", "1")) + 10
    os.environ["IB_CLIENT_ID"] = str(client_id)
    venue = build_venue(settings).service
    try:
        await asyncio.wait_for(venue.connect(), api.timeout_seconds)
    except Exception as exc:  # /ready reports it; the next venue call reconnects
        log.warning("venue not connected at start: %r", exc)
    gate = TradingGate(settings.kafka_bootstrap, settings.topic,
                       auth=client_auth(settings, "operator"))
    await gate.start()
    services, closers = build_services(settings, api, risk, clickhouse=clickhouse, venue=venue,
                                       gate=gate)
    server = ApiServer(services, api.host, api.port,
                       [clickhouse.close, venue.close, gate.stop, *closers], quiet=False)
    await server.serve()


class ApiService(Service):
    """The embedded API as a mode service beside the worker's own: started with it, stopped
    before the worker's resources (ClickHouse, the venue) close."""

    def __init__(self, server: ApiServer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server = server
        self._task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(), name="jax.api")

    async def on_stop(self) -> None:
        self.server.stop()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5.0)
