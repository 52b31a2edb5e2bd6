"""The kill switch: the control stage, the trading gate every trading stage asks, and the
automatic trips.

- `TradingGate`: every worker that sizes or submits reads the compacted `trading-state` topic
  from the beginning before it consumes anything (`ready`), then tails it, so a command takes
  effect on every worker as soon as its state event arrives. Until ready, or while the topic
  cannot be read (no answer from the broker for `stale_after`), it refuses everything with
  TRADING_STATE_UNKNOWN: a worker that cannot know the state does not trade.
- The control stage consumes `control` (one partition: commands apply in the order given),
  turns each command into the scope's new state (agents.decisions.trading_state, pure) and
  publishes it on `trading-state` keyed by scope. FLATTEN publishes FLATTENING, cancels the
  scope's open orders, closes its positions with market orders marked as liquidation (client
  ids derived from the command, so a redelivered FLATTEN places nothing twice), then
  publishes HALTED with what it did.
- The trip monitor (same stage) watches `rejections`, `alerts` and the venue's account P&L and
  publishes a ControlCommand issued by `auto:<trigger>` when a trip fires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.codec import DecodeError, decode_object
from agents.context import Output, Source, utc_now
from agents.decisions import trading_state as ts
from agents.decisions.reasons import Refusal, Stage
from agents.kafka_auth import NO_AUTH, KafkaAuth
from agents.orders import is_ours, order_event
from agents.readback import follow, partitions_of, read_to
from agents.retry import Attempts, RetryPolicy
from brokers.exceptions import (
    BrokerError,
    DuplicateClientOrderId,
    NotCancellable,
    TransientBrokerError,
    UnknownOrder,
)
from brokers.port import OrderReport, OrderRequest, OrderService, Position
from schemas.events import (
    Alert,
    AlertKind,
    ControlAction,
    ControlCommand,
    DeadLetter,
    OrderEvent,
    OrderIntent,
    OrderStatus,
    OrderType,
    Rejection,
    Side,
    TimeInForce,
    TradingMode,
    TradingStateChanged,
)

if TYPE_CHECKING:
    import faust

    from agents.app import Emitter, Pipeline

log = logging.getLogger(__name__)
E = TypeVar("E", Rejection, Alert)

LIQUIDATION = "liquidation"  # reason_code of a FLATTEN's market orders
FLATTEN_CANCEL = "flatten"  # reason_code of the cancellations a FLATTEN makes
SOURCE = "control"


class TripSettings(BaseSettings):
    """Automatic trips (TRIP_* environment variables); 0 or `off` disables one."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False,
                                      env_prefix="TRIP_")

    daily_loss_limit: Decimal | None = Field(
        None, gt=0, description="Loss (realized today + unrealized, from the venue's account) "
        "at which the daily-loss trip fires (empty = off)")
    daily_loss_action: Literal["halt", "flatten"] = Field(
        "halt", description="What the daily-loss trip does: halt, or flatten (then halted)")
    daily_loss_interval_seconds: float = Field(
        5.0, gt=0, description="How often the account's P&L is read for the daily-loss trip")
    venue_failures: int = Field(
        5, ge=0, description="Consecutive VENUE_UNAVAILABLE rejections that halt (0 = off)")
    venue_failures_gap_seconds: float = Field(
        300.0, gt=0, description="A longer pause between two failures breaks the run")
    # Off by default: a burst of limit refusals is the limits working, not a fault.
    rejection_burst: int = Field(
        0, ge=0, description="Rejections within TRIP_REJECTION_BURST_SECONDS that halt (0 = off)")
    rejection_burst_seconds: float = Field(60.0, gt=0, description="The burst window")
    mismatch_action: Literal["halt", "off"] = Field(
        "halt", description="On a reconciliation alert external_order or position_mismatch")
    event_max_age_seconds: float = Field(
        300.0, gt=0, description="Rejections and alerts older than this never trip (history)")
    flatten_settle_seconds: float = Field(
        30.0, gt=0, description="How long a FLATTEN waits for its market orders to fill")

    @field_validator("daily_loss_limit", mode="before")
    @classmethod
    def _blank_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


