"""Pure translation between the port and alpaca-py's models. No I/O.

Decimals: alpaca-py types quantities and prices as `str | float`; a string becomes a Decimal as
written, a float through its shortest repr (what the JSON number said), so 150.25 is 150.25 and
never 150.2499999. Requests go out as floats (alpaca-py's request models take floats): a price
whose float does not read back as the same decimal is refused here, before it is sent.

Legs: a bracket parent carries `order_class` "bracket" and its exits in `legs`; the exit whose
type is limit is the take-profit, the stop (or stop-limit) one the stop-loss. Alpaca gives legs
client order ids of its own making: nothing here reads meaning into an id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from alpaca.trading.enums import OrderClass
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.models import Order, TradeAccount
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)
from alpaca.trading.requests import OrderRequest as AlpacaOrderRequest

from brokers.exceptions import OrderRejected
from brokers.port import (
    AccountKind,
    AccountSnapshot,
    FillReport,
    InstrumentRules,
    OrderReport,
    OrderRequest,
    Position,
)
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

ZERO = Decimal(0)

STATUS = {
    "pending_new": OrderStatus.SUBMITTED,
    "accepted": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "new": OrderStatus.ACCEPTED,
    "held": OrderStatus.SUBMITTED,  # a bracket exit waiting for its entry
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.ACCEPTED,  # works again the next session
    "calculated": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
    "pending_replace": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.SUBMITTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "canceled": OrderStatus.CANCELLED,
    "replaced": OrderStatus.CANCELLED,  # a new order took its place
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
ORDER_TYPE = {
    "market": OrderType.MKT,
    "limit": OrderType.LMT,
    "stop": OrderType.STP,
    "stop_limit": OrderType.STP_LMT,
}
# opg / cls orders live one auction, like a day order; fok is all-or-nothing at once
TIME_IN_FORCE = {
    "day": TimeInForce.DAY, "gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC,
    "fok": TimeInForce.IOC, "opg": TimeInForce.DAY, "cls": TimeInForce.DAY,
}  # fmt: skip
_TIF_OUT = {TimeInForce.DAY: AlpacaTif.DAY, TimeInForce.GTC: AlpacaTif.GTC,
            TimeInForce.IOC: AlpacaTif.IOC}  # fmt: skip


@dataclass(frozen=True)
class LegRef:
    """What an order is within its bracket: the leg and the parent's client order id."""

    leg: OrderLeg = OrderLeg.ENTRY
    parent_client_order_id: str | None = None


ENTRY = LegRef()


def dec(value: Any) -> Decimal | None:
    """Exactly the decimal a wire value said (None stays None)."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a decimal: {value!r}") from None


def dec0(value: Any) -> Decimal:
    found = dec(value)
    return ZERO if found is None else found


def _text(value: Any) -> str:
    """An alpaca-py enum's wire value, or the text as is."""
    return str(getattr(value, "value", value) or "")


def _float(value: Decimal | None, name: str) -> float | None:
    if value is None:
        return None
    out = float(value)
    if Decimal(repr(out)) != value:
        raise OrderRejected(f"{name} {value} cannot be sent exactly", code="precision")
    return out


# ---------------------------------------------------------------- port -> alpaca-py


def order_request(order: OrderRequest) -> AlpacaOrderRequest:
    """The alpaca-py request for an order (bracket with both exits, oto with one)."""
    fields: dict[str, Any] = {
        "symbol": order.symbol,
        "qty": _float(order.quantity, "qty"),
        "side": AlpacaSide.BUY if order.side is Side.BUY else AlpacaSide.SELL,
        "time_in_force": _TIF_OUT[order.time_in_force],
        "client_order_id": order.client_order_id,
    }
    if order.take_profit is not None:
        fields["take_profit"] = TakeProfitRequest(
            limit_price=_float(order.take_profit, "take_profit")
        )
    if order.stop_loss is not None:
        fields["stop_loss"] = StopLossRequest(stop_price=_float(order.stop_loss, "stop_loss"))
    if order.is_bracket:
        both = order.take_profit is not None and order.stop_loss is not None
        fields["order_class"] = OrderClass.BRACKET if both else OrderClass.OTO
    limit = _float(order.limit_price, "limit_price")
    stop = _float(order.stop_price, "stop_price")
    if order.order_type is OrderType.LMT:
        return LimitOrderRequest(limit_price=limit, **fields)
    if order.order_type is OrderType.STP:
        return StopOrderRequest(stop_price=stop, **fields)
    if order.order_type is OrderType.STP_LMT:
        return StopLimitOrderRequest(limit_price=limit, stop_price=stop, **fields)
    return MarketOrderRequest(**fields)


# ---------------------------------------------------------------- alpaca-py -> port


def leg_of(leg: Order) -> OrderLeg:
    """A bracket exit's leg, from its type: the limit exit takes profit, the stop one stops."""
    return (
        OrderLeg.TAKE_PROFIT if _text(leg.type or leg.order_type) == "limit" else OrderLeg.STOP_LOSS
    )


