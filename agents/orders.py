"""Pure mapping from venue reports to order and fill events (shared by submission and
reconciliation, so an order's facts are described one way)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from brokers.port import FillReport, OrderReport
from schemas.events import Fill, OrderEvent, OrderStatus
from schemas.ids import correlation_from_client_order_id, derive_id


def intent_event_id(correlation_id: UUID) -> UUID:
    """The intent every order of a signal descends from (see OrderIntent.ids_for)."""
    return derive_id("intent", correlation_id)


def order_event(report: OrderReport, venue: str, now: datetime,
                status: OrderStatus | None = None, reason_code: str | None = None) -> OrderEvent:
    correlation = owner(report.client_order_id, report.parent_client_order_id)
    assert correlation is not None, "only the project's own orders become events"
    status = status or report.status
    return OrderEvent(
        event_id=OrderEvent.derive_event_id(report.client_order_id, status, report.filled_quantity),
        correlation_id=correlation,
        causation_id=intent_event_id(correlation),
        occurred_at=now,
        client_order_id=report.client_order_id,
        parent_client_order_id=report.parent_client_order_id,
        leg=report.leg,
        venue=venue,
        venue_order_id=report.venue_order_id,
        account_id=report.account_id,
        symbol=report.symbol,
        side=report.side,
        order_type=report.order_type,
        quantity=report.quantity,
        limit_price=report.limit_price,
        stop_price=report.stop_price,
        status=status,
        filled_quantity=report.filled_quantity,
        avg_fill_price=report.avg_fill_price,
        reason_code=reason_code,
        message=report.reason,
    )


def fill_event(fill: FillReport, venue: str) -> Fill:
    correlation = owner(fill.client_order_id, fill.parent_client_order_id)
    assert correlation is not None, "only the project's own fills become events"
    return Fill(
        event_id=Fill.derive_event_id(venue, fill.execution_id),
        correlation_id=correlation,
        causation_id=intent_event_id(correlation),
        occurred_at=fill.executed_at,
        execution_id=fill.execution_id,
        client_order_id=fill.client_order_id,
        parent_client_order_id=fill.parent_client_order_id,
        leg=fill.leg,
        venue=venue,
        venue_order_id=fill.venue_order_id,
        account_id=fill.account_id,
        symbol=fill.symbol,
        side=fill.side,
        quantity=fill.quantity,
        price=fill.price,
        commission=fill.commission,
        currency=fill.currency,
    )


def owner(client_order_id: str, parent: str | None = None) -> UUID | None:
    """The signal an order descends from: by its own client id, or for a bracket exit whose id
    the venue chose (Alpaca), by its parent's."""
    return correlation_from_client_order_id(client_order_id) or (
        correlation_from_client_order_id(parent) if parent else None)


def is_ours(client_order_id: str, parent: str | None = None) -> bool:
    return owner(client_order_id, parent) is not None
