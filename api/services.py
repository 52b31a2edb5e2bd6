"""What the API and the CLI do, once: decide on a signal (signed for the user), list signals
with the size each would get now, issue kill-switch commands, and check readiness. Each I/O
edge is a port (Publisher, SignalLookup, the venue, the gate) with a fake in the tests."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from agents.decisions.config import RiskSettings
from agents.decisions.decide import evaluate
from agents.decisions.instruments import InstrumentBook
from agents.decisions.reasons import Refusal
from agents.decisions.rollout import (
    LiveGrant,
    LiveGrants,
    PaperFigures,
    RolloutBook,
    RolloutReport,
    RolloutThresholds,
    fold,
    live_settings,
    rollout_report,
)
from agents.decisions.signatures import KeyRing, sign
from agents.kafka_auth import NO_AUTH, KafkaAuth
from agents.readback import partitions_of, read_all
from agents.sizing import count_recent
from agents.venue_view import VenueSnapshot, read_snapshot
from brokers.port import AccountKind, OrderService
from jax_exec.keys import KeyringError, signing_key
from schemas.events import (
    Approval,
    ControlAction,
    ControlCommand,
    Decision,
    Signal,
    TradingStateChanged,
)
from store.queries import Page, Queries, SignalRow

log = logging.getLogger(__name__)
RATE_WINDOW = timedelta(minutes=1)


class ServiceError(Exception):
    """A request the services refuse; `status` is the HTTP status the API answers with."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(ServiceError):
    status, title = 404, "Not found"


class Conflict(ServiceError):
    status, title = 409, "Conflict"


class Forbidden(ServiceError):
    status, title = 403, "Forbidden"


class Unavailable(ServiceError):
    status, title = 503, "Service unavailable"


# --- ports -------------------------------------------------------------------------------