def legs(parent: Order) -> list[tuple[Order, LegRef]]:
    """A parent's exits with what each is (none for a simple order)."""
    return [(leg, LegRef(leg_of(leg), parent.client_order_id)) for leg in parent.legs or []]


def is_multi_leg(order: Order) -> bool:
    return _text(order.order_class) in ("bracket", "oto", "oco")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def order_report(order: Order, account_id: str, ref: LegRef = ENTRY) -> OrderReport:
    """An Alpaca order as the port's report (leg and parent from `ref`)."""
    filled = dec0(order.filled_qty)
    return OrderReport(
        client_order_id=order.client_order_id,
        venue_order_id=str(order.id),
        parent_client_order_id=ref.parent_client_order_id,
        leg=ref.leg,
        account_id=account_id,
        symbol=order.symbol or "",
        side=Side.BUY if _text(order.side) == "buy" else Side.SELL,
        order_type=ORDER_TYPE.get(_text(order.type or order.order_type), OrderType.MKT),
        quantity=dec0(order.qty),
        limit_price=dec(order.limit_price),
        stop_price=dec(order.stop_price),
        time_in_force=TIME_IN_FORCE.get(_text(order.time_in_force), TimeInForce.DAY),
        status=STATUS.get(_text(order.status), OrderStatus.ACCEPTED),
        filled_quantity=filled,
        avg_fill_price=dec(order.filled_avg_price) if filled > 0 else None,
        created_at=_utc(order.created_at),
        updated_at=_utc(order.updated_at),
    )


def fill_report(activity: dict[str, Any], account_id: str, client_order_id: str,
                ref: LegRef = ENTRY) -> FillReport:  # fmt: skip
    """A FILL account activity (raw JSON, so prices stay the strings Alpaca sent). Alpaca
    charges no commission on equities: known, and zero. The execution id is the activity id's
    part after "::", the same id the stream's fill event carries."""
    raw_id = str(activity["id"])
    when = datetime.fromisoformat(str(activity["transaction_time"]).replace("Z", "+00:00"))
    return FillReport(
        execution_id=raw_id.split("::", 1)[-1],
        client_order_id=client_order_id,
        venue_order_id=str(activity["order_id"]),
        parent_client_order_id=ref.parent_client_order_id,
        leg=ref.leg,
        account_id=account_id,
        symbol=str(activity["symbol"]),
        side=Side.BUY if str(activity["side"]).lower() == "buy" else Side.SELL,
        quantity=dec0(activity["qty"]),
        price=dec0(activity["price"]),
        commission=ZERO,
        commission_known=True,
        executed_at=_utc(when),
    )


def position(item: AlpacaPosition, account_id: str) -> Position:
    quantity = dec0(item.qty)
    if _text(item.side) == "short" and quantity > 0:
        quantity = -quantity
    return Position(
        account_id=account_id,
        symbol=item.symbol,
        quantity=quantity,
        avg_cost=dec0(item.avg_entry_price),
        market_price=dec0(item.current_price),
        market_value=dec0(item.market_value),
        unrealized_pnl=dec0(item.unrealized_pl),
    )


def account_snapshot(
    account: TradeAccount, positions: list[AlpacaPosition], kind: AccountKind
) -> AccountSnapshot:
    """Account figures. Alpaca publishes no realized P&L: today's is the day's equity change
    (equity - last_equity) less what open positions gained or lost today."""
    equity = dec0(account.equity)
    intraday = sum((dec0(p.unrealized_intraday_pl) for p in positions), ZERO)
    return AccountSnapshot(
        account_id=account.account_number,
        kind=kind,
        currency=account.currency or "USD",
        equity=equity,
        cash=dec0(account.cash),
        buying_power=dec0(account.buying_power),
        realized_pnl_today=equity - dec0(account.last_equity) - intraday,
        unrealized_pnl=sum((dec0(p.unrealized_pl) for p in positions), ZERO),
        gross_position_value=dec0(account.long_market_value)
        + abs(dec0(account.short_market_value)),
        shorting_enabled=bool(account.shorting_enabled),
        as_of=datetime.now(UTC),
    )


def instrument_rules(asset: dict[str, Any]) -> InstrumentRules:
    """GET /v2/assets/{symbol} (raw JSON) as the port's rules."""
    fractional = bool(asset.get("fractionable"))
    increment = dec(asset.get("min_trade_increment"))
    return InstrumentRules(
        symbol=str(asset["symbol"]),
        lot_size=Decimal(1),
        min_quantity=dec(asset.get("min_order_size")) or None,
        quantity_increment=(increment or None) if fractional else Decimal(1),
        tick_size=dec(asset.get("price_increment")) or None,
        fractional=fractional,
        shortable=bool(asset.get("shortable")) and bool(asset.get("easy_to_borrow", True)),
        currency="USD",
    )