# ---------------------------------------------------------------- the gate


class TradingGate:
    """The latched trading state, read from `trading-state` (compacted) and tailed.

    `check` is pure over the current table; `admit` also reads the position from the venue
    when (and only when) a REDUCE_ONLY state applies."""

    def __init__(self, bootstrap: str, topic: Callable[[str], str], timeout: float = 30.0,
                 stale_after: float = 10.0, auth: KafkaAuth = NO_AUTH) -> None:
        self.bootstrap = bootstrap
        self.auth = auth
        self.topic = topic("trading-state")
        self.timeout = timeout
        self.stale_after = stale_after
        self.table = ts.TradingTable()
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()  # set on every change (tests and the CLI wait on it)
        self._consumer: AIOKafkaConsumer | None = None
        self._parts: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._confirmed = 0.0  # wall time (s) the topic was last known to be read to its end

    async def start(self) -> None:
        """Read every state there is, then tail; `ready` once read to the end."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_wait_ms=200, **self.auth.aiokafka_kwargs())
        await asyncio.wait_for(consumer.start(), self.timeout)
        self._consumer = consumer
        self._parts = [TopicPartition(self.topic, p)
                       for p in await partitions_of(self.bootstrap, self.topic, self.auth)]
        if not self._parts:
            await consumer.stop()
            raise RuntimeError(f"topic {self.topic} does not exist: run `jax-exec topics`")
        consumer.assign(self._parts)
        await consumer.seek_to_beginning(*self._parts)
        ends = await asyncio.wait_for(consumer.end_offsets(self._parts), self.timeout)
        remaining = {tp: end for tp, end in ends.items() if end > 0}
        async with asyncio.timeout(self.timeout):
            read = await read_to(consumer, remaining, self._feed_record)
        self._confirmed = time.time()
        log.info("trading gate: %d state events read; %s", read,
                 ", ".join(f"{s.scope}={s.mode}" for s in self.table.rows()) or "all active")
        self.ready.set()
        self._task = asyncio.create_task(self._tail(), name="jax.trading-gate")

    async def _tail(self) -> None:
        assert self._consumer is not None
        await follow(self._consumer, self._feed_record, "trading gate")

    def _feed_record(self, topic: str, raw: bytes | None) -> int:
        return self._feed(raw)

    def _feed(self, raw: bytes | None) -> int:
        if raw is None:
            return 0  # a tombstone: compaction's business, no state
        try:
            event = TradingStateChanged.model_validate_json(raw)
        except (ValidationError, ValueError):
            log.warning("trading gate: undecodable state record skipped")
            return 0
        self.observe(event)
        return 1

    def observe(self, event: TradingStateChanged) -> None:
        """Apply a state event (tailed, or just published by this process's control stage)."""
        if self.table.observe(event):
            log.warning("trading state: %s is %s (by %s: %s)", event.scope, event.mode.value,
                        event.issued_by, event.reason)
            self.changed.set()

    def _last_read(self) -> float:
        """When the broker last answered a fetch of the topic (wall seconds)."""
        consumer, last = self._consumer, self._confirmed
        if consumer is None:
            return last
        for tp in self._parts:
            polled = consumer.last_poll_timestamp(tp)
            if polled is not None:
                last = max(last, polled / 1000)
        return last

    def unknown(self, stage: Stage) -> Refusal | None:
        """TRADING_STATE_UNKNOWN while the state is not (or no longer) known."""
        if not self.ready.is_set():
            return ts.unknown_refusal(stage, f"{self.topic} has not been read to its end yet")
        age = time.time() - self._last_read()
        if age > self.stale_after:
            return ts.unknown_refusal(stage, f"{self.topic} unread for {age:.1f}s (limit "
                                             f"{self.stale_after:g}s)")
        return None

    def blocked(self, symbol: str, strategy_id: str | None, stage: Stage = "sizing"
                ) -> Refusal | None:
        """The check that needs no order: unknown state, HALTED or FLATTENING (before reading
        the venue at all)."""
        unknown = self.unknown(stage)
        if unknown is not None:
            return unknown
        state = self.table.effective(symbol, strategy_id)
        if state is None or state.mode in (TradingMode.ACTIVE, TradingMode.REDUCE_ONLY):
            return None
        return ts.halted_refusal(state, stage)

    def check(self, symbol: str, strategy_id: str | None, side: Side, quantity: Decimal,
              position_quantity: Decimal | None, stage: Stage = "sizing",
              **details: object) -> Refusal | None:
        """May this order go? `position_quantity`: the signed quantity held in `symbol` (only
        REDUCE_ONLY reads it). `details` are added to a refusal (e.g. client_order_id)."""
        refusal = self.unknown(stage) or ts.check(
            self.table, symbol, strategy_id, side, quantity, position_quantity, stage)
        return _with(refusal, details)

    def needs_position(self, symbol: str, strategy_id: str | None) -> bool:
        state = self.table.effective(symbol, strategy_id)
        return state is not None and state.mode is TradingMode.REDUCE_ONLY

    async def admit(self, symbol: str, strategy_id: str | None, side: Side, quantity: Decimal,
                    position: Callable[[], Awaitable[Decimal | None]],
                    stage: Stage = "submission",
                    **details: object) -> Refusal | None:
        """`check`, reading the position (`await position()`) only under REDUCE_ONLY."""
        held = await position() if self.needs_position(symbol, strategy_id) else None
        return self.check(symbol, strategy_id, side, quantity, held, stage, **details)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


def _with(refusal: Refusal | None, details: dict[str, object]) -> Refusal | None:
    if refusal is None or not details:
        return refusal
    extra = {k: str(v) for k, v in details.items() if v is not None}
    return Refusal(refusal.code, refusal.message, {**refusal.details, **extra}, refusal.stage)


def net_position(positions: Iterable[Position], symbol: str) -> Decimal:
    """The signed quantity held in one symbol."""
    return sum((p.quantity for p in positions if p.symbol == symbol), Decimal(0))


async def venue_position(venue: OrderService, symbol: str, retry: RetryPolicy) -> Decimal:
    """The signed quantity held in one symbol, read from the venue now."""
    return net_position(await retry.call(venue.positions), symbol)


async def intent_refusal(gate: TradingGate | None, intent: OrderIntent, venue: OrderService,
                         retry: RetryPolicy) -> Refusal | None:
    """The submission stage's gate check of one intent (None: place it). Under REDUCE_ONLY the
    position is read from the venue; a venue that cannot say refuses (fail closed)."""
    if gate is None:
        return None

    async def position() -> Decimal | None:
        try:
            return await venue_position(venue, intent.symbol, retry)
        except TransientBrokerError as exc:
            log.warning("gate: position of %s unknown (%s): reduce-only refuses", intent.symbol,
                        exc)
            return None

    return await gate.admit(intent.symbol, intent.strategy_id, intent.side, intent.quantity,
                            position, "submission", client_order_id=intent.client_order_id)


# ---------------------------------------------------------------- FLATTEN


def liquidation_client_order_id(command_event_id: UUID, symbol: str, round_: int = 0) -> str:
    """`jx-<command id hex>-lq[<round>]-<symbol>`: ours (agents.orders.is_ours: reconciliation
    records its orders and fills), correlated with the FLATTEN command (`jax-exec trace` of the
    command shows every step), and marked as liquidation."""
    tag = "lq" if round_ == 0 else f"lq{round_}"
    return f"jx-{command_event_id.hex}-{tag}-{symbol}"


def is_liquidation_of(client_order_id: str, command_event_id: UUID) -> bool:
    return client_order_id.startswith(f"jx-{command_event_id.hex}-lq")


Emit = Callable[[list[Output]], Awaitable[None]]


@dataclass
class FlattenOutcome:
    cancelled: list[str] = field(default_factory=list)
    not_cancelled: list[str] = field(default_factory=list)  # unknown by client id, or failing
    liquidations: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # liquidation orders the venue refused
    remaining: dict[str, Decimal] = field(default_factory=dict)  # positions left
    open_left: int = 0
    account_id: str | None = None

    @property
    def complete(self) -> bool:
        return not self.remaining and self.open_left == 0

    def details(self) -> dict[str, str]:
        out = {"complete": str(self.complete).lower(),
               "orders_cancelled": str(len(self.cancelled)),
               "liquidation_orders": ",".join(self.liquidations)[:1500],
               "positions_left": ",".join(f"{s}:{q}" for s, q in self.remaining.items()),
               "open_orders_left": str(self.open_left)}
        if self.not_cancelled:
            out["not_cancelled"] = ",".join(self.not_cancelled)[:1500]
        if self.failed:
            out["liquidations_failed"] = "; ".join(self.failed)[:1500]
        return out


@dataclass
class Flatten:
    """Cancel every open order in the scope, then close every position with market orders,
    through the venue port under the one retry policy; each step emitted on `orders`."""

    venue: OrderService
    retry: RetryPolicy
    emit: Emit
    clock: Callable[[], datetime] = utc_now
    settle_seconds: float = 30.0
    poll_seconds: float = 0.5
    rounds: int = 3
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self, command: ControlCommand) -> FlattenOutcome:
        outcome = FlattenOutcome()
        await self._cancel_all(command, outcome)
        await self._close_positions(command, outcome)
        left = [o for o in await self._open_in_scope(command)
                if o.client_order_id not in outcome.not_cancelled]
        outcome.open_left = len(left)
        return outcome

    def _in_scope(self, command: ControlCommand, symbol: str) -> bool:
        return command.symbol is None or symbol == command.symbol

    async def _open_in_scope(self, command: ControlCommand) -> list[OrderReport]:
        return [o for o in await self.retry.call(self.venue.open_orders)
                if self._in_scope(command, o.symbol)]

    async def _cancel_all(self, command: ControlCommand, outcome: FlattenOutcome) -> None:
        """Cancel until nothing cancellable is left (a part-filled entry's cancel activates
        its exits, which the next pass cancels)."""
        for _ in range(self.rounds):
            orders = [o for o in await self._open_in_scope(command)
                      if not is_liquidation_of(o.client_order_id, command.event_id)
                      and o.client_order_id not in outcome.not_cancelled]
            if not orders:
                return
            outputs: list[Output] = []
            for order in orders:
                report = await self._cancel(order, outcome)
                if report is not None:
                    outcome.account_id = outcome.account_id or report.account_id
                    outcome.cancelled.append(order.client_order_id)
                    outputs.append(("orders", self._event(report, command, FLATTEN_CANCEL)))
            await self.emit(outputs)

    async def _cancel(self, order: OrderReport, outcome: FlattenOutcome) -> OrderReport | None:
        coid = order.client_order_id
        try:
            return await self.retry.call(lambda: self.venue.cancel(coid))
        except NotCancellable:
            return None  # finished meanwhile: an OCA sibling's cancel, a fill
        except UnknownOrder:
            log.warning("flatten: %s (%s %s) cannot be cancelled by client id", coid,
                        order.side, order.symbol)
        except TransientBrokerError as exc:
            log.warning("flatten: cancel of %s failed: %s", coid, exc)
        outcome.not_cancelled.append(coid)
        return None

    async def _close_positions(self, command: ControlCommand, outcome: FlattenOutcome) -> None:
        deadline = time.monotonic() + self.settle_seconds
        held = await self._held(command)
        for round_ in range(self.rounds):
            if not held:
                break
            coids = {}
            for symbol, quantity in held.items():
                coid = liquidation_client_order_id(command.event_id, symbol, round_)
                if await self._liquidate(command, symbol, quantity, coid, outcome):
                    coids[symbol] = coid
            held = await self._settle(command, coids, deadline)
            if time.monotonic() >= deadline:
                break  # the venue does not fill: HALTED, incomplete, and an alert
        outcome.remaining = held

    async def _held(self, command: ControlCommand) -> dict[str, Decimal]:
        positions = await self.retry.call(self.venue.positions)
        return ts.positions_in_scope(((p.symbol, p.quantity) for p in positions), command.symbol)

    async def _liquidate(self, command: ControlCommand, symbol: str, quantity: Decimal,
                         coid: str, outcome: FlattenOutcome) -> bool:
        """Place one closing market order (unless this client id is at the venue already: a
        redelivered FLATTEN); True when an order with this id is at the venue."""
        request = OrderRequest(client_order_id=coid, symbol=symbol,
                               side=Side.SELL if quantity > 0 else Side.BUY,
                               quantity=abs(quantity), order_type=OrderType.MKT,
                               time_in_force=TimeInForce.DAY)
        submitted_at = self.clock()
        attempts = Attempts()
        try:
            report = await self._place(request, attempts)
        except BrokerError as exc:
            outcome.failed.append(f"{coid}: {exc}")
            log.error("flatten: liquidation %s of %s %s failed: %s", coid, quantity, symbol, exc)
            return False
        outcome.liquidations.append(coid)
        outcome.account_id = outcome.account_id or report.account_id
        submitted = report.model_copy(update={"status": OrderStatus.SUBMITTED,
                                              "filled_quantity": Decimal(0),
                                              "avg_fill_price": None})
        tries = max(attempts.count, 1)
        await self.emit([
            ("orders", self._event(submitted, command, LIQUIDATION, submitted_at)
             .model_copy(update={"attempts": tries})),
            ("orders", self._event(report, command, LIQUIDATION)
             .model_copy(update={"attempts": tries})),
        ])
        return True

    async def _place(self, request: OrderRequest, attempts: Attempts) -> OrderReport:
        """Look the id up before each try (the last one may have reached the venue)."""

        async def once() -> OrderReport:
            try:
                return await self.venue.status(request.client_order_id)
            except UnknownOrder:
                pass
            try:
                return await self.venue.place(request)
            except DuplicateClientOrderId:
                return await self.venue.status(request.client_order_id)

        return await self.retry.call(once, attempts)

    async def _settle(self, command: ControlCommand, coids: dict[str, str],
                      deadline: float) -> dict[str, Decimal]:
        """Wait until the scope holds nothing, or this round's orders are finished, or the
        deadline; an order still working then is cancelled before the next round."""
        while True:
            held = await self._held(command)
            reports = {s: await self._status(c) for s, c in coids.items()}
            working = [r for r in reports.values() if not r.status.is_terminal]
            if not held or not working or time.monotonic() >= deadline:
                break
            await self.sleep(self.poll_seconds)
        finals: list[Output] = [("orders", self._event(r, command, LIQUIDATION))
                  for r in reports.values() if r.status.is_terminal]
        await self.emit(finals)
        for report in working:
            await self._cancel(report, FlattenOutcome())
        return held

    async def _status(self, coid: str) -> OrderReport:
        return await self.retry.call(lambda: self.venue.status(coid))

    def _event(self, report: OrderReport, command: ControlCommand, reason_code: str,
               at: datetime | None = None) -> OrderEvent:
        now = at or self.clock()
        if is_ours(report.client_order_id, report.parent_client_order_id):
            event = order_event(report, self.venue.venue, now, reason_code=reason_code)
        else:  # an order the pipeline never placed: recorded under the command
            coid = report.client_order_id
            event = order_event(
                report.model_copy(update={"client_order_id": f"jx-{command.event_id.hex}"}),
                self.venue.venue, now, reason_code=reason_code,
            ).model_copy(update={
                "client_order_id": coid, "causation_id": command.event_id,
                "event_id": OrderEvent.derive_event_id(coid, report.status,
                                                       report.filled_quantity)})
        if is_liquidation_of(report.client_order_id, command.event_id):
            event = event.model_copy(update={"causation_id": command.event_id,
                                              "message": f"FLATTEN by {command.issued_by}"})
        return event


