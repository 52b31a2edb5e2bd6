"""Pure translation between the port and OANDA v20 JSON (no I/O, no client library)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from brokers.port import (
    AccountKind,
    AccountSnapshot,
    FillReport,
    InstrumentRules,
    OrderReport,
    OrderRequest,
    Position,
    child_client_order_id,
)
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

from .errors import REFUSING_CANCELS

Json = dict[str, Any]
ZERO = Decimal(0)
ONE = Decimal(1)
TYPES_OUT = {OrderType.MKT: "MARKET", OrderType.LMT: "LIMIT", OrderType.STP: "STOP",
             OrderType.STP_LMT: "STOP"}  # fmt: skip
TYPES_IN = {"MARKET": OrderType.MKT, "LIMIT": OrderType.LMT, "STOP": OrderType.STP,
            "MARKET_IF_TOUCHED": OrderType.LMT, "TAKE_PROFIT": OrderType.LMT,
            "STOP_LOSS": OrderType.STP, "TRAILING_STOP_LOSS": OrderType.STP}  # fmt: skip
LEGS = {"TAKE_PROFIT": OrderLeg.TAKE_PROFIT, "STOP_LOSS": OrderLeg.STOP_LOSS}
TIF_IN = {"GTC": TimeInForce.GTC, "GFD": TimeInForce.DAY, "IOC": TimeInForce.IOC,
          "FOK": TimeInForce.IOC, "GTD": TimeInForce.GTC}  # fmt: skip
ON_FILL = {OrderLeg.TAKE_PROFIT: "takeProfitOnFill", OrderLeg.STOP_LOSS: "stopLossOnFill"}


def dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else ZERO


def when(text: Any) -> datetime:
    """OANDA's RFC 3339 (nanoseconds) or UNIX time as an aware UTC datetime."""
    value = str(text or "")
    if value.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(value), UTC)
    head, _, frac = value.rstrip("Z").partition(".")
    micro = (frac + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{micro}+00:00")


def _tif(order: OrderRequest) -> str:
    if order.order_type is OrderType.MKT:
        return "IOC" if order.time_in_force is TimeInForce.IOC else "FOK"
    return {TimeInForce.DAY: "GFD", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC"}[
        order.time_in_force
    ]


def order_body(order: OrderRequest) -> Json:
    """POST /v3/accounts/{id}/orders {"order": ...} for a port order (a bracket's exits as
    takeProfitOnFill / stopLossOnFill, each with its own client id)."""
    units = order.quantity if order.side is Side.BUY else -order.quantity
    body: Json = {
        "type": TYPES_OUT[order.order_type], "instrument": order.symbol,
        "units": f"{units.normalize():f}", "timeInForce": _tif(order), "positionFill": "DEFAULT",
        "clientExtensions": {"id": order.client_order_id},
    }  # fmt: skip
    if order.order_type is OrderType.LMT:
        body["price"] = f"{order.limit_price}"
    elif order.order_type in (OrderType.STP, OrderType.STP_LMT):
        body["price"] = f"{order.stop_price}"
        if order.limit_price is not None:
            body["priceBound"] = f"{order.limit_price}"
    for leg, price in ((OrderLeg.TAKE_PROFIT, order.take_profit),
                       (OrderLeg.STOP_LOSS, order.stop_loss)):  # fmt: skip
        if price is not None:
            child = child_client_order_id(order.client_order_id, leg)
            body[ON_FILL[leg]] = {"price": f"{price}", "timeInForce": "GTC",
                                  "clientExtensions": {"id": child}}  # fmt: skip
    return body


def _status(state: str, filled: Decimal, cancel_reason: str | None) -> OrderStatus:
    if state == "FILLED":
        return OrderStatus.FILLED
    if state == "CANCELLED":
        refused = filled == 0 and cancel_reason in REFUSING_CANCELS
        return OrderStatus.REJECTED if refused else OrderStatus.CANCELLED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED


def order_report(order: Json, account_id: str, fills: list[Json],
                 parent: tuple[str, Side, Decimal, str] | None = None,
                 cancel_reason: str | None = None) -> OrderReport:  # fmt: skip
    """An OANDA order as the port's report; `fills` are its ORDER_FILL transactions,
    `parent` (client id, side, units) the entry whose trade an exit order closes."""
    kind = str(order.get("type", "MARKET"))
    leg = LEGS.get(kind, OrderLeg.ENTRY)
    units = dec(order.get("units"))
    side = Side.BUY if units > 0 else Side.SELL
    quantity = abs(units)
    if parent is not None and leg is not OrderLeg.ENTRY:
        side = Side.SELL if parent[1] is Side.BUY else Side.BUY
        quantity = parent[2]
    filled = sum((abs(dec(f.get("units"))) for f in fills), ZERO)
    notional = sum((abs(dec(f.get("units"))) * dec(f.get("price")) for f in fills), ZERO)
    price = dec(order["price"]) if order.get("price") else None
    order_type = TYPES_IN.get(kind, OrderType.MKT)
    created = when(order.get("createTime"))
    ended = order.get("filledTime") or order.get("cancelledTime")
    status = _status(str(order.get("state")), filled, cancel_reason)
    if status is OrderStatus.FILLED and filled == 0:
        filled = quantity  # the fill transaction is not known yet: OANDA fills whole orders
    return OrderReport(
        client_order_id=str((order.get("clientExtensions") or {}).get("id") or order["id"]),
        venue_order_id=str(order["id"]), account_id=account_id,
        symbol=str(order.get("instrument") or (parent[3] if parent else "")),
        parent_client_order_id=parent[0] if parent and leg is not OrderLeg.ENTRY else None,
        leg=leg, side=side, order_type=order_type, quantity=quantity or filled,
        limit_price=price if order_type is OrderType.LMT else order_bound(order),
        stop_price=price if order_type is OrderType.STP else None,
        time_in_force=TIF_IN.get(str(order.get("timeInForce")), TimeInForce.GTC),
        status=status, filled_quantity=filled,
        avg_fill_price=notional / filled if fills and filled else None,
        reason=cancel_reason, created_at=created,
        updated_at=when(ended) if ended else created,
    )  # fmt: skip


def order_bound(order: Json) -> Decimal | None:
    bound = order.get("priceBound")
    return dec(bound) if bound else None


def pending_exit(
    entry: Json, account_id: str, leg: OrderLeg, cancel_reason: str | None
) -> OrderReport:
    """A bracket exit that OANDA creates only when its entry fills, reported from the entry's
    takeProfitOnFill / stopLossOnFill while the entry has not filled (or was cancelled)."""
    details = entry[ON_FILL[leg]]
    units = dec(entry.get("units"))
    state = str(entry.get("state"))
    status = OrderStatus.SUBMITTED if state == "PENDING" else OrderStatus.CANCELLED
    created = when(entry.get("createTime"))
    ended = entry.get("cancelledTime")
    return OrderReport(
        client_order_id=str(details["clientExtensions"]["id"]),
        venue_order_id=f"{entry['id']}/{leg}",
        parent_client_order_id=str((entry.get("clientExtensions") or {}).get("id") or entry["id"]),
        leg=leg, account_id=account_id, symbol=str(entry.get("instrument", "")),
        side=Side.SELL if units > 0 else Side.BUY,
        order_type=OrderType.LMT if leg is OrderLeg.TAKE_PROFIT else OrderType.STP,
        quantity=abs(units),
        limit_price=dec(details["price"]) if leg is OrderLeg.TAKE_PROFIT else None,
        stop_price=dec(details["price"]) if leg is OrderLeg.STOP_LOSS else None,
        time_in_force=TimeInForce.GTC, status=status,
        reason=cancel_reason if status is OrderStatus.CANCELLED else None,
        created_at=created, updated_at=when(ended) if ended else created,
    )  # fmt: skip


def fill_report(txn: Json, account_id: str, leg: OrderLeg, parent: str | None) -> FillReport:
    """An ORDER_FILL transaction as the port's execution."""
    units = dec(txn.get("units"))
    return FillReport(
        execution_id=str(txn["id"]),
        client_order_id=str(txn.get("clientOrderID") or txn["orderID"]),
        venue_order_id=str(txn["orderID"]), parent_client_order_id=parent, leg=leg,
        account_id=account_id, symbol=str(txn.get("instrument", "")),
        side=Side.BUY if units > 0 else Side.SELL, quantity=abs(units), price=dec(txn.get("price")),
        commission=abs(dec(txn.get("commission"))), executed_at=when(txn.get("time")),
    )  # fmt: skip


def account_snapshot(summary: Json, kind: AccountKind) -> AccountSnapshot:
    """Account summary figures. Buying power is the notional the free margin carries at the
    account's margin rate; OANDA publishes no P&L of the day (realized_pnl_today is 0)."""
    rate = dec(summary.get("marginRate")) or ONE
    return AccountSnapshot(
        account_id=str(summary["id"]), kind=kind, currency=str(summary.get("currency", "USD")),
        equity=dec(summary.get("NAV")), cash=dec(summary.get("balance")),
        buying_power=dec(summary.get("marginAvailable")) / rate,
        unrealized_pnl=dec(summary.get("unrealizedPL")),
        gross_position_value=dec(summary.get("positionValue")), as_of=datetime.now(UTC),
    )  # fmt: skip


def position(pos: Json, account_id: str, price: Decimal, factor: Decimal) -> Position:
    """A position (long and short sides netted) valued at `price`, `factor` converting the
    quote currency to the account's."""
    long, short = pos.get("long") or {}, pos.get("short") or {}
    units = dec(long.get("units")) + dec(short.get("units"))
    side = long if dec(long.get("units")) != 0 else short
    return Position(
        account_id=account_id, symbol=str(pos["instrument"]), quantity=units,
        avg_cost=dec(side.get("averagePrice")), market_price=price,
        market_value=units * price * factor, unrealized_pnl=dec(pos.get("unrealizedPL")),
    )  # fmt: skip


def instrument_rules(instrument: Json, home_conversion: Decimal | None) -> InstrumentRules:
    """GET .../instruments: precision -> tick and units step, minimum and maximum size."""
    units_places = int(instrument.get("tradeUnitsPrecision", 0))
    name = str(instrument["name"])
    return InstrumentRules(
        symbol=name, lot_size=ONE.scaleb(-units_places) if units_places == 0 else None,
        quantity_increment=ONE.scaleb(-units_places), fractional=units_places > 0,
        min_quantity=dec(instrument.get("minimumTradeSize")) or None,
        max_quantity=dec(instrument.get("maximumOrderUnits")) or None,
        tick_size=ONE.scaleb(-int(instrument["displayPrecision"])), shortable=True,
        currency=name.partition("_")[2] or None, home_conversion=home_conversion,
    )  # fmt: skip