class Publisher(Protocol):
    async def publish(self, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
        """Publish to a logical topic name; (partition, offset)."""
        ...


SignalLookup = Callable[[str, datetime | None], Awaitable[dict[str, Any] | None]]


class GateView(Protocol):
    """What the API reads of agents.control.TradingGate."""

    def unknown(self, stage: Any) -> Refusal | None: ...

    def blocked(self, symbol: str, strategy_id: str | None, stage: Any = "sizing"
                ) -> Refusal | None: ...

    @property
    def table(self) -> Any: ...


class KafkaPublisher:
    """One idempotent producer, started on first use, every send bounded."""

    def __init__(self, bootstrap: str, topic: Callable[[str], str], timeout: float,
                 auth: KafkaAuth = NO_AUTH) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout = timeout
        self.auth = auth
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                            enable_idempotence=True,
                                            request_timeout_ms=int(self.timeout * 1000),
                                            **self.auth.aiokafka_kwargs())
                await asyncio.wait_for(producer.start(), self.timeout)
                self._producer = producer
            return self._producer

    async def publish(self, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
        try:
            producer = await self._started()
            meta = await asyncio.wait_for(
                producer.send_and_wait(self.topic(topic), value=value, key=key), self.timeout)
        except (TimeoutError, OSError) as exc:
            raise Unavailable(f"Kafka at {self.bootstrap} did not take the message on "
                              f"{self.topic(topic)} within {self.timeout:g}s: {exc!r}") from exc
        return meta.partition, meta.offset

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()


async def find_published_signal(bootstrap: str, topic: str, signal_id: str,
                                around: datetime | None, within: float,
                                scan_limit: int = 10_000, auth: KafkaAuth = NO_AUTH
                                ) -> dict[str, Any] | None:
    """The signal exactly as its producer published it on `signals` (what an approval must
    carry: the ledger dates a signal without a time by its first sighting). `around` (its
    first sighting, the record's Kafka timestamp) makes this a seek, not a scan."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                **auth.aiokafka_kwargs())
    async with asyncio.timeout(within):
        await consumer.start()
        try:
            return await _scan(consumer, bootstrap, topic, signal_id, around, scan_limit, auth)
        finally:
            await consumer.stop()


async def _scan(consumer: AIOKafkaConsumer, bootstrap: str, topic: str, signal_id: str,
                around: datetime | None, scan_limit: int, auth: KafkaAuth
                ) -> dict[str, Any] | None:
    parts = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic, auth)]
    if not parts:
        return None
    consumer.assign(parts)
    ends = await consumer.end_offsets(parts)
    starts = dict.fromkeys(parts, 0)
    if around is not None:
        ms = int((around - timedelta(seconds=5)).timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(parts, ms))
        starts = {tp: (hit.offset if hit is not None else ends[tp]) for tp, hit in found.items()}
    for tp in parts:
        consumer.seek(tp, starts[tp])
    remaining = {tp: min(end, starts[tp] + scan_limit) for tp, end in ends.items()
                 if end > starts[tp]}
    match: dict[str, Any] | None = None
    while remaining:
        batches = await consumer.getmany(*remaining.keys(), timeout_ms=1000)
        for tp, messages in batches.items():
            for msg in messages:
                obj = _json(msg.value)
                if obj is not None and obj.get("id") == signal_id:
                    return obj
            if messages and messages[-1].offset + 1 >= remaining.get(tp, 0):
                remaining.pop(tp, None)
    return match


def _json(raw: bytes | None) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw or b"", parse_float=Decimal)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# --- decisions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """A signed decision as published."""

    approval_event_id: str
    correlation_id: str
    signal_id: str
    decision: str
    approved_by: str
    key_id: str
    decided_at: datetime
    expires_at: datetime
    reason: str | None
    topic: str
    partition: int
    offset: int


class DecisionService:
    """Approve or reject a signal as `user`: signed with the user's own key (JAX_HOME/keys),
    published on `approvals`. The approver is who asks, never a field of the request."""

    def __init__(self, settings: Any, publisher: Publisher, lookup: SignalLookup,
                 approval_ttl: timedelta,
                 queries: Queries | None = None, risk: RiskSettings | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.publisher = publisher
        self.lookup = lookup
        self.approval_ttl = approval_ttl
        self.queries = queries
        self.risk = risk
        self.clock = clock

    async def decide(self, signal_id: str, decision: Decision, user: str,
                     reason: str | None) -> Decided:
        now = self.clock()
        first_seen = await self._check_ledger(signal_id, decision, now)
        signal = await self.lookup(signal_id, first_seen)
        if signal is None:
            raise NotFound(f"no signal {signal_id!r} on `signals`: publish it first (an "
                           "approval must name a signal the pipeline has seen)")
        try:
            key = signing_key(self.settings.jax_home, user, self.settings.approval_keyring)
        except KeyringError as exc:
            raise Forbidden(f"{user} has no usable approval key: {exc}; run `jax-exec users "
                            f"add {user} --role approver` (it makes the key)") from exc
        expires = now + self.approval_ttl
        body = {"signal": signal, "decision": decision.value, "approved_by": user,
                "decided_at": now, "expires_at": expires, "reason": reason}
        signed = sign(body, key.private_key, key.key_id)
        approval = Approval.model_validate(signed)
        partition, offset = await self.publisher.publish(
            "approvals", approval.kafka_key, json.dumps(signed).encode())
        log.warning("approval %s: %s signal %s by %s (key %s)", approval.event_id,
                    decision.value, signal_id, user, key.key_id)
        return Decided(str(approval.event_id), str(approval.correlation_id), signal_id,
                       decision.value, user, key.key_id, now, expires, reason,
                       self.settings.topic("approvals"), partition, offset)

    async def _check_ledger(self, signal_id: str, decision: Decision,
                            now: datetime) -> datetime | None:
        """With the store: 404 for a signal never seen valid, 409 for one decided already or
        (to approve) expired. The pipeline refuses these too; this says so at once."""
        if self.queries is None:
            return None
        ttl = self.risk.signal_ttl_seconds if self.risk else 3600
        page = await self.queries.signals(None, now, int(ttl), signal_id=signal_id, limit=1)
        if not page.items:
            raise NotFound(f"no valid signal {signal_id!r} has been seen on `signals` (or the "
                           "audit store has not stored it yet)")
        row = page.items[0]
        if row.status in ("approved", "rejected"):
            raise Conflict(f"signal {signal_id} was already {row.status} by "
                           f"{', '.join(row.decided_by)} at {row.decided_at}; a signal is "
                           "decided once", signal_status=row.status)
        if row.status == "expired" and decision is Decision.APPROVED:
            raise Conflict(f"signal {signal_id} expired at {row.expires_at.isoformat()}; it "
                           "can no longer become an order", signal_status=row.status)
        return row.first_seen_at


# --- signals with their size now ---------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What a pending signal would get if approved now."""

    quantity: Decimal | None
    binding: str | None  # the limit that decides: a sizing bound, or the refusal's code
    message: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GrantsUnknown:
    """Go-live decisions that could not be read: a live account is refused, as in sizing."""

    why: str

    def grant(self, account_id: str) -> LiveGrant | None:
        return None

    def unavailable(self) -> str | None:
        return self.why


class SignalService:
    """Signals by status from the store; pending ones sized against the venue now, a live
    account at its go-live grant's ramp (`grants`: the worker's reader when the API runs in
    it; else `read_grants` reads the `rollout` topic when a live account is previewed)."""

    def __init__(self, queries: Queries, risk: RiskSettings, venue: OrderService | None,
                 gate: GateView | None, timeout: float,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), *,
                 grants: LiveGrants | None = None,
                 read_grants: BookReader | None = None) -> None:
        self.queries = queries
        self.risk = risk
        self.venue = venue
        self.gate = gate
        self.timeout = timeout
        self.clock = clock
        self.grants = grants
        self.read_grants = read_grants
        self.instruments = InstrumentBook.coerce(None, risk)

    async def list(self, status: Any, limit: int, cursor: Any = None, symbol: str | None = None,
                   strategy: str | None = None
                   ) -> tuple[Page[SignalRow], dict[str, Preview]]:
        now = self.clock()
        page = await self.queries.signals(status, now, int(self.risk.signal_ttl_seconds),
                                          symbol=symbol, strategy=strategy, limit=limit,
                                          cursor=cursor)
        pending = [r for r in page.items if r.status == "pending"]
        previews: dict[str, Preview] = {}
        if pending:
            snap, why = await self._snapshot(now)
            grants = await self._grants(snap, now)
            for row in pending:
                previews[row.signal_id] = self.preview(row, snap, why, now, grants)
        return page, previews

    async def _grants(self, snap: VenueSnapshot | None, now: datetime) -> LiveGrants | None:
        """The go-live decisions, read only when a live account needs them."""
        live = snap is not None and snap.account is not None and \
            snap.account.kind is AccountKind.LIVE
        if self.grants is not None or not live or self.read_grants is None:
            return self.grants
        try:
            async with asyncio.timeout(self.timeout):
                return await self.read_grants(now)
        except Exception as exc:  # the preview says why, as sizing would refuse
            return GrantsUnknown(f"the go-live decisions could not be read: {exc!r}")

    async def _snapshot(self, now: datetime) -> tuple[VenueSnapshot | None, str | None]:
        if self.venue is None:
            return None, "no venue connection in this process"
        try:
            async with asyncio.timeout(self.timeout):
                return await read_snapshot(self.venue, now - RATE_WINDOW, now), None
        except Exception as exc:  # the list still answers; the size says why it is missing
            return None, f"the venue could not be read: {exc!r}"

    def preview(self, row: SignalRow, snap: VenueSnapshot | None, why: str | None,
                now: datetime, grants: LiveGrants | None = None) -> Preview:
        """`evaluate` as the sizing stage runs it, on an approval that would be made now: a
        live account only with a go-live grant, at its ramp (LIVE_NOT_GRANTED otherwise)."""
        if self.gate is not None:
            blocked = self.gate.blocked(row.symbol, row.strategy_id)
            if blocked is not None:
                return Preview(None, str(blocked.code), blocked.message)
        if snap is None or snap.account is None:
            return Preview(None, None, why)
        signal = Signal.model_validate({
            "id": row.signal_id, "symbol": row.symbol, "signal_type": row.side,
            "entry_price": row.entry_price, "stop_loss": row.stop_loss,
            "take_profit": row.take_profit, "confidence": row.confidence,
            "strategy_id": row.strategy_id, "ttl_seconds": row.ttl_seconds,
            "occurred_at": row.signal_at})
        approval = Approval.model_validate({
            "signal": signal, "decision": "approved", "approved_by": "preview",
            "decided_at": now})
        risk = live_settings(snap.account, self.risk, grants or self.grants)
        if isinstance(risk, Refusal):
            return Preview(None, str(risk.code), risk.message)
        recent = count_recent(snap.sent, now - RATE_WINDOW)
        outcome = evaluate(approval, snap.account, snap.positions, snap.open_orders, recent,
                           now, risk, self.instruments)
        if isinstance(outcome, Refusal):
            return Preview(None, str(outcome.code), outcome.message)
        figures = outcome.figures.model_dump(mode="json")
        return Preview(outcome.quantity, outcome.figures.bound_by.value, None, figures)