# ---------------------------------------------------------------- the control stage


@dataclass
class ControlStage:
    """Applies commands in order: state first (every worker refuses at once), then the
    FLATTEN's venue work, then the final state."""

    gate: TradingGate
    flatten: Flatten
    emit: Emit
    clock: Callable[[], datetime] = utc_now

    async def handle(self, raw: bytes | None, source: Source) -> list[Output]:
        """Everything the stage did is already emitted; returns what is left to emit (a
        dead-letter for bad input). Nothing escapes."""
        try:
            command = ControlCommand.model_validate(decode_object(raw))
        except (DecodeError, ValidationError) as exc:
            return [("dead-letter", _dead(raw, source, f"not a control command: {exc}"))]
        try:
            await self.apply(command, source.offset)
        except Exception as exc:  # nothing escapes an agent
            log.exception("control: applying %s failed", command.command)
            reason = f"internal error {type(exc).__name__}: {exc}"
            return [("dead-letter", _dead(raw, source, reason))]
        return []

    async def apply(self, command: ControlCommand, offset: int) -> None:
        applied = ts.apply_command(self.gate.table, command, offset, self.clock())
        if applied.state is None:
            log.info("control: %s at offset %d superseded or done already", command.command,
                     offset)
            return
        await self._publish(applied.state)
        if not applied.flatten:
            return
        try:
            outcome = await self.flatten.run(command)
            details = outcome.details()
            account = outcome.account_id
        except Exception as exc:  # the scope still ends HALTED: fail safe
            log.exception("control: FLATTEN failed")
            details, account = {"complete": "false", "error": f"{type(exc).__name__}: {exc}"}, None
        final = ts.flattened(command, offset, self.clock(), account, details)
        await self._publish(final)
        if details.get("complete") != "true":
            await self.emit([("alerts", _incomplete(command, details))])

    async def _publish(self, state: TradingStateChanged) -> None:
        await self.emit([("trading-state", state)])
        self.gate.observe(state)


