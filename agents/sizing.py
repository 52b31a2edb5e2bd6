"""Sizing stage: an approval becomes one sized order intent, or a refusal with its numbers.

Account, positions and open orders are read from the venue at decision time: a cache could
be stale, and a stale account is how a risk limit gets talked past. What the venue cannot know
yet (intents decided but not placed) comes from the reservation book, which lives in Kafka
(`order-intents`, `rejections`) and is rebuilt from there at start, so a burst of approvals
yields at most what each limit allows and a restarted worker decides the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from agents.codec import decode_object
from agents.context import Output, Source, StageContext
from agents.control import net_position
from agents.decisions.compliance import check_compliance, pdt_window_start
from agents.decisions.config import RiskSettings
from agents.decisions.decide import decide, reject_approval
from agents.decisions.instruments import Instrument, InstrumentBook, with_venue_rules
from agents.decisions.ledger import (
    Verdict,
    judge,
    needs_second_approver,
    signal_time_from,
    source_of,
    waiting_refusal,
    with_signal_time,
)
from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.reservations import pending_orders, with_reservations
from agents.decisions.rollout import live_settings
from agents.decisions.signatures import verify
from agents.decisions.validation import parse_approval
from agents.validation import refusal_without_event
from agents.venue_view import VenueSnapshot
from brokers.exceptions import OrderRejected, TransientBrokerError
from brokers.port import InstrumentRules, OrderReport, OrderService
from schemas.events import (
    Approval,
    LedgerStatus,
    OrderIntent,
    OrderLeg,
    Rejection,
    Side,
    SignalRecord,
)
from schemas.ids import client_order_id, derive_id

log = logging.getLogger(__name__)
RATE_WINDOW = timedelta(minutes=1)


async def handle_approval(raw: bytes | None, source: Source, ctx: StageContext) -> list[Output]:
    obj = decode_object(raw)
    now = ctx.clock()
    parsed = parse_approval(obj)
    if isinstance(parsed, Refusal):
        return [("rejections", refusal_without_event(parsed, _signal_part(obj), source, now))]
    verified = verify(raw or b"", ctx.keyring, now)
    if isinstance(verified, Refusal):  # unsigned, forged, unknown or revoked key, expired
        return [("rejections", reject_approval(parsed, verified, now))]
    where = source_of(source.topic, source.partition, source.offset)
    record = await _ledger_record(parsed, ctx)
    answered = _answered_already(parsed, record, where, ctx)
    if answered is not None:
        log.warning("approval %s (%s): %s; nothing published again", parsed.event_id, where,
                    answered)
        return []
    judgement = judge(record, parsed, where)
    if judgement.refusal is not None:
        # One rejection per Kafka record: each replay of an approval is on record.
        replay = derive_id("rejection", parsed.event_id, judgement.refusal.code, where)
        refused: list[Output] = [("rejections", reject_approval(parsed, judgement.refusal, now,
                                                                replay))]
        _remember(refused, ctx)
        return refused
    if judgement.verdict is Verdict.REDELIVERED and ctx.book.outcome_of(parsed.event_id):
        return []  # redelivered after a restart: its outcome is on Kafka already
    assert record is not None  # judge refuses an approval of a signal never seen
    approval = with_signal_time(parsed, record, signal_time_from(obj))
    try:
        outputs = await ctx.retry.call(lambda: _decide(approval, ctx, now))
    except TransientBrokerError as exc:
        outputs = [("rejections", _venue_unavailable(approval, exc, ctx, now))]
    if judgement.verdict is Verdict.DECIDE:
        outputs = _recorded(outputs, record, approval, (raw or b"").decode(), where, ctx, now)
    _remember(outputs, ctx)
    return outputs


def _answered_already(approval: Approval, record: SignalRecord | None, where: str,
                      ctx: StageContext) -> str | None:
    """Why this approval must get no second outcome, if it must not. Two processes can each
    take the same Kafka record around a rebalance or a kill, and the ledger one reads may
    differ from the other's (an approval may overtake its signal; a killed worker's sent
    decision may reach Kafka while the signal's ledger entry it wrote did not), so their
    answers would differ: both would be on record."""
    known = ctx.book.outcome_of(approval.event_id)
    if known is None:
        return None
    event = known.event
    if isinstance(event, Rejection) and event.event_id == derive_id(
            "rejection", approval.event_id, event.reason_code, where):
        return f"this record was refused {event.reason_code} already"
    unseen = isinstance(event, Rejection) and event.reason_code == ReasonCode.SIGNAL_NOT_SEEN
    if record is None and not unseen:
        return (f"its decision is on Kafka already, and its signal {approval.signal.id} is not "
                "in this process's ledger yet")
    return None


def _remember(outputs: list[Output], ctx: StageContext) -> None:
    """Into this process's memory at once (the tail of Kafka brings them back later too)."""
    for _, event in outputs:
        if isinstance(event, OrderIntent):
            ctx.book.on_intent(event)
        elif isinstance(event, Rejection):
            ctx.book.on_rejection(event)
        elif isinstance(event, SignalRecord):
            ctx.ledger.on_record(event)


