"""Submission stage: place each intent at the venue exactly once.

The client order id is derived from the signal, and the venue is asked for it before any
placement (the orders it was sent in the look-back window, read at most
VENUE_SNAPSHOT_SECONDS before, by this stage or by sizing in the same process; an order
placed since by this process is known to the adapter, which refuses a duplicate client id),
so a redelivered intent (at-least-once) never becomes a second order.
"""

from __future__ import annotations

import logging

from agents.codec import decode_object
from agents.context import Output, Source, StageContext
from agents.control import intent_refusal
from agents.decisions.approved import check_intent
from agents.decisions.decide import rejection_from
from agents.decisions.reasons import ReasonCode, Refusal
from agents.orders import order_event
from agents.retry import Attempts, RetryPolicy
from brokers.exceptions import (
    DuplicateClientOrderId,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
)
from brokers.port import OrderReport, OrderRequest, OrderService
from schemas.events import OrderIntent, OrderStatus, Rejection
from schemas.ids import derive_id

log = logging.getLogger(__name__)


def request_from(intent: OrderIntent) -> OrderRequest:
    return OrderRequest(
        client_order_id=intent.client_order_id,
        symbol=intent.symbol,
        side=intent.side,
        quantity=intent.quantity,
        order_type=intent.order_type,
        limit_price=intent.limit_price,
        stop_price=intent.stop_price,
        time_in_force=intent.time_in_force,
        take_profit=intent.take_profit,
        stop_loss=intent.stop_loss,
    )


async def existing_order(venue: OrderService, coid: str) -> OrderReport | None:
    try:
        return await venue.status(coid)
    except UnknownOrder:
        return None


async def handle_intent(raw: bytes | None, source: Source, ctx: StageContext) -> list[Output]:
    intent = OrderIntent.model_validate(decode_object(raw))
    unapproved = check_intent(intent, ctx.keyring, ctx.risk)
    if unapproved is not None:
        return [("rejections", _rejection(intent, unapproved, ctx))]
    venue = ctx.venue
    attempts = Attempts()
    now = ctx.clock()
    # The sizing stage's snapshot when it is fresh enough (the same age limit): one venue read
    # of every order serves both stages instead of one each.
    snap = ctx.view.fresh(now)
    try:
        if snap is None:
            snap = await ctx.retry.call(lambda: ctx.orders_view.get(now))
    except TransientBrokerError as exc:
        return _unavailable(intent, exc, ctx, attempts)
    existing = snap.known(intent.client_order_id)
    if existing is not None:
        log.info("intent %s already at the venue as %s: not placing again",
                 intent.client_order_id, existing.status)
        return [("orders", order_event(existing, venue.venue, ctx.clock()))]
    refused = await intent_refusal(ctx.gate, intent, venue, ctx.retry)
    if refused is not None:
        return [("rejections", _rejection(intent, refused, ctx))]
    submitted_at = ctx.clock()
    try:
        report = await _place(venue, request_from(intent), ctx.retry, attempts)
    except DuplicateClientOrderId:
        # Placed since the snapshot was read (by this process): the venue has it already.
        try:
            report = await ctx.retry.call(lambda: venue.status(intent.client_order_id))
        except TransientBrokerError as exc:
            return _unavailable(intent, exc, ctx, attempts)
        return [("orders", order_event(report, venue.venue, ctx.clock()))]
    except OrderRejected as exc:
        return _refused(intent, exc, ctx, attempts)
    except TransientBrokerError as exc:
        return _unavailable(intent, exc, ctx, attempts)
    tries = max(attempts.count, 1)
    submitted = report.model_copy(update={"status": OrderStatus.SUBMITTED,
                                          "filled_quantity": report.filled_quantity * 0,
                                          "avg_fill_price": None})
    return [
        ("orders", order_event(submitted, venue.venue, submitted_at)
         .model_copy(update={"attempts": tries})),
        ("orders", order_event(report, venue.venue, ctx.clock())
         .model_copy(update={"attempts": tries})),
    ]


async def _place(venue: OrderService, request: OrderRequest, policy: RetryPolicy,
                 attempts: Attempts) -> OrderReport:
    """Retry only transient failures (the one policy); before each retry, look the order up:
    the last try may have reached the venue even though its answer did not reach us."""

    async def once() -> OrderReport:
        if attempts.count > 1:
            found = await existing_order(venue, request.client_order_id)
            if found is not None:
                return found
        return await venue.place(request)

    return await policy.call(once, attempts)


def _refused(intent: OrderIntent, exc: OrderRejected, ctx: StageContext,
             attempts: Attempts) -> list[Output]:
    refusal = Refusal(
        code=ReasonCode.VENUE_REJECTED,
        message=f"the venue refused the order: {exc.message} (venue code {exc.code})",
        details={"venue_code": str(exc.code), "venue_message": exc.message,
                 "client_order_id": intent.client_order_id,
                 "attempts": str(max(attempts.count, 1))},
        stage="submission",
    )
    return [("rejections", _rejection(intent, refusal, ctx))]


def _unavailable(intent: OrderIntent, exc: TransientBrokerError, ctx: StageContext,
                 attempts: Attempts) -> list[Output]:
    refusal = Refusal(
        code=ReasonCode.VENUE_UNAVAILABLE,
        message=(f"the venue stayed unavailable after {attempts.count} attempts: "
                 f"{exc.message}; the order was not placed (replay the intent to try again)"),
        details={"venue_code": str(exc.code), "client_order_id": intent.client_order_id,
                 "attempts": str(attempts.count), "errors": " | ".join(attempts.errors)[:1000]},
        stage="submission",
    )
    return [("rejections", _rejection(intent, refusal, ctx))]


def _rejection(intent: OrderIntent, refusal: Refusal, ctx: StageContext) -> Rejection:
    return rejection_from(
        refusal, correlation_id=intent.correlation_id, causation_id=intent.event_id,
        now=ctx.clock(), signal_id=intent.signal_id, symbol=intent.symbol,
        strategy_id=intent.strategy_id,
        event_id=derive_id("rejection", intent.event_id, refusal.code),
    )
