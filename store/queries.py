"""The read side the API and CLI use: typed rows, Decimal money, parameterised SQL only."""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, field_validator

from schemas.ids import derive_id, signal_event_id
from store.client import ClickHouse

DEFAULT_LIMIT = 1000
MAX_LIMIT = 1000
OPEN_STATUSES = (
    "pending_submit", "submitted", "accepted", "partially_filled", "pending_cancel",
)
CLOSED_STATUSES = ("filled", "cancelled", "rejected", "expired")
M = TypeVar("M", bound="Row")
OrderScope = Literal["open", "closed", "all"]
SignalStatus = Literal["pending", "approved", "rejected", "expired"]
PnlBy = Literal["day", "strategy", "symbol"]


class BadCursor(ValueError):
    """A cursor this query did not hand out."""


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after (time, id) in (time DESC, id DESC) order."""

    at: datetime
    key: str

    def encode(self) -> str:
        raw = json.dumps([self.at.isoformat(), self.key]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at, key = json.loads(raw)
            when = datetime.fromisoformat(at)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise BadCursor(f"not a cursor from this API: {text[:80]!r}") from exc
        if when.tzinfo is None or not isinstance(key, str):
            raise BadCursor(f"not a cursor from this API: {text[:80]!r}")
        return cls(when.astimezone(UTC), key)


@dataclass(frozen=True)
class Page(Generic[M]):
    """One page of a list, newest first, and the cursor of the next (None: the last page)."""

    items: list[M]
    next_cursor: str | None = None


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


class OrderEventRow(Row):
    """One fact in an order's life (its lifecycle), deduplicated by event id."""

    event_id: UUID
    occurred_at: datetime
    status: str
    filled_quantity: Decimal
    avg_fill_price: Decimal | None = None
    venue_order_id: str | None = None
    reason_code: str | None = None
    message: str | None = None


def _plain_decimal(value: Decimal | None, places: int = 0) -> Decimal | None:
    """Trailing zeros of a Decimal(18, 6) column off, keeping at least `places` decimals."""
    if value is None:
        return None
    trimmed = value.normalize()
    exponent = trimmed.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -places:  # 1.5E+2 -> 150.00 (or 150)
        return trimmed.quantize(Decimal(1).scaleb(-places))
    return trimmed


class TradeRecord(Row):
    """The seeds' trade record: one approved, sized signal from intent to exit, with its P&L.

    `status`: pending (no fill yet), open (entered), closed (exited), or the entry order's
    cancelled / rejected / expired when it ended without a fill."""

    id: UUID  # the correlation id of the signal
    signal_id: str
    order_id: str  # the client order id (jx-<signal>), also at /api/v1/orders/{id}
    venue_order_id: str | None = None
    account_id: str
    venue: str
    symbol: str
    direction: str
    quantity: Decimal
    order_type: str
    entry_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    strategy_id: str
    approved_by: str
    risk_amount: Decimal | None = None
    risk_percent: Decimal | None = None
    position_value: Decimal | None = None
    rr_ratio: Decimal | None = None
    bound_by: str | None = None
    status: str
    order_status: str | None = None
    created_at: datetime
    filled_quantity: Decimal | None = None
    filled_entry_price: Decimal | None = None
    exit_quantity: Decimal | None = None
    exit_price: Decimal | None = None
    closed_at: datetime | None = None
    realized_pnl: Decimal | None = None
    commission: Decimal | None = None
    r_multiple: float | None = None
    holding_seconds: float | None = None

    @field_validator("quantity", "filled_quantity", "exit_quantity", mode="after")
    @classmethod
    def _whole(cls, value: Decimal | None) -> Decimal | None:
        return _plain_decimal(value)

    @field_validator("entry_price", "stop_loss", "take_profit", "filled_entry_price",
                     "exit_price", "realized_pnl", "commission", mode="after")
    @classmethod
    def _cents(cls, value: Decimal | None) -> Decimal | None:
        return _plain_decimal(value, 2)


class SignalRow(Row):
    """A valid signal with its place in the signal ledger (first sighting, one decision)."""

    correlation_id: UUID
    signal_id: str
    symbol: str
    side: str
    entry_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    confidence: Decimal | None = None
    strategy_id: str
    ttl_seconds: int | None = None
    first_seen_at: datetime | None = None
    signal_at: datetime
    expires_at: datetime
    ledger_status: str
    status: str
    decision: str | None = None
    decided_by: list[str] = []
    decided_at: datetime | None = None


