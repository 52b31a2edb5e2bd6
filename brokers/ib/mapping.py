"""Pure translation between the port's value types and IB library objects (Order, Contract,
Trade, Fill). The library module is a parameter so ib_async and ib_insync share the code."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from brokers.port import (
    FillReport,
    InstrumentRules,
    OrderReport,
    OrderRequest,
    child_client_order_id,
)
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

UNSET_DOUBLE = 1.7976931348623157e308
_ORDER_TYPES = {OrderType.MKT: "MKT", OrderType.LMT: "LMT", OrderType.STP: "STP"}
_FROM_IB_TYPES = {"MKT": OrderType.MKT, "LMT": OrderType.LMT, "STP": OrderType.STP}
_WORKING = {"PendingSubmit", "ApiPending", "PreSubmitted", "ValidationError", ""}
_LIVE = {"Submitted", "PendingCancel"}
_DONE = {
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELLED,
    "ApiCancelled": OrderStatus.CANCELLED,
    "Inactive": OrderStatus.REJECTED,
}
_SUFFIX_LEG = {"-tp": OrderLeg.TAKE_PROFIT, "-sl": OrderLeg.STOP_LOSS}


def dec(value: Any) -> Decimal:
    """A library float as Decimal via its shortest text (101.1 stays 101.1)."""
    return Decimal(str(value))


def price_or_none(value: Any) -> Decimal | None:
    """A price field, None when unset (None, 0-less sentinel, max double)."""
    if value is None or value == "" or float(value) >= UNSET_DOUBLE:
        return None
    return dec(value)


def _positive(value: Any) -> Decimal | None:
    found = price_or_none(value)
    return found if found is not None and found > 0 else None


def instrument_rules(symbol: str, details: Any) -> InstrumentRules:
    """What IB's ContractDetails publish: minTick, and (server version >= 164) minSize and
    sizeIncrement. Shortability is not in the details (a market data tick), so not published."""
    increment = _positive(getattr(details, "sizeIncrement", None))
    contract = getattr(details, "contract", None)
    return InstrumentRules(
        symbol=symbol,
        tick_size=_positive(getattr(details, "minTick", None)),
        lot_size=increment,
        min_quantity=_positive(getattr(details, "minSize", None)),
        fractional=None if increment is None else increment % 1 != 0,
        currency=getattr(contract, "currency", None) or None,
    )


def order_status(ib_status: str, filled: Decimal, quantity: Decimal) -> OrderStatus:
    """IB order status word -> port status. Executions that cover the whole quantity make
    the order filled even while the status word still says working: TWS sends execDetails
    before the orderStatus that says Filled, and a read between the two must not show a
    filled order as open."""
    if ib_status in _DONE:
        return _DONE[ib_status]
    if quantity > 0 and filled >= quantity:
        return OrderStatus.FILLED
    if ib_status in _LIVE:
        return OrderStatus.PARTIALLY_FILLED if 0 < filled < quantity else OrderStatus.ACCEPTED
    if ib_status in _WORKING:
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
    return OrderStatus.SUBMITTED


def leg_of(order_ref: str, parent_id: int) -> tuple[OrderLeg, str | None]:
    """(leg, parent client order id) from the deterministic `<id>-tp` / `<id>-sl` refs."""
    for suffix, leg in _SUFFIX_LEG.items():
        if parent_id and order_ref.endswith(suffix):
            return leg, order_ref[: -len(suffix)]
    return OrderLeg.ENTRY, None


def stock(lib: Any, symbol: str, currency: str = "USD") -> Any:
    """The library's Stock contract routed SMART."""
    return lib.Stock(symbol, "SMART", currency)


def _base_order(lib: Any, req: OrderRequest, account: str) -> Any:
    order = lib.Order()
    order.action = req.side.value
    order.totalQuantity = float(req.quantity)
    order.orderType = _ORDER_TYPES.get(req.order_type, "STP LMT")
    order.tif = req.time_in_force.value
    order.account = account
    order.orderRef = req.client_order_id
    if req.limit_price is not None:
        order.lmtPrice = float(req.limit_price)
    if req.stop_price is not None:
        order.auxPrice = float(req.stop_price)
    return order


def _exit_order(
    lib: Any, req: OrderRequest, account: str, leg: OrderLeg, price: Decimal
) -> Any:
    order = lib.Order()
    order.action = (Side.SELL if req.side is Side.BUY else Side.BUY).value
    order.totalQuantity = float(req.quantity)
    order.tif = TimeInForce.GTC.value
    order.account = account
    order.orderRef = child_client_order_id(req.client_order_id, leg)
    order.ocaGroup = f"oca-{req.client_order_id}"
    order.ocaType = 1
    if leg is OrderLeg.TAKE_PROFIT:
        order.orderType, order.lmtPrice = "LMT", float(price)
    else:
        order.orderType, order.auxPrice = "STP", float(price)
    return order


def build_orders(
    lib: Any, req: OrderRequest, account: str, first_id: int
) -> list[tuple[OrderLeg, Any]]:
    """Entry (+ exits): ids from first_id, children carry parentId, only the last transmits."""
    entry = _base_order(lib, req, account)
    legs: list[tuple[OrderLeg, Any]] = [(OrderLeg.ENTRY, entry)]
    exits = ((OrderLeg.TAKE_PROFIT, req.take_profit), (OrderLeg.STOP_LOSS, req.stop_loss))
    for leg, price in exits:
        if price is not None:
            legs.append((leg, _exit_order(lib, req, account, leg, price)))
    for offset, (leg, order) in enumerate(legs):
        order.orderId = first_id + offset
        order.parentId = 0 if leg is OrderLeg.ENTRY else first_id
        order.transmit = offset == len(legs) - 1
    return legs


