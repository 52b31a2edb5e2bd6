from __future__ import annotations

from decimal import Decimal

from brokers.port import child_client_order_id
from brokers.sim.core import Exchange
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce
from tests.unit.brokers.conftest import ACCOUNT, req

D = Decimal


def seed_bracket(exchange: Exchange, cid: str = "b", **more: object) -> None:
    """The seed example: buy AAPL at 150.00, stop 145, take profit 160."""
    fields: dict[str, object] = {
        "order_type": OrderType.LMT,
        "limit_price": "150.00",
        "take_profit": "160",
        "stop_loss": "145",
    }
    fields.update(more)
    exchange.place(ACCOUNT, req(cid, **fields))  # type: ignore[arg-type]


def status(exchange: Exchange, cid: str) -> OrderStatus:
    return exchange.order(ACCOUNT, cid).status


def test_bracket_legs_are_linked(exchange: Exchange) -> None:
    reports = exchange.place(
        ACCOUNT,
        req("b", order_type=OrderType.LMT, limit_price="140", take_profit="160", stop_loss="135"),
    )
    entry, tp, sl = reports
    assert entry.leg is OrderLeg.ENTRY
    assert tp.client_order_id == child_client_order_id("b", OrderLeg.TAKE_PROFIT) == "b-tp"
    assert sl.client_order_id == child_client_order_id("b", OrderLeg.STOP_LOSS) == "b-sl"
    assert tp.parent_client_order_id == sl.parent_client_order_id == "b"
    assert (tp.side, tp.order_type, tp.limit_price) == (Side.SELL, OrderType.LMT, D(160))
    assert (sl.side, sl.order_type, sl.stop_price) == (Side.SELL, OrderType.STP, D(135))
    assert tp.time_in_force is TimeInForce.GTC
    assert tp.status is OrderStatus.SUBMITTED  # inactive until the entry fills


def test_children_do_not_trade_before_the_entry(exchange: Exchange) -> None:
    exchange.place(
        ACCOUNT,
        req("b", order_type=OrderType.LMT, limit_price="140", take_profit="160", stop_loss="135"),
    )
    exchange.set_price("AAPL", D(161))
    assert exchange.fills(ACCOUNT) == []
    assert status(exchange, "b-tp") is OrderStatus.SUBMITTED


def test_take_profit_exit_cancels_stop(exchange: Exchange) -> None:
    seed_bracket(exchange)
    assert status(exchange, "b") is OrderStatus.FILLED
    assert status(exchange, "b-tp") is OrderStatus.ACCEPTED
    exchange.set_price("AAPL", D("160.00"))
    assert status(exchange, "b-tp") is OrderStatus.FILLED
    assert status(exchange, "b-sl") is OrderStatus.CANCELLED
    assert exchange.positions(ACCOUNT) == []
    # 10 x (160 - 150), net of the entry's and the exit's 1.00 commissions, as IB reports it
    assert exchange.account_snapshot(ACCOUNT).realized_pnl_today == D(98)


def test_stop_loss_exit_cancels_take_profit(exchange: Exchange) -> None:
    seed_bracket(exchange)
    exchange.set_price("AAPL", D("144.10"))
    sl = exchange.order(ACCOUNT, "b-sl")
    assert sl.status is OrderStatus.FILLED
    assert sl.avg_fill_price == D("144.10")
    assert status(exchange, "b-tp") is OrderStatus.CANCELLED
    # 10 x (144.10 - 150) less two 1.00 commissions
    assert exchange.account_snapshot(ACCOUNT).realized_pnl_today == D("-61.00")


def test_short_bracket(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("s", side=Side.SELL, take_profit="140", stop_loss="155"))
    assert exchange.positions(ACCOUNT)[0].quantity == D(-10)
    exchange.set_price("AAPL", D(139))
    assert status(exchange, "s-tp") is OrderStatus.FILLED
    assert status(exchange, "s-sl") is OrderStatus.CANCELLED
    assert exchange.positions(ACCOUNT) == []


def test_cancelled_entry_cancels_children(exchange: Exchange) -> None:
    exchange.place(
        ACCOUNT,
        req("b", order_type=OrderType.LMT, limit_price="140", take_profit="160", stop_loss="135"),
    )
    exchange.cancel(ACCOUNT, "b")
    assert status(exchange, "b-tp") is OrderStatus.CANCELLED
    assert status(exchange, "b-sl") is OrderStatus.CANCELLED
    assert exchange.orders(ACCOUNT, open_only=True) == []


def test_part_filled_entry_leaves_exits_sized_to_the_fill(exchange: Exchange) -> None:
    exchange.set_liquidity("AAPL", D(4))
    seed_bracket(exchange)
    assert exchange.order(ACCOUNT, "b").filled_quantity == D(4)
    assert status(exchange, "b-tp") is OrderStatus.SUBMITTED
    exchange.cancel(ACCOUNT, "b")
    tp, sl = exchange.order(ACCOUNT, "b-tp"), exchange.order(ACCOUNT, "b-sl")
    assert (tp.status, tp.quantity) == (OrderStatus.ACCEPTED, D(4))
    assert (sl.status, sl.quantity) == (OrderStatus.ACCEPTED, D(4))


def test_partial_take_profit_shrinks_the_stop(exchange: Exchange) -> None:
    seed_bracket(exchange)
    exchange.set_liquidity("AAPL", D(3))
    exchange.set_price("AAPL", D(160))
    assert exchange.order(ACCOUNT, "b-tp").filled_quantity == D(3)
    sl = exchange.order(ACCOUNT, "b-sl")
    assert (sl.status, sl.quantity) == (OrderStatus.ACCEPTED, D(7))
    exchange.set_price("AAPL", D(140))
    assert exchange.order(ACCOUNT, "b-sl").filled_quantity == D(3)
    tp = exchange.order(ACCOUNT, "b-tp")  # 3 filled; shrinks by the stop's 3 to cover 4
    assert (tp.status, tp.quantity) == (OrderStatus.PARTIALLY_FILLED, D(7))
    exchange.advance(2)
    assert exchange.order(ACCOUNT, "b-sl").status is OrderStatus.FILLED
    assert status(exchange, "b-tp") is OrderStatus.CANCELLED
    assert exchange.positions(ACCOUNT) == []


def test_marketable_exit_fills_in_the_same_print(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("m", take_profit="149", stop_loss="140"))
    assert status(exchange, "m-tp") is OrderStatus.FILLED
    assert status(exchange, "m-sl") is OrderStatus.CANCELLED


def test_end_of_day_keeps_gtc_exits(exchange: Exchange) -> None:
    seed_bracket(exchange)
    exchange.end_of_day()
    assert status(exchange, "b-tp") is OrderStatus.ACCEPTED
    assert status(exchange, "b-sl") is OrderStatus.ACCEPTED


def test_ioc_entry_part_fill_activates_exits_at_once(exchange: Exchange) -> None:
    exchange.set_liquidity("AAPL", D(4))
    entry, _, _ = exchange.place(
        ACCOUNT, req("i", time_in_force=TimeInForce.IOC, take_profit="149", stop_loss="140")
    )
    assert (entry.status, entry.filled_quantity) == (OrderStatus.CANCELLED, D(4))
    tp = exchange.order(ACCOUNT, "i-tp")
    assert (tp.status, tp.filled_quantity) == (OrderStatus.FILLED, D(4))
    assert status(exchange, "i-sl") is OrderStatus.CANCELLED
    assert exchange.positions(ACCOUNT) == []