def _dead(raw: bytes | None, source: Source, reason: str) -> DeadLetter:
    return DeadLetter.of(raw or b"", source.topic, source.partition, source.offset, reason)


def _incomplete(command: ControlCommand, details: dict[str, str]) -> Alert:
    left = details.get("positions_left") or "none"
    return Alert.of(
        AlertKind.VENUE_UNREACHABLE, SOURCE,
        f"FLATTEN by {command.issued_by} did not finish: positions left {left}, open orders "
        f"left {details.get('open_orders_left', '?')}; the scope is HALTED. Check the venue "
        "and run `jax-exec flatten` again", "flatten", command.event_id,
        correlation_id=command.event_id, symbol=command.symbol, details=details)


# ---------------------------------------------------------------- automatic trips


@dataclass
class TripMonitor:
    """Watches rejections, alerts and the account's P&L; publishes a command when a trip
    fires."""

    settings: TripSettings
    gate: TradingGate
    publish: Callable[[ControlCommand], Awaitable[None]]
    clock: Callable[[], datetime] = utc_now
    failures: ts.VenueFailures = field(init=False)
    burst: ts.RejectionBurst = field(init=False)
    loss_fired: bool = False

    def __post_init__(self) -> None:
        s = self.settings
        self.failures = ts.VenueFailures(s.venue_failures,
                                         timedelta(seconds=s.venue_failures_gap_seconds))
        self.burst = ts.RejectionBurst(s.rejection_burst,
                                       timedelta(seconds=s.rejection_burst_seconds))

    @property
    def max_age(self) -> timedelta:
        return timedelta(seconds=self.settings.event_max_age_seconds)

    async def on_rejection(self, rejection: Rejection) -> None:
        if not ts.fresh(rejection.occurred_at, self.clock(), self.max_age):
            return
        counters: list[ts.VenueFailures | ts.RejectionBurst] = []
        if self.settings.venue_failures > 0:
            counters.append(self.failures)
        if self.settings.rejection_burst > 0:
            counters.append(self.burst)
        for counter in counters:
            trip = counter.on_rejection(rejection.reason_code, rejection.occurred_at)
            if trip is not None:
                await self.fire(trip)

    async def on_alert(self, alert: Alert) -> None:
        if self.settings.mismatch_action == "off":
            return
        if not ts.fresh(alert.occurred_at, self.clock(), self.max_age):
            return
        trip = ts.mismatch(alert.kind, alert.message, alert.details, alert.symbol)
        if trip is not None:
            await self.fire(trip)

    async def on_account(self, venue: OrderService) -> None:
        limit = self.settings.daily_loss_limit
        if limit is None:
            return
        account = await venue.account()
        action = ControlAction(self.settings.daily_loss_action)
        trip = ts.daily_loss(account, limit, action)
        if trip is None:
            self.loss_fired = False  # back within the limit: the trip re-arms
            return
        if not self.loss_fired:
            self.loss_fired = True
            await self.fire(trip)

    async def fire(self, trip: ts.Trip) -> None:
        """Publish the trip's command, unless it would only HALT what is halted already."""
        account = self.gate.table.mode_of(ts.ACCOUNT)
        if trip.action is ControlAction.HALT and account in REFUSING:
            log.info("trip %s: the account is halted already", trip.trigger)
            return
        log.warning("trip %s fired: %s", trip.trigger, trip.reason)
        await self.publish(trip.command(self.clock()))


