"""Wire-order bookkeeping and bracket assembly (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.exceptions import OrderRejected
from brokers.port import OrderReport
from brokers.sim.tws.book import (
    Binding,
    OrderBook,
    bracket_request,
    client_order_id_for,
    parse_venue_order_id,
    to_request,
)
from brokers.sim.tws.codec import PlaceOrderMsg, WireContract
from schemas.events import OrderLeg, OrderStatus, OrderType, Side

AAPL = WireContract(1, "AAPL")


def msg(order_id: int, order_type: str = "LMT", **kw: object) -> PlaceOrderMsg:
    base: dict[str, object] = dict(
        order_id=order_id, contract=AAPL, action="BUY", quantity=Decimal(10),
        order_type=order_type, lmt_price=Decimal(100), aux_price=None, tif="DAY", oca_group="",
        account="DU1", order_ref="ref", transmit=True, parent_id=0,
    )  # fmt: skip
    return PlaceOrderMsg(**{**base, **kw})  # type: ignore[arg-type]


def test_simple_request() -> None:
    req = to_request(msg(1), "ref")
    assert (req.side, req.order_type, req.limit_price) == (Side.BUY, OrderType.LMT, 100)


def test_unsupported_type_is_201() -> None:
    with pytest.raises(OrderRejected) as caught:
        to_request(msg(1, "TRAIL"), "ref")
    assert caught.value.code == "201"


def test_bracket_assembly() -> None:
    tp = msg(2, "LMT", action="SELL", lmt_price=Decimal(110), parent_id=1)
    sl = msg(3, "STP", action="SELL", lmt_price=None, aux_price=Decimal(90), parent_id=1)
    req, legs = bracket_request(msg(1, transmit=False), [tp, sl], "ref")
    assert (req.take_profit, req.stop_loss) == (Decimal(110), Decimal(90))
    assert legs[OrderLeg.STOP_LOSS] is sl
    assert legs[OrderLeg.TAKE_PROFIT] is tp


def test_hold_release_and_ids() -> None:
    book = OrderBook()
    book.hold(5, msg(1, transmit=False))
    book.hold(5, msg(2, parent_id=1, transmit=False))
    parent, children = book.release(5, 1)
    assert parent.order_id == 1
    assert [c.order_id for c in children] == [2]
    assert book.next_order_id(5) == 3
    assert book.is_used(5, 2)
    with pytest.raises(OrderRejected):
        book.release(5, 1)


def test_adopt_restores_ids_from_venue_id() -> None:
    book = OrderBook()
    binding = Binding("DU1", "ref", 5, 9, 1_000_777, "ref")
    now = datetime.now(UTC)
    report = OrderReport(
        client_order_id="ref", venue_order_id=binding.venue_order_id, account_id="DU1",
        symbol="AAPL", side=Side.BUY, order_type=OrderType.MKT, quantity=Decimal(1),
        status=OrderStatus.ACCEPTED, created_at=now, updated_at=now,
    )  # fmt: skip
    adopted = book.adopt(report)
    assert (adopted.client_id, adopted.order_id, adopted.perm_id) == (5, 9, 1_000_777)
    assert book.next_order_id(5) == 10
    assert book.new_perm_id() > 1_000_777
    assert parse_venue_order_id("abc") is None


def test_client_order_id_falls_back_without_ref() -> None:
    assert client_order_id_for(msg(4, order_ref=""), 7) == "ib-7-4"