# --- the kill switch ---------------------------------------------------------------------


class ControlService:
    """Kill-switch commands on `control`, issued by the user (recorded as issued_by)."""

    def __init__(self, publisher: Publisher, gate: GateView | None) -> None:
        self.publisher = publisher
        self.gate = gate

    async def issue(self, action: ControlAction, user: str, reason: str,
                    symbol: str | None, strategy: str | None) -> tuple[ControlCommand, int]:
        try:
            command = ControlCommand.model_validate({
                "command": action, "issued_by": user, "reason": reason, "symbol": symbol,
                "strategy_id": strategy, "occurred_at": datetime.now(UTC).isoformat()})
        except ValueError as exc:
            raise ServiceError(str(exc).splitlines()[-1] if str(exc) else repr(exc)) from exc
        _, offset = await self.publisher.publish("control", command.kafka_key,
                                                 command.model_dump_json().encode())
        log.warning("control %s %s by %s: %s", action.value, command.scope, user, reason)
        return command, offset

    def states(self) -> list[TradingStateChanged]:
        if self.gate is None:
            raise Unavailable("the trading state is not read in this process")
        unknown = self.gate.unknown("sizing")
        if unknown is not None:
            raise Unavailable(unknown.message)
        return list(self.gate.table.rows())


# --- readiness ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: dict[str, Any]


