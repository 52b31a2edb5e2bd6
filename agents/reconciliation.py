"""Reconciliation stage: what the venue says happened becomes order and fill events.

The venue is the source of truth. Each poll compares its open orders, the orders we watch
and its executions with what was already published, and publishes the difference. Event ids
are derived (order: client id + status + filled; fill: venue + execution id), so a repeat
after a restart is recognisable downstream; the set of published executions is seeded at start
from the `fills` topic itself, so a restart does not publish a fill twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from agents.codec import decode_object
from agents.context import Output, Source, StageContext
from agents.orders import fill_event, is_ours, order_event
from brokers.exceptions import UnknownOrder
from brokers.port import FillReport, OrderReport, OrderService
from schemas.events import OrderEvent, OrderStatus

log = logging.getLogger(__name__)

# Fills can be reported a little after their execution time; re-read this far back.
FILL_OVERLAP = timedelta(seconds=30)


@dataclass
class Reconciler:
    venue: OrderService
    lookback: timedelta = timedelta(hours=24)
    watched: set[str] = field(default_factory=set)
    published: dict[str, tuple[OrderStatus, Decimal]] = field(default_factory=dict)
    seen_executions: set[str] = field(default_factory=set)
    cursor: datetime | None = None

    def seed(self, executions: set[str], orders: dict[str, tuple[OrderStatus, Decimal]]) -> None:
        """What earlier runs already published (read back from Kafka at start)."""
        self.seen_executions |= executions
        self.published.update(orders)
        self.watched |= {coid for coid, (status, _) in orders.items() if not status.is_terminal}

    def on_order_event(self, event: OrderEvent) -> None:
        known = self.published.get(event.client_order_id)
        if known is not None and known[0].is_terminal:
            return  # a late copy of an earlier state never reopens a finished order
        self.published[event.client_order_id] = (event.status, event.filled_quantity)
        if event.status.is_terminal:
            self.watched.discard(event.client_order_id)
        else:
            self.watched.add(event.client_order_id)

    async def poll(self, now: datetime) -> list[Output]:
        """One reconciliation pass: fills first, then each order whose state moved."""
        fills = await self._new_fills(now)
        out: list[Output] = [("fills", fill_event(f, self.venue.venue)) for f in fills]
        reports = {o.client_order_id: o for o in await self.venue.open_orders()
                   if is_ours(o.client_order_id)}
        # A fill may belong to an order no poll saw open (placed and filled in between).
        check = (self.watched | {f.client_order_id for f in fills}) - reports.keys()
        for coid in check:
            report = await self._status(coid)
            if report is not None:
                reports[coid] = report
        for report in reports.values():
            out.extend(self._changed(report, now))
        return out

    async def _new_fills(self, now: datetime) -> list[FillReport]:
        since = self.cursor if self.cursor is not None else now - self.lookback
        fills = [f for f in await self.venue.fills_since(since)
                 if is_ours(f.client_order_id) and f.execution_id not in self.seen_executions]
        for f in fills:
            self.seen_executions.add(f.execution_id)
        latest = max((f.executed_at for f in fills), default=None)
        if latest is not None and (self.cursor is None or latest - FILL_OVERLAP > self.cursor):
            self.cursor = latest - FILL_OVERLAP
        elif self.cursor is None:
            self.cursor = since
        return fills

    async def _status(self, coid: str) -> OrderReport | None:
        try:
            return await self.venue.status(coid)
        except UnknownOrder:
            log.warning("watched order %s is unknown at the venue; no longer watching", coid)
            self.watched.discard(coid)
            return None

    def _changed(self, report: OrderReport, now: datetime) -> list[Output]:
        state = (report.status, report.filled_quantity)
        coid = report.client_order_id
        if report.status.is_terminal:
            self.watched.discard(coid)
        else:
            self.watched.add(coid)
        if self.published.get(coid) == state:
            return []
        self.published[coid] = state
        return [("orders", order_event(report, self.venue.venue, now))]


async def handle_order_event(raw: bytes | None, source: Source, ctx: StageContext,
                             reconciler: Reconciler) -> list[Output]:
    """Watch every order the pipeline reports until the venue says it is finished."""
    event = OrderEvent.model_validate(decode_object(raw))
    reconciler.on_order_event(event)
    return []