REFUSING = frozenset({TradingMode.HALTED, TradingMode.FLATTENING})


# ---------------------------------------------------------------- faust wiring


def register_control(app: faust.App, emitter: Emitter, pipeline: Pipeline,
                     trips: TripSettings | None = None) -> ControlStage:
    """Add the control agent (on `control`), the trip monitor (agents on `rejections` and
    `alerts`, a timer on the account's P&L) to a faust app. The gate (pipeline.ctx.gate) must
    have been started (`await gate.start()`) before faust starts."""
    ctx = pipeline.ctx
    assert ctx is not None, "the control stage needs a StageContext"
    gate: TradingGate | None = getattr(ctx, "gate", None)
    assert gate is not None, "the control stage needs the started TradingGate (ctx.gate)"
    settings = trips or TripSettings()

    async def emit(outputs: list[Output]) -> None:
        if outputs:
            await emitter.send_all(outputs)

    flatten = Flatten(ctx.venue, ctx.retry, emit, clock=ctx.clock,
                      settle_seconds=settings.flatten_settle_seconds)
    stage = ControlStage(gate, flatten, emit, clock=ctx.clock)

    async def publish(command: ControlCommand) -> None:
        await emitter.send("control", command)

    monitor = TripMonitor(settings, gate, publish, clock=ctx.clock)
    _agents(app, pipeline, stage, monitor, emitter)

    @app.timer(settings.daily_loss_interval_seconds, name="jax.control.daily_loss")
    async def daily_loss() -> None:
        if settings.daily_loss_limit is None:
            return
        try:
            await monitor.on_account(ctx.venue)
        except TransientBrokerError as exc:
            log.warning("daily-loss trip: the account could not be read (%s)", exc)
        except Exception:
            log.exception("daily-loss trip check failed")

    return stage