async def _ledger_record(approval: Approval, ctx: StageContext) -> SignalRecord | None:
    """The signal's ledger entry; an approval may overtake its signal on the way in, so one
    whose signal is not yet in the ledger waits a moment for it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.signal_grace.total_seconds()
    while True:
        record = ctx.ledger.get(approval.correlation_id)
        if record is not None or loop.time() >= deadline:
            return record
        await asyncio.sleep(0.05)


def _recorded(outputs: list[Output], record: SignalRecord, approval: Approval, raw: str,
              where: str, ctx: StageContext, now: datetime) -> list[Output]:
    """The decision into the signal ledger; four-eyes holds an order above the threshold until
    a second, different approver approves it."""
    out: list[Output] = []
    for topic, event in outputs:
        if isinstance(event, OrderIntent):
            value = event.sizing.position_value
            threshold = ctx.risk.four_eyes_notional
            if threshold is not None and needs_second_approver(record, approval, value,
                                                               threshold):
                waiting = record.after(approval, raw, LedgerStatus.AWAITING_SECOND_APPROVAL,
                                       where, now)
                held = reject_approval(approval, waiting_refusal(approval, value, threshold),
                                       now)
                return [("signal-ledger", waiting), ("rejections", held)]
            decided = record.after(approval, raw, LedgerStatus.DECIDED, where, now)
            out += [("signal-ledger", decided),
                    (topic, event.model_copy(update={"approvals": decided.approvals}))]
        else:
            out += [("signal-ledger", record.after(approval, raw, LedgerStatus.DECIDED, where,
                                                   now)), (topic, event)]
    return out


async def _decide(approval: Approval, ctx: StageContext, now: datetime) -> list[Output]:
    """The venue as read at most VENUE_SNAPSHOT_SECONDS ago, plus what was decided but is not
    yet visible there (reservations taken before the venue was read: a reservation the venue
    shows is counted by the venue's figures, one it does not show is counted as pending; a
    race can count an order twice for a moment, the conservative way, never zero times)."""
    gate = ctx.gate
    blocked = gate.blocked(approval.signal.symbol, approval.signal.strategy_id) if gate else None
    if blocked is not None:
        return [("rejections", reject_approval(approval, blocked, now))]
    book = ctx.book
    coid = client_order_id(approval.correlation_id)
    reservations = book.snapshot(now)
    window_start = now - RATE_WINDOW
    oldest = book.oldest(reservations)
    since = min(window_start, oldest - RATE_WINDOW) if oldest is not None else window_start
    snap = await ctx.view.get(now, since)
    existing = snap.known(coid)
    if existing is not None:
        return [("rejections", _decided_already(approval, coid, existing.status.value, now))]
    assert snap.account is not None, "the sizing view reads the account"
    book.settle(snap.sent_ids)
    pending = pending_orders(reservations, snap.visible_ids, exclude=coid)
    # count_recent([*snap.sent, *pending]): pending excludes every id the snapshot shows
    recent = snap.entries_since(window_start) + count_recent(pending, window_start)
    symbol = approval.signal.symbol
    try:
        # only a sell can be a short sale: only its rules need the venue's borrow answer
        rules = await ctx.rules.get(symbol, now, borrow=approval.signal.side is Side.SELL)
        spec = with_venue_rules(InstrumentBook.from_settings(ctx.risk).get(symbol), rules)
    except OrderRejected as exc:  # the venue does not know the instrument
        return [("rejections", _venue_refused(approval, exc, now))]
    risk = live_settings(snap.account, ctx.risk, ctx.grants)  # live: a signed go-live only
    if isinstance(risk, Refusal):
        return [("rejections", reject_approval(approval, risk, now))]
    # The limits count working entries only; the compliance checks compare the order with
    # its own symbol's working orders only (self-cross): each gets just those, from indexes
    # the snapshot makes once for every decision it serves.
    result = decide(approval, with_reservations(snap.account, pending), snap.positions,
                    [*snap.open_entries, *pending], recent, now, risk, ctx.venue.venue,
                    instruments={symbol: spec})
    working = [*snap.open_orders_of(symbol), *(p for p in pending if p.symbol == symbol)]
    result = await _comply(approval, result, snap, working, rules, spec, ctx, now, risk)
    if isinstance(result, OrderIntent) and gate is not None:
        refusal = gate.check(result.symbol, result.strategy_id, result.side, result.quantity,
                             net_position(snap.positions, result.symbol), "sizing")
        if refusal is not None:
            result = reject_approval(approval, refusal, now)
    topic = "rejections" if isinstance(result, Rejection) else "order-intents"
    return [(topic, result)]


async def _comply(approval: Approval, result: OrderIntent | Rejection, snap: VenueSnapshot,
                  working: list[OrderReport], rules: InstrumentRules | None, spec: Instrument,
                  ctx: StageContext, now: datetime,
                  risk: RiskSettings | None = None) -> OrderIntent | Rejection:
    """The decided order against the compliance rules (agents/decisions/compliance.py);
    `working`: the account's working orders in the order's symbol (all the rules look at).
    The account's fills are read only when the pattern day trader rule can apply."""
    if not isinstance(result, OrderIntent):
        return result
    account, risk = snap.account, risk or ctx.risk
    assert account is not None, "the sizing view reads the account"
    fills = []
    if risk.pdt_check and account.equity < risk.pdt_equity_threshold:
        fills = await ctx.venue.fills_since(pdt_window_start(now, risk))
    refusal = check_compliance(result, account, snap.positions, working, fills, rules, now,
                               risk, spec.asset_class)
    return result if refusal is None else reject_approval(approval, refusal, now)


