"""The port's value types <-> the venue's JSON (pure: tested without a socket)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from brokers.port import OrderReport, OrderRequest
from schemas.events import OrderLeg, OrderStatus, OrderType, Side

STATUSES = {"new": OrderStatus.ACCEPTED, "filled": OrderStatus.FILLED,
            "canceled": OrderStatus.CANCELLED, "rejected": OrderStatus.REJECTED}
LEGS = {"take_profit": OrderLeg.TAKE_PROFIT, "stop_loss": OrderLeg.STOP_LOSS}


def order_body(order: OrderRequest) -> dict[str, Any]:
    """The venue's placement body (money as strings: never through float)."""
    body: dict[str, Any] = {
        "client_order_id": order.client_order_id, "symbol": order.symbol,
        "side": order.side.value.lower(), "qty": str(order.quantity),
        "type": order.order_type.value.lower(), "time_in_force": order.time_in_force.value,
    }  # fmt: skip
    if order.limit_price is not None:
        body["limit_price"] = str(order.limit_price)
    return body


def order_report(raw: dict[str, Any], account_id: str, parent: str | None = None) -> OrderReport:
    """A venue order as the port's report; an exit leg keeps its parent's client id."""
    created = datetime.fromisoformat(raw["created_at"])
    return OrderReport(
        client_order_id=raw["client_order_id"], venue_order_id=raw["id"],
        parent_client_order_id=parent, leg=LEGS.get(raw.get("leg", ""), OrderLeg.ENTRY),
        account_id=account_id, symbol=raw["symbol"], side=Side(raw["side"].upper()),
        order_type=OrderType(raw["type"].upper()), quantity=Decimal(raw["qty"]),
        status=STATUSES.get(raw["status"], OrderStatus.SUBMITTED),
        filled_quantity=Decimal(raw.get("filled_qty") or 0),
        created_at=created, updated_at=datetime.fromisoformat(raw.get("updated_at") or
                                                              raw["created_at"]),
    )  # fmt: skip