class PnlRow(Row):
    """Realized P&L of the round trips closed, grouped by day, strategy or symbol (None: the
    round trips of fills with no signal, so no strategy)."""

    key: str | None
    trades: int
    wins: int
    losses: int
    realized_pnl: Decimal
    commission: Decimal
    avg_r_multiple: float | None = None


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

    def after(self, cursor: Cursor | None, time_column: str, key_column: str) -> Where:
        """Keyset pagination: rows strictly after the cursor in (time DESC, key DESC) order."""
        if cursor is None:
            return self
        return self.add(
            f"({time_column}, toString({key_column})) < "
            "({cursor_at:DateTime64(6, 'UTC')}, {cursor_key:String})",
            cursor_at=cursor.at, cursor_key=cursor.key)

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


@dataclass(frozen=True)
class Probe:
    """Newest-first pruning for a list over an aggregating view (exact, else a full read).

    `sql` reads the UNMERGED rows a view aggregates, newest first by a column `t` that
    bounds the view's time column from above for every row of an item (for orders, each
    partial state's first event time >= the order's created_at; for trades, each entry
    fill's time >= the trade's opened_at), LIMIT {probe_k}. Items with a time above the
    k-th row's `t` then all have a row among the k read, so the view restricted to those
    ids (`restrict`, parameters probe_ids / probe_cids) returns the same newest rows as the
    whole view, provided the last row needed is newer than that k-th `t`; the caller checks
    and reads more, or the whole view, otherwise. Reads O(k) rows, not every item.
    """

    sql: str
    params: dict[str, Any]
    restrict: str
    # True when every item of the view has a probed row (so fewer than k rows = all items)
    covers_all: bool = True
    settings: str = ""

    def rows_newer_than(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Parameters of `restrict` for the items of the probed rows."""
        return {
            "probe_ids": sorted({r["id"] for r in rows}),
            "probe_cids": sorted({r["cid"] for r in rows if r.get("cid") is not None}),
        }


PROBE_SIZES: tuple[int, ...] = (256, 4096, 65536)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("query times must be timezone-aware (UTC)")
    return value.astimezone(UTC)


def _midnight(value: datetime | None) -> bool:
    """None or 00:00 UTC: a bound pnl_daily's whole days can honour."""
    aware = _aware(value)
    return aware is None or aware.time() == time(0)


def _day(value: datetime | None) -> date | None:
    aware = _aware(value)
    return None if aware is None else aware.date()


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


_SIGNALS_SQL = """
SELECT
    s.correlation_id AS correlation_id, s.signal_id AS signal_id, s.symbol AS symbol,
    s.side AS side, s.entry_price AS entry_price, s.stop_loss AS stop_loss,
    s.take_profit AS take_profit, s.confidence AS confidence, s.strategy_id AS strategy_id,
    s.ttl_seconds AS ttl_seconds, l.first_seen_at AS first_seen_at,
    least(s.signal_at, ifNull(l.first_seen_at, s.signal_at)) AS signal_at,
    signal_at + toIntervalSecond(ifNull(s.ttl_seconds, {default_ttl:UInt32})) AS expires_at,
    l.ledger_status AS ledger_status, l.decision AS decision, l.decided_by AS decided_by,
    if(l.ledger_status = 'seen', NULL, l.last_at) AS decided_at,
    multiIf(l.ledger_status = 'decided' AND l.decision = 'approved', 'approved',
            l.ledger_status = 'decided', 'rejected',
            expires_at <= {now:DateTime64(6, 'UTC')}, 'expired', 'pending') AS status
FROM
(
    SELECT correlation_id, any(signal_id) AS signal_id, any(symbol) AS symbol,
        any(side) AS side, any(entry_price) AS entry_price, any(stop_loss) AS stop_loss,
        any(take_profit) AS take_profit, any(confidence) AS confidence,
        any(strategy_id) AS strategy_id, any(ttl_seconds) AS ttl_seconds,
        min(occurred_at) AS signal_at
    FROM signals GROUP BY correlation_id
) AS s
INNER JOIN
(
    SELECT correlation_id, argMax(status, rank) AS ledger_status,
        argMax(decision, rank) AS decision, argMax(decided_by, rank) AS decided_by,
        argMax(occurred_at, rank) AS last_at, min(first_seen) AS first_seen_at
    FROM
    (
        SELECT correlation_id, occurred_at,
            JSONExtractString(payload, 'status') AS status,
            JSONExtractString(payload, 'decision') AS decision,
            JSONExtract(payload, 'decided_by', 'Array(String)') AS decided_by,
            parseDateTime64BestEffortOrNull(
                JSONExtractString(payload, 'first_seen_at'), 6, 'UTC') AS first_seen,
            (multiIf(status = 'decided', 2, status = 'awaiting_second_approval', 1, 0),
             length(decided_by), occurred_at) AS rank
        FROM events WHERE event_type = 'signal_record'
    )
    GROUP BY correlation_id
) AS l ON s.correlation_id = l.correlation_id
"""

_TRADES_SQL = """
SELECT
    i.correlation_id AS id, i.signal_id AS signal_id, i.client_order_id AS order_id,
    o.venue_order_id AS venue_order_id, i.account_id AS account_id, i.venue AS venue,
    i.symbol AS symbol, i.side AS direction, i.quantity AS quantity,
    i.order_type AS order_type, i.limit_price AS entry_price, i.stop_loss AS stop_loss,
    i.take_profit AS take_profit, i.strategy_id AS strategy_id, i.approved_by AS approved_by,
    nullIf(trim(BOTH '\"' FROM JSONExtractRaw(i.sizing, 'risk_amount')), '') AS risk_amount,
    nullIf(trim(BOTH '\"' FROM JSONExtractRaw(i.sizing, 'risk_percent')), '') AS risk_percent,
    nullIf(trim(BOTH '\"' FROM JSONExtractRaw(i.sizing, 'position_value')), '') AS position_value,
    nullIf(trim(BOTH '\"' FROM JSONExtractRaw(i.sizing, 'rr_ratio')), '') AS rr_ratio,
    nullIf(i.bound_by, '') AS bound_by, i.occurred_at AS created_at,
    o.status AS order_status, o.filled_quantity AS filled_quantity,
    t.entry_price AS filled_entry_price, t.exit_quantity AS exit_quantity,
    t.exit_price AS exit_price, t.closed_at AS closed_at, t.realized_pnl AS realized_pnl,
    t.commission AS commission, t.r_multiple AS r_multiple,
    t.holding_seconds AS holding_seconds,
    multiIf(t.status = 'closed', 'closed', ifNull(t.entry_quantity, 0) > 0, 'open',
            o.status IN ('cancelled', 'rejected', 'expired'), o.status, 'pending') AS status
FROM (SELECT * FROM order_intents FINAL) AS i
LEFT JOIN orders AS o ON o.client_order_id = i.client_order_id
LEFT JOIN trades AS t ON t.correlation_id = i.correlation_id AND t.symbol = i.symbol
SETTINGS join_use_nulls = 1
"""

# avg(r_multiple) from pnl_daily's exact sums (avg skips NULLs, so does r_count)
_AVG_R = "toFloat64(sum(r_sum)) / nullIf(sum(r_count), 0)"
_PNL_KEYS = {
    "day": "toString(toDate(closed_at, 'UTC'))",
    "strategy": "ifNull(strategy_id, '')",
    "symbol": "symbol",
}


class Queries:
    """Typed, parameterised reads over the store's tables and views."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.ch = clickhouse

    async def _rows(self, model: type[M], sql: str, params: dict[str, Any]) -> list[M]:
        return [model.model_validate(r) for r in await self.ch.query(sql, params)]

    async def _page(self, model: type[M], source: str, where: Where, time_column: str,
                    key_column: str, limit: int, cursor: Cursor | None,
                    key: Any, probe: Probe | None = None) -> Page[M]:
        """A page in (time DESC, key DESC) order, one row more to know whether more follow."""
        where.after(cursor, time_column, key_column)
        order = f"{time_column} DESC, toString({key_column}) DESC"
        if probe is None:
            sql = select(source, where, order)
            rows = await self._rows(model, sql, {**where.params, "limit": limit + 1})
        else:
            rows = await self._newest(model, source, where, order, limit + 1, probe,
                                      lambda r: key(r)[0])
        if len(rows) <= limit:
            return Page(rows)
        at, last = key(rows[limit - 1])
        return Page(rows[:limit], Cursor(at, str(last)).encode())

    async def _newest(self, model: type[M], source: str, where: Where, order: str,
                      limit: int, probe: Probe, time_of: Any) -> list[M]:
        """The first `limit` rows of the view in `order`, read through the probe."""
        for k in PROBE_SIZES:
            probed = await self.ch.query(probe.sql, {**probe.params, "probe_k": k})
            complete = bool(probed[0].get("complete", len(probed) < k)) if probed else True
            if complete and not probe.covers_all:
                break  # some items may have no probed row: read the whole view
            if not probed:
                return []
            restricted = Where(list(where.parts), dict(where.params))
            restricted.parts.append(probe.restrict)
            restricted.params.update(probe.rows_newer_than(probed))
            sql = select(source, restricted, order) + probe.settings
            rows = await self._rows(model, sql, {**restricted.params, "limit": limit})
            if complete:  # every item is a candidate
                return rows
            if len(rows) >= limit and time_of(rows[limit - 1]) > probed[-1]["t"]:
                return rows
        sql = select(source, where, order)
        return await self._rows(model, sql, {**where.params, "limit": limit})

    async def orders(
        self,
        status: str | None = None,
        symbol: str | None = None,
        strategy: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: Cursor | None = None,
    ) -> Page[Order]:
        """Orders in their current state, newest first; `status` is open, closed, all (None)
        or one status."""
        w = Where()
        if status == "open":
            w.add("status IN {statuses:Array(String)}", statuses=list(OPEN_STATUSES))
        elif status == "closed":
            w.add("status IN {statuses:Array(String)}", statuses=list(CLOSED_STATUSES))
        elif status != "all":
            w.add("status = {status:String}", status=status)
        w.add("symbol = {symbol:String}", symbol=symbol)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.since_until("created_at", since, until)
        return await self._page(Order, "orders", w, "created_at", "client_order_id", limit,
                                cursor, lambda r: (r.created_at, r.client_order_id),
                                _orders_probe(since, until, cursor))

    async def open_orders(
        self, symbol: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> list[Order]:
        """Orders not yet in a terminal state, newest first."""
        return (await self.orders("open", symbol=symbol, limit=limit)).items

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
        page = await self.orders(status or "all", symbol, strategy, since, until, limit)
        return page.items

    async def order(self, client_order_id: str) -> Order | None:
        """One order in its current state."""
        w = Where().add("client_order_id = {coid:String}", coid=client_order_id)
        rows = await self._rows(Order, select("orders", w, limit=False), w.params)
        return rows[0] if rows else None

    async def order_lifecycle(self, client_order_id: str) -> list[OrderEventRow]:
        """Every state an order went through, in order."""
        w = Where().add("client_order_id = {coid:String}", coid=client_order_id)
        sql = select("order_events FINAL", w, "occurred_at, status_rank", limit=False)
        return await self._rows(OrderEventRow, sql, w.params)

    async def fills_page(
        self,
        symbol: str | None = None,
        strategy: str | None = None,
        client_order_id: str | None = None,
        correlation_id: UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: Cursor | None = None,
    ) -> Page[FillRow]:
        """Executions, each once, newest first."""
        w = Where().add("symbol = {symbol:String}", symbol=symbol)
        w.add("correlation_id = {cid:UUID}", cid=correlation_id)
        w.add("client_order_id = {coid:String}", coid=client_order_id)
        w.add("correlation_id IN (SELECT correlation_id FROM order_intents "
              "WHERE strategy_id = {strategy:String})", strategy=strategy)
        w.since_until("occurred_at", since, until)
        return await self._page(FillRow, "fills FINAL", w, "occurred_at", "event_id", limit,
                                cursor, lambda r: (r.occurred_at, r.event_id))

    async def fills(
        self,
        symbol: str | None = None,
        correlation_id: UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[FillRow]:
        """Executions, each once, newest first."""
        page = await self.fills_page(symbol, correlation_id=correlation_id, since=since,
                                     until=until, limit=limit)
        return page.items

    async def trade_records(
        self,
        symbol: str | None = None,
        strategy: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: Cursor | None = None,
        trade_id: UUID | None = None,
    ) -> Page[TradeRecord]:
        """The seeds' trade records (one per sized signal), newest first."""
        w = Where().add("symbol = {symbol:String}", symbol=symbol)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.add("status = {status:String}", status=status)
        w.add("id = {trade_id:UUID}", trade_id=trade_id)
        w.since_until("created_at", since, until)
        return await self._page(TradeRecord, f"({_TRADES_SQL})", w, "created_at", "id",
                                limit, cursor, lambda r: (r.created_at, r.id))

    async def trade_record(self, trade_id: UUID | str) -> TradeRecord | None:
        """One trade record by its id (the signal's correlation id) or its signal id."""
        text = str(trade_id)
        candidates = [signal_event_id(text)]  # a UUID as is, or a signal id's derived one
        if candidates[0] != derive_id("signal", text):
            candidates.append(derive_id("signal", text))
        for candidate in candidates:
            page = await self.trade_records(trade_id=candidate, limit=1)
            if page.items:
                return page.items[0]
        return None

    async def signals(
        self,
        status: SignalStatus | None,
        now: datetime,
        default_ttl_seconds: int,
        symbol: str | None = None,
        strategy: str | None = None,
        signal_id: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: Cursor | None = None,
    ) -> Page[SignalRow]:
        """Valid signals by status: pending (undecided, unexpired at `now`), approved,
        rejected, expired (undecided, past their time-to-live), newest first."""
        w = Where().add("status = {status:String}", status=status)
        w.add("symbol = {symbol:String}", symbol=symbol)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.add("signal_id = {signal_id:String}", signal_id=signal_id)
        w.params.update(now=_aware(now), default_ttl=int(default_ttl_seconds))
        return await self._page(SignalRow, f"({_SIGNALS_SQL})", w, "signal_at",
                                "correlation_id", limit, cursor,
                                lambda r: (r.signal_at, r.correlation_id))

    async def positions(self, account_id: str | None = None) -> list[Position]:
        """Open positions (non-zero net quantity) per account and symbol."""
        w = Where().add("account_id = {account:String}", account=account_id)
        sql = select("positions_pre", w, "account_id, symbol", limit=False)
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
        return await self._newest(
            Trade, "trades_pre", w, "opened_at DESC", limit, _trades_probe(symbol, since, until),
            lambda r: r.opened_at,
        )

    async def daily_pnl(
        self,
        since: date | None = None,
        until: date | None = None,
        strategy: str | None = None,
        by_strategy: bool = False,
    ) -> list[DailyPnl]:
        """Realized P&L per UTC day of exit, optionally split by strategy (from pnl_daily,
        0008: the answers of daily_pnl_pre, read from one row per day and strategy)."""
        w = Where().add("day >= {since:Date}", since=since).add("day <= {until:Date}", until=until)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        group = "day, strategy_id" if by_strategy else "day"
        inner = select(
            "pnl_daily",
            w,
            limit=False,
            group="day, strategy_id",
            columns="day, strategy_id, sum(trades) AS n, sum(wins) AS w, "
            f"sum(realized_pnl) AS pnl, sum(commission) AS fees, {_AVG_R} AS r",
        )
        # the view's avg_r_multiple of each day and strategy, weighted by its round trips
        columns = (
            f"day, {'strategy_id' if by_strategy else 'NULL AS strategy_id'}, "
            "sum(n) AS trades, sum(w) AS wins, sum(n) - sum(w) AS losses, "
            "sum(pnl) AS realized_pnl, sum(fees) AS commission, "
            "sum(r * n) / sum(n) AS avg_r_multiple"
        )
        sql = select(f"({inner})", Where().add("n != 0"), group, False, columns, group)
        return await self._rows(DailyPnl, sql, w.params)

    async def rejections_page(
        self,
        stage: str | None = None,
        reason_code: str | None = None,
        symbol: str | None = None,
        strategy: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: Cursor | None = None,
    ) -> Page[RejectionRow]:
        """Refusals with their reason codes, newest first."""
        w = Where().add("stage = {stage:String}", stage=stage)
        w.add("reason_code = {reason:String}", reason=reason_code)
        w.add("symbol = {symbol:String}", symbol=symbol)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.since_until("occurred_at", since, until)
        return await self._page(RejectionRow, "rejections FINAL", w, "occurred_at", "event_id",
                                limit, cursor, lambda r: (r.occurred_at, r.event_id))

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
        page = await self.rejections_page(stage, reason_code, symbol, None, since, until, limit)
        return page.items

    async def pnl(
        self,
        by: PnlBy,
        since: datetime | None = None,
        until: datetime | None = None,
        symbol: str | None = None,
        strategy: str | None = None,
    ) -> list[PnlRow]:
        """Realized P&L of round trips with a closed quantity, by exit day (UTC), strategy or
        symbol; the newest day (or the largest key) first. By day or strategy, without a
        symbol and with whole-day bounds (UTC midnights), from pnl_daily (0008)."""
        if by != "symbol" and symbol is None and _midnight(since) and _midnight(until):
            return await self._pnl_daily(by, since, until, strategy)
        key = _PNL_KEYS[by]
        w = Where().add("closed_quantity > 0")
        w.add("symbol = {symbol:String}", symbol=symbol)
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.since_until("closed_at", since, until)
        inner = select("trade_pnl_pre", w, limit=False, columns=f"{key} AS k, realized_pnl AS p, "
                       "commission AS c, r_multiple AS r")
        columns = ("k AS key, count() AS trades, countIf(p > 0) AS wins, countIf(p < 0) AS "
                   "losses, sum(p) AS realized_pnl, sum(c) AS commission, avg(r) AS avg_r_multiple")
        sql = select(f"({inner})", Where(), "key DESC", False, columns, "k")
        return await self._rows(PnlRow, sql, w.params)

    async def _pnl_daily(
        self, by: PnlBy, since: datetime | None, until: datetime | None, strategy: str | None
    ) -> list[PnlRow]:
        """pnl() by day or strategy from the sums of pnl_daily's closed round trips."""
        w = Where().add("closed = 1")
        w.add("strategy_id = {strategy:String}", strategy=strategy)
        w.add("day >= {since:Date}", since=_day(since))
        w.add("day < {until:Date}", until=_day(until))
        key = "toString(day)" if by == "day" else "strategy_id"
        inner = select("pnl_daily", w, limit=False, group="k", columns=(
            f"{key} AS k, sum(trades) AS n, sum(wins) AS w, sum(losses) AS l, "
            f"sum(realized_pnl) AS p, sum(commission) AS c, {_AVG_R} AS r"))
        columns = ("k AS key, n AS trades, w AS wins, l AS losses, p AS realized_pnl, "
                   "c AS commission, r AS avg_r_multiple")
        sql = select(f"({inner})", Where().add("n != 0"), "key DESC", False, columns)
        return await self._rows(PnlRow, sql, w.params)

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


def _orders_probe(
    since: datetime | None, until: datetime | None, cursor: Cursor | None
) -> Probe:
    """Orders newest first: each partial state's first event time >= the order's created_at."""
    w = Where().since_until("first_event_at", since, until)
    w.add("first_event_at <= {cursor_at:DateTime64(6, 'UTC')}",
          cursor_at=cursor.at if cursor else None)
    sql = select("orders_state", w, "first_event_at DESC", limit=False,
                 columns="client_order_id AS id, correlation_id AS cid, first_event_at AS t")
    return Probe(
        sql + " LIMIT {probe_k:UInt32}",
        w.params,
        "client_order_id IN {probe_ids:Array(String)} "
        "AND correlation_id IN {probe_cids:Array(UUID)}",
    )


def _trades_probe(symbol: str | None, since: datetime | None, until: datetime | None) -> Probe:
    """Trades newest first: the signals of every fill at or after the k-th newest entry-leg
    fill (tau). A trade opened after tau has its first entry-side fill after tau, whatever
    its leg, so it is a candidate; exits of older trades come along (k entry fills, not k
    fills, set tau, because exits trail entries and would crowd the newest fills).
    Before the first query settles, fewer than k entry-leg fills: tau is 1970, all fills."""
    w = Where().add("symbol = {symbol:String}", symbol=symbol)
    w.since_until("occurred_at", since, until)
    entries = Where(list(w.parts), dict(w.params)).add("leg = 'entry'")
    newest = select("fills", entries, "occurred_at DESC", columns="occurred_at AS t")
    newest = newest.replace("{limit:UInt32}", "{probe_k:UInt32}")
    w.add("occurred_at >= tau")
    head = f"WITH (SELECT (count() < {{probe_k:UInt32}}, min(t)) FROM ({newest})) AS th"  # noqa: S608
    tau = "if(th.1, toDateTime64(0, 6, 'UTC'), th.2) AS tau"
    cols = "DISTINCT correlation_id AS id, tau AS t, th.1 AS complete"
    sql = f"{head}, {tau} {select('fills', w, limit=False, columns=cols)}"
    # A trade with no entry fill (opened_at 1970) may have no fill inside a time window.
    return Probe(sql, w.params, "correlation_id IN {probe_ids:Array(UUID)}",
                 covers_all=since is None and until is None,
                 settings=" SETTINGS optimize_move_to_prewhere_if_final = 1")


def _trace_step(row: dict[str, Any]) -> TraceStep:
    try:
        payload = json.loads(row["payload"])
    except ValueError:
        payload = {"raw": row["payload"]}
    payload = payload if isinstance(payload, dict) else {"value": payload}
    return TraceStep.model_validate(
        {**row, "payload": payload, "summary": _summary(str(row["event_type"]), payload)}
    )


# --- the rollout gate's paper period (agents.decisions.rollout; jax-exec rollout report) ------


@dataclass(frozen=True)
class PaperPeriod:
    """The figures of a paper period, as agents.decisions.rollout.PaperFigures takes them."""

    since: datetime | None
    until: datetime | None
    days_traded: int
    orders: int
    filled_orders: int
    rejections: dict[str, int]
    avg_slippage_bps: float | None
    ack_latency_p95_ms: float | None
    reconciliation_alerts: int
    kill_switch_trips: int
    daily_pnl: tuple[tuple[date, Decimal], ...]


def _period(column: str, since: datetime | None, until: datetime | None,
            account_id: str | None = None) -> Where:
    w = Where().since_until(column, since, until)
    return w.add("account_id = {account:String}", account=account_id)


async def _one(ch: ClickHouse, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    rows = await ch.query(sql, params)
    return rows[0] if rows else {}


async def paper_period(ch: ClickHouse, since: datetime | None = None,
                       until: datetime | None = None,
                       account_id: str | None = None) -> PaperPeriod:
    """Days traded, entry orders and fills, rejections by reason, mean entry slippage,
    approval-to-acknowledgement p95, alerts, automatic kill-switch trips and realized P&L per
    exit day, over [since, until) (and one account's orders when given)."""
    w = _period("created_at", since, until, account_id).add("leg = 'entry'")
    orders = await _one(ch, select("orders", w, limit=False, columns=(
        "count() AS n, countIf(filled_quantity > 0) AS filled, "
        "uniqExact(toDate(created_at, 'UTC')) AS days")), w.params)
    w = _period("occurred_at", since, until)
    rejections = await ch.query(select("rejections FINAL", w, limit=False, group="reason_code",
                                       columns="reason_code, count() AS n"), w.params)
    slip = await _one(ch, select("slippage", w, limit=False,
                                 columns="avg(slippage_bps) AS bps, count() AS n"), w.params)
    alerts = await _one(ch, select("alerts FINAL", w, limit=False, columns="count() AS n"),
                        w.params)
    trips = Where(list(w.parts), dict(w.params)).add("startsWith(issued_by, 'auto:')").add(
        "command IN ('halt', 'flatten', 'reduce_only')")
    tripped = await _one(ch, select("control_commands FINAL", trips, limit=False,
                                    columns="count() AS n"), trips.params)
    w = _period("approved_at", since, until).add("acknowledged_at IS NOT NULL")
    ack = await _one(ch, select("stage_times", w, limit=False, columns=(
        "quantileExact(0.95)(dateDiff('microsecond', approved_at, acknowledged_at) / 1000.0) "
        "AS p95, count() AS n")), w.params)
    w = _period("closed_at", since, until).add("closed_quantity > 0")
    pnl = await ch.query(select("trade_pnl_pre", w, "day", limit=False, group="day", columns=(
        "toDate(closed_at, 'UTC') AS day, sum(realized_pnl) AS pnl")), w.params)
    return PaperPeriod(
        since=since, until=until, days_traded=int(orders.get("days", 0)),
        orders=int(orders.get("n", 0)), filled_orders=int(orders.get("filled", 0)),
        rejections={str(r["reason_code"]): int(r["n"]) for r in rejections},
        avg_slippage_bps=float(slip["bps"]) if slip.get("n") else None,
        ack_latency_p95_ms=float(ack["p95"]) if ack.get("n") else None,
        reconciliation_alerts=int(alerts.get("n", 0)),
        kill_switch_trips=int(tripped.get("n", 0)),
        daily_pnl=tuple((r["day"], Decimal(str(r["pnl"]))) for r in pnl),
    )