def _channel(app: faust.App, pipeline: Pipeline, topic: str) -> Any:
    return app.topic(pipeline.physical(topic), value_serializer="raw", key_serializer="raw")


def _agents(app: faust.App, pipeline: Pipeline, stage: ControlStage, monitor: TripMonitor,
            emitter: Emitter) -> None:
    async def control(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            source = Source("control", msg.partition, msg.offset)
            leftovers = await stage.handle(event.value, source)
            await emitter.deliver(leftovers, source, event.value)

    async def rejections(stream: Any) -> None:
        async for raw in stream:
            await _watch(raw, Rejection, monitor.on_rejection)

    async def alerts(stream: Any) -> None:
        async for raw in stream:
            await _watch(raw, Alert, monitor.on_alert)

    app.agent(_channel(app, pipeline, "control"), name="jax.control", concurrency=1)(control)
    app.agent(_channel(app, pipeline, "rejections"), name="jax.control.rejections",
              concurrency=1)(rejections)
    app.agent(_channel(app, pipeline, "alerts"), name="jax.control.alerts",
              concurrency=1)(alerts)


async def _watch(raw: bytes | None, model: type[E], visit: Callable[[E], Awaitable[None]]
                 ) -> None:
    """Feed one record to the trip monitor; nothing escapes (a bad record is the audit's)."""
    try:
        event = model.model_validate_json(raw or b"")
    except (ValidationError, ValueError):
        return
    try:
        await visit(event)
    except Exception:
        log.exception("trip monitor: a %s could not be evaluated", model.__name__)
