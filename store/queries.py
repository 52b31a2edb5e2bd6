"""The read side the API and CLI use: typed rows, Decimal money, parameterised SQL only."""

from __future__ import annotations

import heapq
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, field_validator

from store.client import ClickHouse

DEFAULT_LIMIT = 1000
OPEN_STATUSES = (
    "pending_submit", "submitted", "accepted", "partially_filled", "pending_cancel",
)
M = TypeVar("M", bound="Row")


class Row(BaseModel):
    """Base of every result row: frozen, '' from outer joins read as None."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class Order(Row):
    """An order in its current state (argMax over its lifecycle events)."""

    client_order_id: str
    correlation_id: UUID
    parent_client_order_id: str | None = None
    leg: str
    venue: str
    account_id: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    status: str
    filled_quantity: Decimal
    avg_fill_price: Decimal | None = None
    venue_order_id: str | None = None
    reason_code: str | None = None
    created_at: datetime
    updated_at: datetime
    strategy_id: str | None = None


class FillRow(Row):
    """One execution, deduplicated by event id."""

    event_id: UUID
    correlation_id: UUID
    execution_id: str
    client_order_id: str
    leg: str
    venue: str
    account_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    currency: str
    occurred_at: datetime


class Position(Row):
    """A non-zero net position from signed fills."""

    account_id: str
    symbol: str
    net_quantity: Decimal
    bought_quantity: Decimal
    sold_quantity: Decimal
    avg_price: Decimal | None = None
    commission: Decimal
    last_fill_at: datetime


class Trade(Row):
    """A round trip: entry fills against exit fills of one signal and symbol."""

    correlation_id: UUID
    symbol: str
    account_id: str
    strategy_id: str | None = None
    signal_id: str | None = None
    side: str
    status: str
    entry_quantity: Decimal
    exit_quantity: Decimal
    closed_quantity: Decimal
    entry_price: Decimal | None = None
    exit_price: Decimal | None = None
    commission: Decimal
    realized_pnl: Decimal
    planned_risk_per_share: Decimal | None = None
    r_multiple: float | None = None
    opened_at: datetime
    closed_at: datetime | None = None
    holding_seconds: float | None = None


class DailyPnl(Row):
    """Realized P&L of trades exited on one UTC day."""

    day: date
    strategy_id: str | None = None
    trades: int
    wins: int
    losses: int
    realized_pnl: Decimal
    commission: Decimal
    avg_r_multiple: float | None = None


class RejectionRow(Row):
    """A refusal with its reason code and the numbers behind it."""

    event_id: UUID
    correlation_id: UUID
    causation_id: UUID | None = None
    occurred_at: datetime
    stage: str
    reason_code: str
    message: str
    details: dict[str, str] = {}
    subject_event_id: UUID | None = None
    signal_id: str | None = None
    symbol: str | None = None
    strategy_id: str | None = None

    @field_validator("details", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) and value else (value or {})


class StageLatency(Row):
    """When each stage of one signal happened, and the gaps in milliseconds."""

    correlation_id: UUID
    symbol: str | None = None
    strategy_id: str | None = None
    signal_at: datetime | None = None
    approved_at: datetime | None = None
    intent_at: datetime | None = None
    submitted_at: datetime | None = None
    acknowledged_at: datetime | None = None
    filled_at: datetime | None = None
    signal_to_approval_ms: float | None = None
    approval_to_intent_ms: float | None = None
    intent_to_submitted_ms: float | None = None
    submitted_to_acknowledged_ms: float | None = None
    acknowledged_to_filled_ms: float | None = None
    signal_to_filled_ms: float | None = None


class SlippageRow(Row):
    """An entry fill against its intended price; positive = worse for us."""

    fill_event_id: UUID
    correlation_id: UUID
    client_order_id: str
    symbol: str
    side: str
    strategy_id: str | None = None
    order_type: str | None = None
    occurred_at: datetime
    quantity: Decimal
    fill_price: Decimal
    intended_price: Decimal
    slippage_per_share: Decimal
    slippage_cost: Decimal
    slippage_bps: float


class ApprovalAuditRow(Row):
    """Who decided on a signal, and how long after it arrived."""

    event_id: UUID
    correlation_id: UUID
    signal_id: str | None = None
    symbol: str | None = None
    side: str | None = None
    strategy_id: str | None = None
    decision: str
    approved_by: str
    reason: str | None = None
    signal_at: datetime | None = None
    decided_at: datetime
    decision_seconds: float | None = None


class TraceStep(Row):
    """One event in a signal's causal story."""

    event_id: UUID
    event_type: str
    causation_id: UUID | None = None
    occurred_at: datetime
    recorded_at: datetime
    topic: str
    partition: int
    offset: int
    depth: int = 0
    summary: str = ""
    payload: dict[str, Any] = {}


