"""OANDA v20 wire shapes for the simulator's OANDA door: pure functions from core state to the
JSON objects OANDA's REST API returns (field names as in OANDA's v20 specification, which the
official `v20` client parses). Numbers travel as strings; times as RFC 3339 with nanoseconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from brokers.port import OrderReport
from brokers.sim.reasons import Reason
from brokers.sim.universe import Instrument
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

Json = dict[str, Any]

# core reason -> (HTTP status, OANDA reject reason) for a refused order create
REJECT: dict[Reason, tuple[int, str]] = {
    Reason.UNKNOWN_INSTRUMENT: (400, "INSTRUMENT_UNKNOWN"),
    Reason.SYMBOL_NOT_ALLOWED: (400, "INSTRUMENT_NOT_TRADEABLE"),
    Reason.NOT_SHORTABLE: (400, "INSTRUMENT_NOT_TRADEABLE"),
    Reason.OFF_TICK: (400, "PRICE_PRECISION_EXCEEDED"),
    Reason.INVALID_PRICE: (400, "PRICE_INVALID"),
    Reason.INVALID_QUANTITY: (400, "UNITS_INVALID"),
    Reason.DUPLICATE_CLIENT_ID: (400, "CLIENT_ORDER_ID_ALREADY_EXISTS"),
    Reason.DUPLICATE_ORDER_ID: (400, "CLIENT_ORDER_ID_ALREADY_EXISTS"),
    Reason.UNKNOWN_ACCOUNT: (403, "ACCOUNT_NOT_ACTIVE"),
}
# a market order the account cannot afford is created and cancelled at once (HTTP 201)
CANCEL_AT_BIRTH = {Reason.INSUFFICIENT_BUYING_POWER: "INSUFFICIENT_MARGIN"}
MESSAGES = {
    "INSTRUMENT_UNKNOWN": "The instrument specified is unknown",
    "INSTRUMENT_NOT_TRADEABLE": "The instrument specified is not tradeable by the Account",
    "PRICE_PRECISION_EXCEEDED": "The price specified contains more precision than is allowed "
    "by the Order's instrument",
    "TAKE_PROFIT_ON_FILL_PRICE_PRECISION_EXCEEDED": "The Take Profit on fill specifies a price "
    "with more precision than is allowed by the Order's instrument",
    "STOP_LOSS_ON_FILL_PRICE_PRECISION_EXCEEDED": "The Stop Loss on fill specifies a price with "
    "more precision than is allowed by the Order's instrument",
    "PRICE_INVALID": "The price specified is invalid",
    "UNITS_INVALID": "The units specified is invalid",
    "UNITS_PRECISION_EXCEEDED": "The units specified contain more precision than is allowed "
    "for the Order's instrument",
    "UNITS_MINIMUM_NOT_MET": "The units specified do not meet the minimum trade size",
    "UNITS_LIMIT_EXCEEDED": "The units specified exceeds the maximum number of units allowed",
    "CLIENT_ORDER_ID_ALREADY_EXISTS": "The client Order ID specified is already assigned to "
    "another pending Order",
    "ACCOUNT_NOT_ACTIVE": "The Account is not active",
    "ORDER_DOESNT_EXIST": "The Order specified does not exist",
}
ORDER_TYPES = {OrderType.MKT: "MARKET", OrderType.LMT: "LIMIT", OrderType.STP: "STOP",
               OrderType.STP_LMT: "STOP"}  # fmt: skip
LEG_TYPES = {OrderLeg.TAKE_PROFIT: "TAKE_PROFIT", OrderLeg.STOP_LOSS: "STOP_LOSS"}
TIF_OUT = {TimeInForce.DAY: "GFD", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC"}


def rfc3339(moment: datetime) -> str:
    """OANDA's time format: UTC with nine fractional digits."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def price_text(price: Decimal, instrument: Instrument) -> str:
    """A price with the instrument's display precision."""
    places = instrument.fx.display_precision if instrument.fx else 2
    return f"{price:.{places}f}"


def units_text(quantity: Decimal, side: Side) -> str:
    signed = quantity if side is Side.BUY else -quantity
    return f"{signed.normalize():f}"


def decimals(text: str) -> int:
    """Digits after the point in a price as sent."""
    _, _, fraction = text.partition(".")
    return len(fraction)


@dataclass
class OrderExtra:
    """What the wire shows of an order that the core does not keep."""

    oanda_type: str
    time_in_force: str
    client_id_shown: bool = True
    on_fill: dict[str, Json] = field(default_factory=dict)  # takeProfitOnFill / stopLossOnFill
    filling_id: str | None = None
    filled_time: str | None = None
    cancelling_id: str | None = None
    cancelled_time: str | None = None
    trade_id: str | None = None


def order_state(report: OrderReport) -> str:
    if report.status is OrderStatus.FILLED:
        return "FILLED"
    if report.status.is_terminal:
        return "CANCELLED"
    return "PENDING"


def order_json(report: OrderReport, instrument: Instrument, extra: OrderExtra) -> Json:
    """An Order as GET /v3/accounts/{id}/orders/{specifier} shows it."""
    out: Json = {
        "id": report.venue_order_id,
        "createTime": rfc3339(report.created_at),
        "state": order_state(report),
        "type": extra.oanda_type,
        "instrument": instrument.symbol,
        "units": units_text(report.quantity, report.side),
        "timeInForce": extra.time_in_force,
        "positionFill": "DEFAULT",
    }
    if report.leg is not OrderLeg.ENTRY:
        out.pop("instrument")
        out.pop("units")
        out["tradeID"] = extra.trade_id or ""
        out["triggerCondition"] = "DEFAULT"
    if extra.client_id_shown:
        out["clientExtensions"] = {"id": report.client_order_id}
    price = report.limit_price if report.limit_price is not None else report.stop_price
    if price is not None:
        out["price"] = price_text(price, instrument)
    out.update(extra.on_fill)
    _add(out, "fillingTransactionID", extra.filling_id)
    _add(out, "filledTime", extra.filled_time)
    _add(out, "tradeOpenedID", extra.trade_id if report.leg is OrderLeg.ENTRY else None)
    _add(out, "cancellingTransactionID", extra.cancelling_id)
    _add(out, "cancelledTime", extra.cancelled_time)
    return out


def _add(target: Json, key: str, value: str | None) -> None:
    if value is not None:
        target[key] = value


def instrument_json(instrument: Instrument) -> Json:
    """An Instrument as GET /v3/accounts/{id}/instruments lists it."""
    spec = instrument.fx
    assert spec is not None
    return {
        "name": instrument.symbol,
        "type": "CURRENCY",
        "displayName": spec.display_name,
        "pipLocation": spec.pip_location,
        "displayPrecision": spec.display_precision,
        "tradeUnitsPrecision": spec.trade_units_precision,
        "minimumTradeSize": f"{spec.minimum_trade_size}",
        "maximumTrailingStopDistance": "1.00000",
        "minimumTrailingStopDistance": "0.00050",
        "maximumPositionSize": "0",
        "maximumOrderUnits": f"{spec.maximum_order_units}",
        "marginRate": f"{spec.margin_rate}",
    }
