"""Pure rendering of the simulator core's objects as Alpaca Trading API v2 JSON.

Alpaca's ids are UUIDs: orders, accounts, assets and executions get name-based UUIDs (uuid5)
of the core's ids, so a restarted simulator names every object as before. Bracket legs get
client order ids of Alpaca's making (UUIDs too): a client learns which order is a leg from the
parent's `order_class` and `legs`, never from an id. Money and quantities are JSON strings, as
Alpaca sends them; times are RFC 3339 UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from brokers.port import AccountSnapshot, FillReport, OrderReport, Position
from brokers.sim.universe import Instrument
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

NAMESPACE = uuid.UUID("5f0c7d4e-8a51-4c1e-9a43-2f6d1b7e0a11")
EXCHANGES = frozenset({"AMEX", "ARCA", "BATS", "NYSE", "NASDAQ", "NYSEARCA", "OTC"})

STATUS = {
    OrderStatus.PENDING_SUBMIT: "pending_new",
    OrderStatus.SUBMITTED: "held",  # a bracket exit waiting for its entry to fill
    OrderStatus.ACCEPTED: "new",
    OrderStatus.PARTIALLY_FILLED: "partially_filled",
    OrderStatus.FILLED: "filled",
    OrderStatus.PENDING_CANCEL: "pending_cancel",
    OrderStatus.CANCELLED: "canceled",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.EXPIRED: "expired",
}
ORDER_TYPE = {
    OrderType.MKT: "market",
    OrderType.LMT: "limit",
    OrderType.STP: "stop",
    OrderType.STP_LMT: "stop_limit",
}
TIME_IN_FORCE = {TimeInForce.DAY: "day", TimeInForce.GTC: "gtc", TimeInForce.IOC: "ioc"}
# when a status was reached: the field Alpaca stamps with that moment
_STAMP = {
    OrderStatus.FILLED: "filled_at",
    OrderStatus.CANCELLED: "canceled_at",
    OrderStatus.EXPIRED: "expired_at",
    OrderStatus.REJECTED: "failed_at",
}


def _id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, ":".join(parts)))


def order_id(account: str, venue_order_id: str) -> str:
    return _id("order", account, venue_order_id)


def leg_client_order_id(account: str, core_client_order_id: str) -> str:
    """The client order id Alpaca gives a bracket leg (the client never chooses it)."""
    return _id("leg", account, core_client_order_id)


def account_uuid(account: str) -> str:
    return _id("account", account)


def asset_id(symbol: str) -> str:
    return _id("asset", symbol)


def execution_uuid(execution_id: str) -> str:
    return _id("execution", execution_id)


def num(value: Decimal | None) -> str | None:
    """A decimal as Alpaca writes it ("150", "150.25"), never in exponent form."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def wire_client_order_id(report: OrderReport) -> str:
    if report.leg is OrderLeg.ENTRY:
        return report.client_order_id
    return leg_client_order_id(report.account_id, report.client_order_id)


def order_json(
    report: OrderReport, legs: list[OrderReport] | None = None, bracket: bool = False
) -> dict[str, Any]:
    """One order; `legs` (a bracket parent's exits) nested as Alpaca nests them."""
    is_bracket = bracket or bool(legs) or report.leg is not OrderLeg.ENTRY
    body: dict[str, Any] = {
        "id": order_id(report.account_id, report.venue_order_id),
        "client_order_id": wire_client_order_id(report),
        "created_at": stamp(report.created_at),
        "updated_at": stamp(report.updated_at),
        "submitted_at": stamp(report.created_at),
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": asset_id(report.symbol),
        "symbol": report.symbol,
        "asset_class": "us_equity",
        "notional": None,
        "qty": num(report.quantity),
        "filled_qty": num(report.filled_quantity),
        "filled_avg_price": num(report.avg_fill_price),
        "order_class": "bracket" if is_bracket else "simple",
        "order_type": ORDER_TYPE[report.order_type],
        "type": ORDER_TYPE[report.order_type],
        "side": report.side.value.lower(),
        "position_intent": _intent(report),
        "time_in_force": TIME_IN_FORCE.get(report.time_in_force, "day"),
        "limit_price": num(report.limit_price),
        "stop_price": num(report.stop_price),
        "status": STATUS.get(report.status, "new"),
        "extended_hours": False,
        "legs": [order_json(leg, bracket=True) for leg in legs] if legs else None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
    }
    field = _STAMP.get(report.status)
    if field is not None:
        body[field] = stamp(report.updated_at)
    return body


def _intent(report: OrderReport) -> str:
    opening = report.leg is OrderLeg.ENTRY
    side = "buy" if report.side is Side.BUY else "sell"
    return f"{side}_to_{'open' if opening else 'close'}"