@dataclass
class Where:
    """WHERE clause built from fixed fragments; user values travel only as parameters."""

    parts: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, fragment: str, **params: Any) -> Where:
        """Add a fragment unless its parameter value is None."""
        if all(v is not None for v in params.values()):
            self.parts.append(fragment)
            self.params.update(params)
        return self

    def since_until(self, column: str, since: datetime | None, until: datetime | None) -> Where:
        """Half-open time window [since, until) on a fixed column name."""
        self.add(f"{column} >= {{since:DateTime64(6, 'UTC')}}", since=_aware(since))
        return self.add(f"{column} < {{until:DateTime64(6, 'UTC')}}", until=_aware(until))

    @property
    def sql(self) -> str:
        return f"WHERE {' AND '.join(self.parts)}" if self.parts else ""


def select(
    source: str,
    where: Where,
    order: str = "",
    limit: bool = True,
    columns: str = "*",
    group: str = "",
) -> str:
    """Assemble a SELECT from constant fragments; every user value is a bound parameter."""
    tail = f" GROUP BY {group}" if group else ""
    tail += f" ORDER BY {order}" if order else ""
    tail += " LIMIT {limit:UInt32}" if limit else ""
    return f"SELECT {columns} FROM {source} {where.sql}{tail}"  # noqa: S608 - constants only


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("query times must be timezone-aware (UTC)")
    return value.astimezone(UTC)


def _summary(event_type: str, p: dict[str, Any]) -> str:
    """A one-line human description of an event for the trace view."""
    if event_type == "signal":
        side, symbol = p.get("signal_type"), p.get("symbol")
        return f"signal {side} {symbol} @ {p.get('entry_price')} stop {p.get('stop_loss')}"
    if event_type == "approval":
        return f"{p.get('decision')} by {p.get('approved_by')}"
    if event_type == "order_intent":
        return f"intent {p.get('side')} {p.get('quantity')} {p.get('symbol')} {p.get('order_type')}"
    if event_type == "order":
        return (
            f"order {p.get('client_order_id')} {p.get('status')} filled {p.get('filled_quantity')}"
        )
    if event_type == "fill":
        return f"fill {p.get('side')} {p.get('quantity')} {p.get('symbol')} @ {p.get('price')}"
    if event_type == "rejection":
        return f"rejected at {p.get('stage')}: {p.get('reason_code')}"
    return event_type


def causal_order(steps: list[TraceStep]) -> list[TraceStep]:
    """Order so every event follows its cause; among ready events, earliest first."""
    unique: dict[UUID, TraceStep] = {}
    for step in steps:
        unique.setdefault(step.event_id, step)
    children: dict[UUID, list[TraceStep]] = {}
    tie = itertools.count()
    ready: list[tuple[datetime, datetime, int, int, TraceStep]] = []
    for step in unique.values():
        parent = step.causation_id
        if parent is not None and parent in unique and parent != step.event_id:
            children.setdefault(parent, []).append(step)
        else:
            ready.append((step.occurred_at, step.recorded_at, step.offset, next(tie), step))
    heapq.heapify(ready)
    ordered: list[TraceStep] = []
    depth: dict[UUID, int] = {}
    while ready:
        *_, step = heapq.heappop(ready)
        level = depth.get(step.causation_id, -1) + 1 if step.causation_id else 0
        depth[step.event_id] = level
        ordered.append(step.model_copy(update={"depth": level}))
        for child in children.get(step.event_id, []):
            heapq.heappush(
                ready, (child.occurred_at, child.recorded_at, child.offset, next(tie), child)
            )
    return ordered


