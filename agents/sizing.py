"""Sizing stage: an approval becomes one sized order intent, or a refusal with its numbers.

Account, positions and open orders are read from the venue at decision time (stateless):
a cache could be stale, and a stale account is how a risk limit gets talked past.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from agents.codec import decode_object
from agents.context import Output, Source, StageContext
from agents.decisions.decide import decide, reject_approval
from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.validation import parse_approval
from agents.validation import refusal_without_event
from brokers.exceptions import UnknownOrder
from brokers.port import OrderService
from schemas.events import Approval, Rejection
from schemas.ids import client_order_id


async def handle_approval(raw: bytes | None, source: Source, ctx: StageContext) -> list[Output]:
    obj = decode_object(raw)
    now = ctx.clock()
    parsed = parse_approval(obj)
    if isinstance(parsed, Refusal):
        return [("rejections", refusal_without_event(parsed, _signal_part(obj), source, now))]
    duplicate = await _already_ordered(parsed, ctx.venue, now)
    if duplicate is not None:
        return [("rejections", duplicate)]
    venue = ctx.venue
    account = await venue.account()
    positions = await venue.positions()
    open_orders = await venue.open_orders()
    recent = await recent_order_count(venue, now)
    result = decide(parsed, account, positions, open_orders, recent, now, ctx.risk, venue.venue)
    topic = "rejections" if isinstance(result, Rejection) else "order-intents"
    return [(topic, result)]


def _signal_part(obj: dict[str, object]) -> dict[str, object]:
    signal = obj.get("signal")
    return signal if isinstance(signal, dict) else {}


async def _already_ordered(
    approval: Approval, venue: OrderService, now: datetime
) -> Rejection | None:
    """A second decision on a signal that already has an order is a no-op, kept on record."""
    coid = client_order_id(approval.correlation_id)
    try:
        existing = await venue.status(coid)
    except UnknownOrder:
        return None
    refusal = Refusal(
        code=ReasonCode.ALREADY_DECIDED,
        message=(f"signal {approval.signal.id} already has order {coid} "
                 f"({existing.status.value}); this decision places nothing"),
        details={"client_order_id": coid, "order_status": existing.status.value,
                 "decided_by": approval.approved_by},
        stage="validation",
    )
    return reject_approval(approval, refusal, now)


async def recent_order_count(venue: OrderService, now: datetime) -> int:
    """Entry orders the account sent (created) in the last minute, from the venue, for the
    order-rate limit: every one counts whatever became of it (filled, cancelled, an unfilled
    IOC, expired, rejected after acceptance), so a loop of orders that never fill still trips
    the limit; an older order that happens to fill this minute does not count. Bracket exit
    children (`-tp` / `-sl`) are part of their entry's order, not orders of their own."""
    since = now - timedelta(minutes=1)
    sent = {o.client_order_id for o in await venue.orders_since(since)}
    return len({i for i in sent if not i.endswith(("-tp", "-sl"))})
