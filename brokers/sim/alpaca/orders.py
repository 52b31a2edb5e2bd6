"""POST /v2/orders bodies as Alpaca validates them, turned into the port's OrderRequest.

Pure: a bad body raises `Invalid` with Alpaca's 422 wording; prices and quantities are read as
decimals from the JSON text (alpaca-py sends JSON numbers), so 150.005 stays 150.005 and the
core's tick rule, not float noise, decides."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from brokers.port import OrderRequest
from schemas.events import OrderType, Side, TimeInForce

_TYPES = {"market": OrderType.MKT, "limit": OrderType.LMT, "stop": OrderType.STP,
          "stop_limit": OrderType.STP_LMT}  # fmt: skip
_TIF = {"day": TimeInForce.DAY, "gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC}
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
MAX_CLIENT_ORDER_ID = 128  # Alpaca's limit; the core keeps the port's (64)


class Invalid(ValueError):
    """A request Alpaca answers with 422 / 40010001."""


def _decimal(body: dict[str, Any], name: str, required: bool = False) -> Decimal | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise Invalid(f"{name} is required")
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Invalid(f"invalid {name}: {value!r}") from None
    if not number.is_finite():
        raise Invalid(f"invalid {name}: {value!r}")
    return number


def _choice(body: dict[str, Any], name: str, table: dict[str, Any]) -> Any:
    value = str(body.get(name) or "").lower()
    if value not in table:
        raise Invalid(f"invalid {name}: {body.get(name)!r} (this venue takes {sorted(table)})")
    return table[value]


def _exits(body: dict[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    """take_profit.limit_price and stop_loss.stop_price of a bracket / oto order."""
    order_class = str(body.get("order_class") or "simple").lower()
    take_profit = body.get("take_profit") or {}
    stop_loss = body.get("stop_loss") or {}
    if order_class in ("simple", ""):
        if take_profit or stop_loss:
            raise Invalid("take_profit / stop_loss need order_class bracket or oto")
        return None, None
    if order_class not in ("bracket", "oto"):
        raise Invalid(f"order_class {order_class} is not supported")
    if stop_loss.get("limit_price") is not None:
        raise Invalid("stop_loss.limit_price (a stop-limit exit) is not supported")
    tp = _decimal(take_profit, "limit_price") if isinstance(take_profit, dict) else None
    sl = _decimal(stop_loss, "stop_price") if isinstance(stop_loss, dict) else None
    if order_class == "bracket" and (tp is None or sl is None):
        raise Invalid("bracket orders require take_profit.limit_price and stop_loss.stop_price")
    if order_class == "oto" and (tp is None) == (sl is None):
        raise Invalid("oto orders require exactly one of take_profit and stop_loss")
    return tp, sl


def parse_order(body: Any) -> OrderRequest:
    """The order a POST /v2/orders body asks for, or Invalid."""
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object")
    if body.get("notional") is not None:
        raise Invalid("notional orders are not supported by this venue; send qty")
    client_order_id = str(body.get("client_order_id") or uuid.uuid4())
    if len(client_order_id) > MAX_CLIENT_ORDER_ID:
        raise Invalid(f"client_order_id must be at most {MAX_CLIENT_ORDER_ID} characters")
    quantity = _decimal(body, "qty", required=True)
    if quantity is None or quantity <= 0:
        raise Invalid("qty must be > 0")
    take_profit, stop_loss = _exits(body)
    tif = _choice(body, "time_in_force", _TIF)
    if (take_profit is not None or stop_loss is not None) and tif is TimeInForce.IOC:
        raise Invalid("bracket orders must be day or gtc")
    if not body.get("symbol"):
        raise Invalid("symbol is required")
    try:
        return OrderRequest(
            client_order_id=client_order_id,
            symbol=str(body.get("symbol") or "").upper(),
            side=_choice(body, "side", _SIDES),
            quantity=quantity,
            order_type=_choice(body, "type", _TYPES),
            limit_price=_decimal(body, "limit_price"),
            stop_price=_decimal(body, "stop_price"),
            time_in_force=tif,
            take_profit=take_profit,
            stop_loss=stop_loss,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "order"
        raise Invalid(f"invalid {where}: {first.get('msg', 'invalid value')}") from None