def _signal_part(obj: dict[str, object]) -> dict[str, object]:
    signal = obj.get("signal")
    return signal if isinstance(signal, dict) else {}


def _decided_already(approval: Approval, coid: str, status: str, now: datetime) -> Rejection:
    refusal = Refusal(
        code=ReasonCode.ALREADY_DECIDED,
        message=(f"signal {approval.signal.id} already has order {coid} "
                 f"({status}); this decision places nothing"),
        details={"client_order_id": coid, "order_status": status,
                 "decided_by": approval.approved_by},
        stage="validation",
    )
    return reject_approval(approval, refusal, now)


def _venue_refused(approval: Approval, exc: OrderRejected, now: datetime) -> Rejection:
    refusal = Refusal(
        code=ReasonCode.VENUE_REJECTED,
        message=f"the venue refuses {approval.signal.symbol}: {exc.message} (venue code "
                f"{exc.code}); nothing was sized or placed",
        details={"venue_code": str(exc.code), "venue_message": exc.message},
        stage="sizing",
    )
    return reject_approval(approval, refusal, now)


def _venue_unavailable(approval: Approval, exc: TransientBrokerError, ctx: StageContext,
                       now: datetime) -> Rejection:
    refusal = Refusal(
        code=ReasonCode.VENUE_UNAVAILABLE,
        message=(f"the account could not be read from the venue after {ctx.retry.attempts} "
                 f"attempts: {exc.message}; nothing was sized or placed (approve again to retry)"),
        details={"venue_code": str(exc.code), "attempts": str(ctx.retry.attempts)},
        stage="sizing",
    )
    return reject_approval(approval, refusal, now)


async def recent_order_count(venue: OrderService, now: datetime) -> int:
    """Entry orders the account sent (created) in the last minute, from the venue, for the
    order-rate limit: every one counts whatever became of it (filled, cancelled, an unfilled
    IOC, expired, rejected after acceptance), so a loop of orders that never fill still trips
    the limit; an older order that happens to fill this minute does not count."""
    return count_recent(await venue.orders_since(now - RATE_WINDOW), now - RATE_WINDOW)


def count_recent(orders: Iterable[OrderReport], since: datetime) -> int:
    """Distinct entry orders created at or after `since`. Bracket exit children (known by
    their leg: each venue names them its own way) are part of their entry's order."""
    return len({o.client_order_id for o in orders
                if o.created_at >= since and o.leg is OrderLeg.ENTRY})
