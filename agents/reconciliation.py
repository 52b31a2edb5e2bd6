"""Reconciliation stage: what the venue says happened becomes order, fill and alert events.

The venue is the source of truth. Each poll reads its executions since a cursor, its open
orders and the status of every order we watch, and returns the difference with what was
already published as a `Poll`: the events to send, and `commit()`, which the caller runs only
after every send succeeded. Nothing is remembered before the commit, so a venue error at any
step of a poll, or a failed send, loses nothing: the next poll finds the same facts again, and
derived event ids (order: client id + status + filled; fill: venue + execution id; alert: kind
+ subject) make a repeat recognisable downstream.

- Fills: an execution whose commission the venue has not reported yet
  (FillReport.commission_known False) is held for `commission_grace`, then published with
  the commission known so far and an Alert LATE_COMMISSION. The cursor never passes a held
  fill.
- Orders: each report goes through agents.decisions.order_state.transition; an illegal one is
  not published and becomes an Alert ILLEGAL_TRANSITION, unless an event on `orders` moved
  the order on after this pass began reading (a stale read, judged again at the next pass).
  A watched order the venue no longer knows is resolved as `cancelled` with reason_code
  "vanished" plus an Alert ORDER_VANISHED (a pending_submit order only after
  `pending_submit_timeout`: it may not be placed yet).
- Orders and fills the pipeline never placed (agents.orders.is_ours) are not traded on; each
  becomes one Alert EXTERNAL_ORDER per venue order id.
- Start-up (`start_up`, also what the first `poll` does) adds a position check: the venue's
  positions against what our fills add up to per account and symbol (Alert POSITION_MISMATCH).
  Positions and executions are two reads, so an execution between them looks like a
  difference: a difference is alerted only when the next poll reads it again with the same
  figures (`position_confirmations` reads in a row); one that resolves was a fill in flight.
- Memory is bounded: an order is forgotten once its final event is committed (a bounded set of
  recent final states answers late copies), executions once older than the cursor.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from agents.codec import decode_object
from agents.context import Output, Source, StageContext
from agents.decisions.order_state import Accepted, Illegal, OrderState, transition
from agents.orders import fill_event, is_ours, order_event, owner
from agents.venue_view import account_and_positions
from brokers.exceptions import UnknownOrder
from brokers.port import FillReport, OrderReport, OrderService, child_client_order_id
from schemas.events import Alert, AlertKind, Fill, OrderEvent, OrderLeg, OrderStatus, Side

log = logging.getLogger(__name__)

SOURCE = "reconciliation"
VANISHED = "vanished"  # reason_code of the cancelled event of an order the venue forgot
# Fills can be reported a little after their execution time; re-read this far back. Must
# exceed the commission grace, so a fill held for its commission is re-read after a restart.
FILL_OVERLAP = timedelta(seconds=30)
COMMISSION_GRACE = timedelta(seconds=10)
PENDING_SUBMIT_TIMEOUT = timedelta(minutes=5)
RECENT_LIMIT = 10_000

PositionKey = tuple[str, str]  # account, symbol
Suspect = tuple[Decimal, Decimal, int]  # venue quantity, fills quantity, reads in a row
# An open order's report judged to move nothing, with the watched event and final state it
# was judged against (see Reconciler._unchanged).
Quiet = tuple[OrderReport, OrderEvent | None, OrderState | None]


def _correlated(coid: str, parent: str | None = None) -> dict[str, UUID]:
    """The signal an alert about one of our orders belongs to (so a trace shows it)."""
    correlation = owner(coid, parent)
    return {} if correlation is None else {"correlation_id": correlation}


def signed(side: Side, quantity: Decimal) -> Decimal:
    return quantity if side is Side.BUY else -quantity


@dataclass
class Seed:
    """What earlier runs published, read back from Kafka (agents.reconciliation_seed)."""

    executions: dict[str, datetime] = field(default_factory=dict)  # execution id -> executed at
    orders: dict[str, OrderEvent] = field(default_factory=dict)  # last event, orders not final
    finished: dict[str, OrderState] = field(default_factory=dict)  # recent final states
    alerts: set[UUID] = field(default_factory=set)
    positions: dict[PositionKey, Decimal] = field(default_factory=dict)  # sum of our fills

    @property
    def latest_execution(self) -> datetime | None:
        return max(self.executions.values(), default=None)


class Poll:
    """The events one reconciliation pass found, and how to remember them once sent."""

    def __init__(self, outputs: list[Output], on_commit: Callable[[], None]) -> None:
        self.outputs = outputs
        self._on_commit: Callable[[], None] | None = on_commit

    def commit(self) -> None:
        """Call only after every output is on Kafka; a second call does nothing."""
        if self._on_commit is not None:
            self._on_commit()
            self._on_commit = None


@dataclass
class _Pass:
    """What one poll found, applied to the reconciler only by Poll.commit."""

    now: datetime
    since: datetime
    outputs: list[Output] = field(default_factory=list)
    processed: dict[str, datetime] = field(default_factory=dict)  # execution id -> executed at
    fills: list[Fill] = field(default_factory=list)
    held: list[FillReport] = field(default_factory=list)
    orders: list[OrderEvent] = field(default_factory=list)
    alerts: list[UUID] = field(default_factory=list)
    starting: bool = False
    checked: bool = False  # a position check ran: `suspects` replaces the reconciler's
    suspects: dict[PositionKey, Suspect] = field(default_factory=dict)
    epoch: int = 0  # the reconciler's event count when this pass began reading the venue
    quiet: dict[str, Quiet] = field(default_factory=dict)  # open reports that moved nothing

    def emit(self, topic: str, event: OrderEvent | Fill | Alert) -> None:
        self.outputs.append((topic, event))


def bracket_siblings(fills: Iterable[Fill]) -> set[str]:
    """The client ids of the other exits of each filled bracket exit (`<parent>-tp/-sl`)."""
    return {
        child_client_order_id(fill.parent_client_order_id, leg)
        for fill in fills
        if fill.leg is not OrderLeg.ENTRY and fill.parent_client_order_id
        for leg in (OrderLeg.TAKE_PROFIT, OrderLeg.STOP_LOSS)
        if leg is not fill.leg
    }


@dataclass
class Reconciler:
    venue: OrderService
    lookback: timedelta = timedelta(hours=24)  # when no fill is known yet
    overlap: timedelta = FILL_OVERLAP
    commission_grace: timedelta = COMMISSION_GRACE
    pending_submit_timeout: timedelta = PENDING_SUBMIT_TIMEOUT
    recent_limit: int = RECENT_LIMIT
    orders: dict[str, OrderEvent] = field(default_factory=dict)  # watched: not final yet
    finished: OrderedDict[str, OrderState] = field(default_factory=OrderedDict)
    seen_executions: dict[str, datetime] = field(default_factory=dict)
    commission_wait: dict[str, datetime] = field(default_factory=dict)  # held since
    alerted: OrderedDict[UUID, None] = field(default_factory=OrderedDict)
    positions: dict[PositionKey, Decimal] = field(default_factory=dict)
    # A position difference is alerted once read this many times in a row with the same figures.
    position_confirmations: int = 2
    suspects: dict[PositionKey, Suspect] = field(default_factory=dict)
    cursor: datetime | None = None
    latest_execution: datetime | None = None  # the newest execution processed
    started: bool = False
    # Order events learned from `orders`, counted; coid -> the count when its state last moved
    # that way (kept only while a pass that began before it may still judge a report of it).
    events_learned: int = 0
    moved_at: dict[str, int] = field(default_factory=dict)
    quiet: dict[str, Quiet] = field(default_factory=dict)  # the last committed pass's

    def __post_init__(self) -> None:
        if self.overlap <= self.commission_grace:
            raise ValueError("the fill overlap must exceed the commission grace period")

    @property
    def watched(self) -> set[str]:
        return set(self.orders)

    def seed(self, seed: Seed) -> None:
        """What earlier runs already published (read back from Kafka at start)."""
        latest = seed.latest_execution
        if latest is not None:
            self.latest_execution = latest
            self.cursor = latest - self.overlap
        cursor = self.cursor
        self.seen_executions.update(
            {e: at for e, at in seed.executions.items() if cursor is None or at >= cursor})
        for coid, state in seed.finished.items():
            self._finish(coid, state)
        for event in seed.orders.values():
            self._record(event)
        for alert_id in seed.alerts:
            self._remember_alert(alert_id)
        self.positions.update(seed.positions)

    def on_order_event(self, event: OrderEvent) -> None:
        """An order event on `orders` (submission's or our own): watch it until final."""
        if self._record(event):
            self.events_learned += 1
            self.moved_at[event.client_order_id] = self.events_learned

    async def poll(self, now: datetime) -> Poll:
        """One reconciliation pass (the first one, until committed, is the start-up pass)."""
        if not self.started:
            return await self.start_up(now)
        found = self._pass(now)
        await self._reconcile(found)
        if self.suspects:
            await self._check_positions(found, set(self.suspects))
        return Poll(found.outputs, lambda: self._commit(found))

    async def start_up(self, now: datetime) -> Poll:
        """Orders, executions since the last known one, and positions against our fills."""
        found = self._pass(now)
        found.starting = True
        await self._reconcile(found)
        await self._check_positions(found)
        return Poll(found.outputs, lambda: self._commit(found))

    def _pass(self, now: datetime) -> _Pass:
        return _Pass(now=now, since=self.cursor if self.cursor is not None else now - self.lookback,
                     epoch=self.events_learned)

    async def _reconcile(self, found: _Pass) -> None:
        await self._fills(found)
        reports = await self._open_reports(found)
        held = {f.client_order_id for f in found.held}
        # A fill may belong to an order no poll saw open (placed and filled in between).
        check = (self.orders.keys() | {f.client_order_id for f in found.fills}) - reports.keys()
        check -= found.quiet.keys()
        for coid in sorted(check - held):
            status = await self._status(coid, found)
            if status is not None:
                reports[coid] = status
        # An exit its sibling's fill cancelled (one cancels all) between two passes was never
        # open when a pass looked, and nothing else names it: a filled exit's siblings are
        # looked up too, once, while unknown (a bracket with one exit has no sibling to find).
        for coid in sorted(bracket_siblings(found.fills) - reports.keys() - held):
            if self._known(coid) is None:
                try:
                    reports[coid] = await self.venue.status(coid)
                except UnknownOrder:
                    continue
        # An order's state waits for its held fills: fills first, then the state they made.
        for coid, report in reports.items():
            if coid not in held:
                self._order(report, found)

    async def _open_reports(self, found: _Pass) -> dict[str, OrderReport]:
        """Our open orders to judge (not those unchanged since a committed pass); another's
        becomes an alert."""
        reports: dict[str, OrderReport] = {}
        for report in await self.venue.open_orders():
            if self._unchanged(report, found):
                continue
            if is_ours(report.client_order_id, report.parent_client_order_id):
                reports[report.client_order_id] = report
            else:
                self._external(found, report.venue_order_id, report.account_id, report.symbol,
                               {"client_order_id": report.client_order_id,
                                "side": report.side.value, "quantity": str(report.quantity),
                                "status": report.status.value})
        return reports

    def _unchanged(self, report: OrderReport, found: _Pass) -> bool:
        """The report a committed pass judged and found nothing in, against the state it was
        judged against: judging it again would find nothing again (the judgement is a pure
        function of the two). Adapters that build a report again only when the order changed
        (IB, the simulator) hand back the same object for an unchanged open order, so this
        is an identity check and a pass costs what changed, not every resting order of the
        day; elsewhere the tuples compare by value."""
        memo = self.quiet.get(report.client_order_id)
        if memo is None or memo != self._judged_against(report):
            return False
        found.quiet[report.client_order_id] = memo
        return True

    def _judged_against(self, report: OrderReport) -> Quiet:
        coid = report.client_order_id
        return report, self.orders.get(coid), self.finished.get(coid)

    async def _fills(self, found: _Pass) -> None:
        for report in await self.venue.fills_since(found.since):
            if report.execution_id in self.seen_executions:
                continue
            if not is_ours(report.client_order_id, report.parent_client_order_id):
                found.processed[report.execution_id] = report.executed_at
                self._external(found, report.venue_order_id, report.account_id, report.symbol,
                               {"client_order_id": report.client_order_id,
                                "side": report.side.value, "execution_id": report.execution_id,
                                "quantity": str(report.quantity), "price": str(report.price)})
                continue
            if not report.commission_known:
                # Held since first sight: an observation, not a publication, so kept uncommitted.
                held_since = self.commission_wait.setdefault(report.execution_id, found.now)
                if found.now - held_since < self.commission_grace:
                    found.held.append(report)
                    continue
                self._late_commission(found, report)
            event = fill_event(report, self.venue.venue)
            found.processed[report.execution_id] = report.executed_at
            found.fills.append(event)
            found.emit("fills", event)

    def _late_commission(self, found: _Pass, report: FillReport) -> None:
        seconds = self.commission_grace.total_seconds()
        self._alert(found, Alert.of(
            AlertKind.LATE_COMMISSION, SOURCE,
            f"execution {report.execution_id} of {report.client_order_id}: no commission "
            f"reported within {seconds:g}s; the fill is recorded with {report.commission}",
            self.venue.venue, report.execution_id,
            **_correlated(report.client_order_id, report.parent_client_order_id),
            account_id=report.account_id, symbol=report.symbol,
            client_order_id=report.client_order_id,
            details={"execution_id": report.execution_id, "grace_seconds": f"{seconds:g}",
                     "commission_recorded": str(report.commission)}))

    def _external(self, found: _Pass, venue_order_id: str, account: str, symbol: str,
                  details: dict[str, str]) -> None:
        self._alert(found, Alert.of(
            AlertKind.EXTERNAL_ORDER, SOURCE,
            f"order {venue_order_id} ({details['client_order_id']}) {details['side']} "
            f"{details['quantity']} {symbol} in {account} was not placed by the pipeline; "
            "it is not traded on",
            self.venue.venue, venue_order_id, account_id=account, symbol=symbol,
            client_order_id=details["client_order_id"],
            details={"venue_order_id": venue_order_id, **details}))

    async def _status(self, coid: str, found: _Pass) -> OrderReport | None:
        try:
            return await self.venue.status(coid)
        except UnknownOrder:
            self._vanished(coid, found)
            return None

    def _vanished(self, coid: str, found: _Pass) -> None:
        last = self.orders.get(coid)
        if last is None:
            log.warning("order %s of a fill is unknown at the venue", coid)
            return
        if (last.status is OrderStatus.PENDING_SUBMIT
                and found.now - last.occurred_at < self.pending_submit_timeout):
            return  # the submission stage may not have placed it yet
        event = OrderEvent.model_validate({
            **last.model_dump(),
            "event_id": OrderEvent.derive_event_id(coid, OrderStatus.CANCELLED,
                                                   last.filled_quantity),
            "causation_id": last.event_id, "occurred_at": found.now, "recorded_at": found.now,
            "status": OrderStatus.CANCELLED, "reason_code": VANISHED,
            "message": f"the venue no longer knows this order (last seen {last.status})",
            "attempts": None,
        })
        found.orders.append(event)
        found.emit("orders", event)
        self._alert(found, Alert.of(
            AlertKind.ORDER_VANISHED, SOURCE,
            f"order {coid} was {last.status} (filled {last.filled_quantity}) and the venue no "
            f"longer knows it; recorded as cancelled ({VANISHED})",
            coid, correlation_id=last.correlation_id, account_id=last.account_id,
            symbol=last.symbol, client_order_id=coid,
            details={"last_status": last.status.value,
                     "filled_quantity": str(last.filled_quantity)}))

    def _known(self, coid: str) -> OrderState | None:
        if coid in self.orders:
            return OrderState.of(self.orders[coid])
        return self.finished.get(coid)

    def _order(self, report: OrderReport, found: _Pass) -> None:
        coid = report.client_order_id
        known = self._known(coid)
        outcome = transition(known, OrderState.of(report))
        if isinstance(outcome, Accepted):
            event = order_event(report, self.venue.venue, found.now)
            found.orders.append(event)
            found.emit("orders", event)
        elif not isinstance(outcome, Illegal):
            found.quiet[coid] = self._judged_against(report)
        else:
            if self.moved_at.get(coid, 0) > found.epoch:
                # The venue was read before an event on `orders` (the submission stage's
                # answer, read from the same venue) moved this order on: a stale read, not the
                # venue going back. The next pass reads it again.
                log.debug("order %s: report %s/%s read before its state moved on; skipped",
                          coid, report.status, report.filled_quantity)
                return
            before = f"{known.status}/{known.filled_quantity}" if known else "none"
            after = f"{report.status}/{report.filled_quantity}"
            self._alert(found, Alert.of(
                AlertKind.ILLEGAL_TRANSITION, SOURCE,
                f"order {coid}: the venue reports {after} after {before}; not published "
                f"({outcome.reason})",
                coid, before, after, **_correlated(coid),
                account_id=report.account_id, symbol=report.symbol, client_order_id=coid,
                details={"from": before, "to": after, "reason": outcome.reason}))

    async def _check_positions(self, found: _Pass, only: set[PositionKey] | None = None
                               ) -> None:
        snapshot, at_venue = await account_and_positions(self.venue)
        account = snapshot.account_id
        venue_qty: dict[PositionKey, Decimal] = {}
        for position in at_venue:
            key = (position.account_id, position.symbol)
            venue_qty[key] = venue_qty.get(key, Decimal(0)) + position.quantity
        ours = self._positions_with(found.fills, found.held)
        accounts = {account} | {a for a, _ in venue_qty}
        found.checked = True
        for key in sorted(venue_qty.keys() | ours.keys()):
            if only is not None and key not in only:
                continue
            theirs, mine = venue_qty.get(key, Decimal(0)), ours.get(key, Decimal(0))
            if key[0] not in accounts or theirs == mine:
                continue
            before = self.suspects.get(key)
            reads = before[2] + 1 if before and before[:2] == (theirs, mine) else 1
            if reads >= self.position_confirmations:
                self._mismatch(found, key, theirs, mine)
            else:
                found.suspects[key] = (theirs, mine, reads)

    def _positions_with(self, fills: Iterable[Fill], held: Iterable[FillReport]
                        ) -> dict[PositionKey, Decimal]:
        out = dict(self.positions)
        executions: list[Fill | FillReport] = [*fills, *held]
        for f in executions:
            key = (f.account_id, f.symbol)
            out[key] = out.get(key, Decimal(0)) + signed(f.side, f.quantity)
        return out

    def _mismatch(self, found: _Pass, key: PositionKey, theirs: Decimal, mine: Decimal) -> None:
        account, symbol = key
        self._alert(found, Alert.of(
            AlertKind.POSITION_MISMATCH, SOURCE,
            f"{account} {symbol}: the venue holds {theirs}, the pipeline's fills add up to {mine}",
            account, symbol, theirs.normalize(), mine.normalize(),
            account_id=account, symbol=symbol,
            details={"venue_quantity": str(theirs), "fills_quantity": str(mine),
                     "difference": str(theirs - mine)}))

    def _alert(self, found: _Pass, alert: Alert) -> None:
        if alert.event_id in self.alerted or alert.event_id in found.alerts:
            return
        found.alerts.append(alert.event_id)
        found.emit("alerts", alert)

    # ------------------------------------------------------------ commit

    def _commit(self, found: _Pass) -> None:
        for execution, at in found.processed.items():
            self.seen_executions[execution] = at
            self.commission_wait.pop(execution, None)
        self.positions = self._positions_with(found.fills, [])
        for event in found.orders:
            self._record(event)
        for alert_id in found.alerts:
            self._remember_alert(alert_id)
        self._advance_cursor(found)
        # passes run one at a time: no later pass began before these moves
        self.moved_at = {c: n for c, n in self.moved_at.items() if n > found.epoch}
        if found.checked:
            self.suspects = found.suspects
        self.quiet = found.quiet  # the orders open at this pass only: bounded
        if found.starting:
            self.started = True

    def _advance_cursor(self, found: _Pass) -> None:
        latest = max([*found.processed.values(), *filter(None, [self.latest_execution])],
                     default=None)
        self.latest_execution = latest
        target = found.since if latest is None else latest - self.overlap
        # A held fill must be read again: the cursor never passes it.
        target = min([target, *(f.executed_at for f in found.held)])
        cursor = max(target, found.since)
        self.cursor = cursor
        self.seen_executions = {e: at for e, at in self.seen_executions.items() if at >= cursor}

    def _record(self, event: OrderEvent) -> bool:
        """Watch or finish the order as `event` says; False when it moved nothing."""
        coid = event.client_order_id
        if not isinstance(transition(self._known(coid), OrderState.of(event)), Accepted):
            return False  # same state, a stale copy, or a late copy after the final one
        if event.status.is_terminal:
            self.orders.pop(coid, None)
            self._finish(coid, OrderState.of(event))
        else:
            self.orders[coid] = event
        return True

    def _finish(self, coid: str, state: OrderState) -> None:
        self.finished[coid] = state
        self.finished.move_to_end(coid)
        while len(self.finished) > self.recent_limit:
            self.finished.popitem(last=False)

    def _remember_alert(self, alert_id: UUID) -> None:
        self.alerted[alert_id] = None
        self.alerted.move_to_end(alert_id)
        while len(self.alerted) > self.recent_limit:
            self.alerted.popitem(last=False)


async def handle_order_event(raw: bytes | None, source: Source, ctx: StageContext,
                             reconciler: Reconciler) -> list[Output]:
    """Watch every order the pipeline reports until the venue says it is finished."""
    event = OrderEvent.model_validate(decode_object(raw))
    reconciler.on_order_event(event)
    return []