class Queries:
    """Typed, parameterised reads over the store's tables and views."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.ch = clickhouse

    async def _rows(self, model: type[M], sql: str, params: dict[str, Any]) -> list[M]:
        return [model.model_validate(r) for r in await self.ch.query(sql, params)]

    async def open_orders(
        self, symbol: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> list[Order]:
        """Orders not yet in a terminal state, newest first."""
        w = Where().add("status IN {open:Array(String)}", open=list(OPEN_STATUSES))
        w.add("symbol = {symbol:String}", symbol=symbol)
        sql = select("orders", w, "updated_at DESC")
        return await self._rows(Order, sql, {**w.params, "limit": limit})

    async def order_history(
        self,
        symbol: str | None = None,
        status: str | None = None,
        strategy: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Order]:
        """Orders in their current state, filtered, newest first."""
        w = Where().add("symbol = {symbol:String}", symbol=symbol)
        w.add("status = {status:String}", status=status)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.since_until("created_at", since, until)
        sql = select("orders", w, "created_at DESC")
        return await self._rows(Order, sql, {**w.params, "limit": limit})

    async def fills(
        self,
        symbol: str | None = None,
        correlation_id: UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[FillRow]:
        """Executions, each once, newest first."""
        w = Where().add("symbol = {symbol:String}", symbol=symbol)
        w.add("correlation_id = {cid:UUID}", cid=correlation_id)
        w.since_until("occurred_at", since, until)
        sql = select("fills FINAL", w, "occurred_at DESC")
        return await self._rows(FillRow, sql, {**w.params, "limit": limit})

    async def positions(self, account_id: str | None = None) -> list[Position]:
        """Open positions (non-zero net quantity) per account and symbol."""
        w = Where().add("account_id = {account:String}", account=account_id)
        sql = select("positions", w, "account_id, symbol", limit=False)
        return await self._rows(Position, sql, w.params)

    async def trades(
        self,
        symbol: str | None = None,
        strategy: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Trade]:
        """Round trips (entry to exit per signal and symbol), newest first."""
        w = Where().add("symbol = {symbol:String}", symbol=symbol)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.add("status = {status:String}", status=status)
        w.since_until("opened_at", since, until)
        sql = select("trades", w, "opened_at DESC")
        return await self._rows(Trade, sql, {**w.params, "limit": limit})

    async def daily_pnl(
        self,
        since: date | None = None,
        until: date | None = None,
        strategy: str | None = None,
        by_strategy: bool = False,
    ) -> list[DailyPnl]:
        """Realized P&L per UTC day of exit, optionally split by strategy."""
        w = Where().add("day >= {since:Date}", since=since).add("day <= {until:Date}", until=until)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        group = "day, strategy_id" if by_strategy else "day"
        inner = select(
            "daily_pnl",
            w,
            limit=False,
            columns="day, strategy_id, trades AS n, wins AS w, losses AS l, "
            "realized_pnl AS pnl, commission AS fees, avg_r_multiple AS r",
        )
        columns = (
            f"day, {'strategy_id' if by_strategy else 'NULL AS strategy_id'}, "
            "sum(n) AS trades, sum(w) AS wins, sum(l) AS losses, sum(pnl) AS realized_pnl, "
            "sum(fees) AS commission, sum(r * n) / sum(n) AS avg_r_multiple"
        )
        sql = select(f"({inner})", Where(), group, False, columns, group)
        return await self._rows(DailyPnl, sql, w.params)

    async def rejections(
        self,
        stage: str | None = None,
        reason_code: str | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[RejectionRow]:
        """Refusals with their reason codes, newest first."""
        w = Where().add("stage = {stage:String}", stage=stage)
        w.add("reason_code = {reason:String}", reason=reason_code)
        w.add("symbol = {symbol:String}", symbol=symbol)
        w.since_until("occurred_at", since, until)
        sql = select("rejections FINAL", w, "occurred_at DESC")
        return await self._rows(RejectionRow, sql, {**w.params, "limit": limit})

    async def trace(self, correlation_id: UUID) -> list[TraceStep]:
        """Every event of one signal, in causal order."""
        rows = await self.ch.query(
            "SELECT event_id, event_type, causation_id, occurred_at, recorded_at, topic, "
            "partition, offset, payload FROM events WHERE correlation_id = {cid:UUID} "
            "ORDER BY occurred_at, offset",
            {"cid": correlation_id},
        )
        return causal_order([_trace_step(r) for r in rows])

    async def latency(
        self,
        symbol: str | None = None,
        strategy: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[StageLatency]:
        """Per-stage latency of each signal, newest first."""
        w = Where().add("symbol = {symbol:String}", symbol=symbol)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.since_until("signal_at", since, until)
        sql = select("stage_latency", w, "signal_at DESC")
        return await self._rows(StageLatency, sql, {**w.params, "limit": limit})

    async def slippage(
        self,
        symbol: str | None = None,
        strategy: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[SlippageRow]:
        """Entry fills against their intended price; positive = worse."""
        w = Where().add("symbol = {symbol:String}", symbol=symbol)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.since_until("occurred_at", since, until)
        sql = select("slippage", w, "occurred_at DESC")
        return await self._rows(SlippageRow, sql, {**w.params, "limit": limit})

    async def approval_audit(
        self,
        approved_by: str | None = None,
        decision: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[ApprovalAuditRow]:
        """Who decided what, when, and how long after the signal."""
        w = Where().add("approved_by = {by:String}", by=approved_by)
        w.add("decision = {decision:String}", decision=decision)
        w.since_until("decided_at", since, until)
        sql = select("approval_audit", w, "decided_at DESC")
        return await self._rows(ApprovalAuditRow, sql, {**w.params, "limit": limit})

    async def count_events(self, correlation_id: UUID | None = None) -> int:
        """Rows in the audit log (every stored record, duplicates included if any)."""
        w = Where().add("correlation_id = {cid:UUID}", cid=correlation_id)
        rows = await self.ch.query(
            select("events", w, limit=False, columns="count() AS n"), w.params
        )
        return int(rows[0]["n"])


def _trace_step(row: dict[str, Any]) -> TraceStep:
    try:
        payload = json.loads(row["payload"])
    except ValueError:
        payload = {"raw": row["payload"]}
    payload = payload if isinstance(payload, dict) else {"value": payload}
    return TraceStep.model_validate(
        {**row, "payload": payload, "summary": _summary(str(row["event_type"]), payload)}
    )