CheckFn = Callable[[], Awaitable[Check]]


class Readiness:
    """Each part checked within the deadline; not ready names the parts that failed."""

    def __init__(self, checks: dict[str, CheckFn], timeout: float) -> None:
        self.checks = checks
        self.timeout = timeout

    async def run(self) -> dict[str, Check]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._one(self.checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def _one(self, check: CheckFn) -> Check:
        try:
            async with asyncio.timeout(self.timeout):
                return await check()
        except TimeoutError:
            return Check(False, {"error": f"no answer within {self.timeout:g}s"})
        except Exception as exc:  # a failing check is an answer, not a crash
            return Check(False, {"error": f"{type(exc).__name__}: {exc}"[:500]})


def kafka_check(bootstrap: str, topic: str, auth: KafkaAuth = NO_AUTH) -> CheckFn:
    async def check() -> Check:
        parts = await partitions_of(bootstrap, topic, auth)
        return Check(bool(parts), {"bootstrap": bootstrap, "topic": topic,
                                   "partitions": len(parts)})
    return check


def clickhouse_check(ch: Any) -> CheckFn:
    async def check() -> Check:
        rows = await ch.query("SELECT 1 AS ok")
        return Check(rows == [{"ok": 1}], {"dsn": ch.dsn.split("@")[-1]})
    return check


def venue_check(venue: OrderService | None) -> CheckFn:
    async def check() -> Check:
        if venue is None:
            return Check(False, {"error": "no venue connection in this process"})
        account = await venue.account()
        return Check(True, {"venue": venue.venue, "account": account.account_id})
    return check


def audit_check(writer: Any, max_lag: float) -> CheckFn:
    async def check() -> Check:
        if writer is None:
            return Check(True, {"note": "the audit sink runs in another process"})
        stats = writer.stats
        detail = {name: getattr(stats, name) for name in (
            "buffered_rows", "oldest_buffered_seconds", "last_flush_seconds", "rows_written",
            "last_error")}
        return Check(stats.oldest_buffered_seconds <= max_lag, detail)
    return check


def trading_check(gate: GateView | None) -> CheckFn:
    async def check() -> Check:
        if gate is None:
            return Check(False, {"error": "the trading state is not read in this process"})
        unknown = gate.unknown("sizing")
        if unknown is not None:
            return Check(False, {"error": unknown.message})
        account = gate.table.mode_of("account")
        scopes = {s.scope: s.mode.value for s in gate.table.rows()}
        return Check(True, {"account": account.value, "scopes": scopes})
    return check


# --- the rollout gate --------------------------------------------------------------------

FiguresReader = Callable[[datetime | None, datetime | None, str | None],
                         Awaitable[PaperFigures]]
BookReader = Callable[[datetime], Awaitable[RolloutBook]]


class RolloutService:
    """The paper period judged against ROLLOUT_* thresholds, and the live grants in force
    (read-only: decisions are signed with an admin's key by `jax-exec rollout`)."""

    def __init__(self, figures: FiguresReader, book: BookReader,
                 thresholds: RolloutThresholds,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.figures = figures
        self.book = book
        self.thresholds = thresholds
        self.clock = clock

    async def report(self, since: datetime | None, until: datetime | None,
                     account: str | None) -> RolloutReport:
        return rollout_report(await self.figures(since, until, account), self.thresholds)

    async def grants(self) -> RolloutBook:
        return await self.book(self.clock())


def store_figures(queries: Queries) -> FiguresReader:
    """The paper period's figures from ClickHouse (store.queries.paper_period)."""
    from store.queries import paper_period

    async def read(since: datetime | None, until: datetime | None,
                   account: str | None) -> PaperFigures:
        period = await paper_period(queries.ch, since, until, account)
        return PaperFigures(**asdict(period))
    return read


def kafka_book(bootstrap: str, topic: str, keyring: Callable[[], KeyRing],
               thresholds: RolloutThresholds, auth: KafkaAuth = NO_AUTH) -> BookReader:
    """Every signed decision on `rollout` (a small topic), read at each call and folded."""
    async def read(now: datetime) -> RolloutBook:
        raws: list[bytes] = []
        try:
            await read_all(bootstrap, topic, lambda obj: raws.append(json.dumps(obj).encode()),
                           auth)
        except (TimeoutError, OSError, KafkaError) as exc:
            raise Unavailable(f"{topic} could not be read from Kafka at {bootstrap}: "
                              f"{exc!r}") from exc
        return fold(raws, keyring(), thresholds, now)
    return read


def rollout_service(settings: Any, queries: Queries) -> RolloutService:
    """The rollout service of a process with `settings` (jax_exec.settings.Settings)."""
    from jax_exec.kafka_security import client_auth
    from jax_exec.keys import keyring_path, load_keyring

    def keyring() -> KeyRing:
        path = keyring_path(settings.jax_home, settings.approval_keyring)
        return load_keyring(path) if path.exists() else KeyRing()

    thresholds = RolloutThresholds()
    return RolloutService(store_figures(queries), kafka_book(
        settings.kafka_bootstrap, settings.topic("rollout"), keyring, thresholds,
        client_auth(settings, "operator")), thresholds)