def _created(trade: Any) -> datetime:
    log = getattr(trade, "log", None) or []
    when = log[0].time if log else None
    return when.astimezone(UTC) if isinstance(when, datetime) else datetime.now(UTC)


_IB_TIME = re.compile(r"^(\d{8})([ -])(\d{2}:\d{2}:\d{2})(?:\s+(\S+))?$")
_ZONE_ALIASES = {
    "EST": "America/New_York", "EDT": "America/New_York", "CST": "America/Chicago",
    "CDT": "America/Chicago", "MET": "Europe/Berlin", "GMT": "UTC", "UTC": "UTC",
}  # fmt: skip


def ib_datetime(text: str | None) -> datetime | None:
    """An IB text time as UTC: "20261121 15:00:00 America/New_York" (or a zone abbreviation
    such as EST), "20261121-15:00:00" (UTC). None when empty, zoneless or unreadable."""
    match = _IB_TIME.match((text or "").strip())
    if match is None:
        return None
    day, sep, clock, zone_name = match.groups()
    if sep == "-":
        zone_name = zone_name or "UTC"
    if not zone_name:
        return None
    try:
        zone = ZoneInfo(_ZONE_ALIASES.get(zone_name, zone_name))
        local = datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S").replace(tzinfo=zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return local.astimezone(UTC)


def venue_order_id(order: Any) -> str:
    """IB's permanent id when known, else clientId:orderId."""
    return str(order.permId) if order.permId else f"{order.clientId}:{order.orderId}"


def trade_to_report(
    trade: Any, account: str, status: OrderStatus | None = None, reason: str | None = None
) -> OrderReport:
    """A library Trade as the port's OrderReport (status override from error codes)."""
    order, st = trade.order, trade.orderStatus
    quantity = dec(order.totalQuantity)
    fills = getattr(trade, "fills", None) or []
    filled = max(dec(st.filled or 0), sum((dec(f.execution.shares) for f in fills), Decimal(0)))
    if filled == 0:
        filled = price_or_none(getattr(order, "filledQuantity", None)) or Decimal(0)
    leg, parent = leg_of(order.orderRef or "", order.parentId or getattr(order, "parentPermId", 0))
    avg = dec(st.avgFillPrice) if st.avgFillPrice else _avg_from_fills(fills)
    created = _created(trade)
    return OrderReport(
        client_order_id=order.orderRef or venue_order_id(order),
        venue_order_id=venue_order_id(order),
        parent_client_order_id=parent, leg=leg, account_id=order.account or account,
        symbol=trade.contract.symbol, side=Side(order.action),
        order_type=_FROM_IB_TYPES.get(order.orderType, OrderType.STP_LMT), quantity=quantity,
        limit_price=price_or_none(order.lmtPrice), stop_price=price_or_none(order.auxPrice),
        time_in_force=_tif(order.tif),
        status=status or order_status(st.status, filled, quantity), filled_quantity=filled,
        avg_fill_price=avg if filled else None, reason=reason, created_at=created,
        updated_at=max(created, _updated(trade)),
    )  # fmt: skip


def _tif(text: str) -> TimeInForce:
    return TimeInForce(text) if text in TimeInForce.__members__ else TimeInForce.DAY


def _updated(trade: Any) -> datetime:
    log = getattr(trade, "log", None) or []
    when = log[-1].time if log else None
    return when.astimezone(UTC) if isinstance(when, datetime) else datetime.now(UTC)


def _avg_from_fills(fills: list[Any]) -> Decimal | None:
    qty = sum((dec(f.execution.shares) for f in fills), Decimal(0))
    if not qty:
        return None
    notional = sum((dec(f.execution.shares) * dec(f.execution.price) for f in fills), Decimal(0))
    return notional / qty


def fill_to_report(fill: Any, commission: Any = None) -> FillReport:
    """A library Fill (execution + commission report) as the port's FillReport."""
    ex = fill.execution
    report = commission if commission is not None else fill.commissionReport
    leg, parent = leg_of(ex.orderRef or "", 1)
    when = ex.time if isinstance(ex.time, datetime) else datetime.now(UTC)
    # An execution's commissionReport arrives separately; until then the library holds an
    # empty one (execId '').
    known = bool(report and report.execId)
    fee = dec(report.commission) if known and report.commission < UNSET_DOUBLE else Decimal(0)
    return FillReport(
        execution_id=ex.execId, client_order_id=ex.orderRef or f"{ex.clientId}:{ex.orderId}",
        venue_order_id=str(ex.permId) if ex.permId else f"{ex.clientId}:{ex.orderId}",
        parent_client_order_id=parent, leg=leg, account_id=ex.acctNumber,
        symbol=fill.contract.symbol, side=Side.BUY if ex.side == "BOT" else Side.SELL,
        quantity=dec(ex.shares), price=dec(ex.price), commission=fee, commission_known=known,
        currency=(report.currency if report and report.currency else "USD"),
        executed_at=when.astimezone(UTC),
    )  # fmt: skip