def trade_update(
    event: str,
    order: dict[str, Any],
    at: datetime,
    fill: FillReport | None = None,
    position_qty: Decimal | None = None,
) -> dict[str, Any]:
    """A `trade_updates` stream message."""
    data: dict[str, Any] = {"event": event, "order": order, "timestamp": stamp(at)}
    if fill is not None:
        data.update(
            execution_id=execution_uuid(fill.execution_id),
            price=num(fill.price),
            qty=num(fill.quantity),
            position_qty=num(position_qty if position_qty is not None else Decimal(0)),
        )
    return {"stream": "trade_updates", "data": data}


def account_json(
    snap: AccountSnapshot, positions: list[Position], multiplier: Decimal
) -> dict[str, Any]:
    long_value = sum((p.market_value for p in positions if p.quantity > 0), Decimal(0))
    short_value = sum((p.market_value for p in positions if p.quantity < 0), Decimal(0))
    # start-of-day equity, so that equity - last_equity is the day's P&L, as Alpaca means it
    last_equity = snap.equity - snap.realized_pnl_today - snap.unrealized_pnl
    return {
        "id": account_uuid(snap.account_id),
        "account_number": snap.account_id,
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": snap.currency,
        "buying_power": num(snap.buying_power),
        "regt_buying_power": num(snap.buying_power),
        "daytrading_buying_power": "0",
        "non_marginable_buying_power": num(max(snap.cash, Decimal(0))),
        "cash": num(snap.cash),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "portfolio_value": num(snap.equity),
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": stamp(snap.as_of),
        "trade_suspended_by_user": False,
        "multiplier": num(multiplier),
        "shorting_enabled": snap.shorting_enabled,
        "equity": num(snap.equity),
        "last_equity": num(last_equity),
        "long_market_value": num(long_value),
        "short_market_value": num(short_value),
        "initial_margin": num(snap.gross_position_value / multiplier),
        "maintenance_margin": num(snap.gross_position_value / 4),
        "last_maintenance_margin": "0",
        "sma": "0",
        "daytrade_count": 0,
    }


def position_json(position: Position, instrument: Instrument) -> dict[str, Any]:
    cost_basis = position.quantity * position.avg_cost
    plpc = position.unrealized_pnl / abs(cost_basis) if cost_basis else Decimal(0)
    return {
        "asset_id": asset_id(position.symbol),
        "symbol": position.symbol,
        "exchange": _exchange(instrument),
        "asset_class": "us_equity",
        "asset_marginable": True,
        "avg_entry_price": num(position.avg_cost),
        "qty": num(position.quantity),
        "side": "long" if position.quantity > 0 else "short",
        "market_value": num(position.market_value),
        "cost_basis": num(cost_basis),
        "unrealized_pl": num(position.unrealized_pnl),
        "unrealized_plpc": num(plpc),
        # the core keeps no day boundary for open positions: intraday is since opening
        "unrealized_intraday_pl": num(position.unrealized_pnl),
        "unrealized_intraday_plpc": num(plpc),
        "current_price": num(position.market_price),
        "lastday_price": num(position.market_price),
        "change_today": "0",
        "qty_available": num(position.quantity),
    }


def _exchange(instrument: Instrument) -> str:
    name = instrument.primary_exchange.upper()
    return name if name in EXCHANGES else "NYSE"


def asset_json(instrument: Instrument, tradable: bool, shortable: bool) -> dict[str, Any]:
    """An asset with the rules a client sizes and prices by: whole shares unless the lot is
    fractional, prices on the instrument's tick."""
    lot = instrument.lot_size
    return {
        "id": asset_id(instrument.symbol),
        "class": "us_equity",
        "exchange": _exchange(instrument),
        "symbol": instrument.symbol,
        "name": instrument.name,
        "status": "active",
        "tradable": tradable,
        "marginable": True,
        "maintenance_margin_requirement": 25,
        "shortable": shortable,
        "easy_to_borrow": shortable,
        "fractionable": lot < 1,
        "min_order_size": num(lot),
        "min_trade_increment": num(lot),
        "price_increment": num(instrument.min_tick),
        "attributes": [],
    }


def activity_json(fill: FillReport, report: OrderReport, cum_qty: Decimal) -> dict[str, Any]:
    """A FILL account activity (`cum_qty`: the order's filled quantity once this fill was in);
    its id is Alpaca's "<time>::<execution uuid>" form, with the execution id the stream's
    fill event carries."""
    when = fill.executed_at.astimezone(UTC)
    execution = execution_uuid(fill.execution_id)
    leaves = max(report.quantity - cum_qty, Decimal(0))
    return {
        "id": f"{when:%Y%m%d%H%M%S}{when.microsecond // 1000:03d}::{execution}",
        "account_id": account_uuid(fill.account_id),
        "activity_type": "FILL",
        "transaction_time": stamp(fill.executed_at),
        "type": "fill" if leaves == 0 else "partial_fill",
        "price": num(fill.price),
        "qty": num(fill.quantity),
        "side": fill.side.value.lower(),
        "symbol": fill.symbol,
        "leaves_qty": num(leaves),
        "order_id": order_id(fill.account_id, fill.venue_order_id),
        "cum_qty": num(cum_qty),
        "order_status": "filled" if leaves == 0 else "partially_filled",
    }
