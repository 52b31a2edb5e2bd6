"""Exchange.modify (re-sent live IB order ids) and OCA cancel semantics of bracket exits."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from brokers.exceptions import OrderRejected
from brokers.sim.core import Exchange
from brokers.sim.reasons import Reason
from brokers.sim.store import SimStore
from schemas.events import OrderStatus, OrderType, Side
from tests.unit.brokers.conftest import ACCOUNT, FakeClock, req

D = Decimal


def resting_limit(exchange: Exchange, cid: str = "m", qty: int = 10, price: str = "140") -> None:
    exchange.set_price("AAPL", D(150))
    exchange.place(ACCOUNT, req(cid, qty=qty, order_type=OrderType.LMT, limit_price=price))


def test_modify_price_and_quantity_of_resting_limit(exchange: Exchange) -> None:
    resting_limit(exchange)
    report = exchange.modify(ACCOUNT, "m", quantity=D(20), limit_price=D("141.50"))
    assert (report.quantity, report.limit_price) == (D(20), D("141.50"))
    assert report.status is OrderStatus.ACCEPTED
    again = exchange.order(ACCOUNT, "m")
    assert (again.quantity, again.limit_price) == (D(20), D("141.50"))


def test_modify_to_marketable_price_fills_at_once(exchange: Exchange) -> None:
    resting_limit(exchange)
    report = exchange.modify(ACCOUNT, "m", limit_price=D(151))
    assert report.status is OrderStatus.FILLED
    assert report.avg_fill_price == D(150)
    assert exchange.positions(ACCOUNT)[0].quantity == D(10)


def test_none_keeps_values_and_unused_prices_are_ignored(exchange: Exchange) -> None:
    resting_limit(exchange)
    report = exchange.modify(ACCOUNT, "m", stop_price=D("99.99"))
    assert (report.quantity, report.limit_price, report.stop_price) == (D(10), D(140), None)


def test_modify_stop_price(exchange: Exchange) -> None:
    exchange.set_price("AAPL", D(150))
    exchange.place(ACCOUNT, req("s", side=Side.BUY, order_type=OrderType.STP, stop_price="155"))
    exchange.modify(ACCOUNT, "s", stop_price=D(160))
    exchange.set_price("AAPL", D(156))
    assert exchange.order(ACCOUNT, "s").status is OrderStatus.ACCEPTED
    exchange.set_price("AAPL", D(160))
    assert exchange.order(ACCOUNT, "s").status is OrderStatus.FILLED


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"limit_price": D("140.005")}, Reason.OFF_TICK),
        ({"limit_price": D(0)}, Reason.INVALID_PRICE),
        ({"quantity": D("10.5")}, Reason.INVALID_QUANTITY),
        # 5000 x 140 = 700,000 > 200,000 buying power
        ({"quantity": D(5000)}, Reason.INSUFFICIENT_BUYING_POWER),
    ],
)
def test_modify_is_checked_like_place(
    exchange: Exchange, changes: dict[str, Decimal], reason: Reason
) -> None:
    resting_limit(exchange)
    with pytest.raises(OrderRejected) as err:
        exchange.modify(ACCOUNT, "m", **changes)
    assert err.value.reason is reason
    unchanged = exchange.order(ACCOUNT, "m")
    assert (unchanged.quantity, unchanged.limit_price) == (D(10), D(140))


def test_buying_power_check_does_not_count_the_order_twice(exchange: Exchange) -> None:
    # 1000 x 140 = 140,000 reserved of 200,000; raising the price must not need 280,000.
    resting_limit(exchange, qty=1000)
    report = exchange.modify(ACCOUNT, "m", limit_price=D(145))
    assert report.limit_price == D(145)


def test_quantity_must_stay_above_filled(exchange: Exchange) -> None:
    exchange.set_price("AAPL", D(150))
    exchange.set_liquidity("AAPL", D(4))
    exchange.place(ACCOUNT, req("p", qty=10, order_type=OrderType.LMT, limit_price="150"))
    assert exchange.order(ACCOUNT, "p").filled_quantity == D(4)
    with pytest.raises(OrderRejected, match="filled already"):
        exchange.modify(ACCOUNT, "p", quantity=D(4))
    report = exchange.modify(ACCOUNT, "p", quantity=D(6))
    assert (report.quantity, report.filled_quantity) == (D(6), D(4))
    exchange.advance()
    assert exchange.order(ACCOUNT, "p").status is OrderStatus.FILLED
    assert exchange.positions(ACCOUNT)[0].quantity == D(6)


def test_finished_order_cannot_be_modified(exchange: Exchange) -> None:
    resting_limit(exchange)
    exchange.cancel(ACCOUNT, "m")
    with pytest.raises(OrderRejected, match="can no longer be modified"):
        exchange.modify(ACCOUNT, "m", limit_price=D(141))


def test_entry_resize_resizes_inactive_exits(exchange: Exchange) -> None:
    exchange.set_price("AAPL", D(150))
    exchange.place(
        ACCOUNT,
        req("b", order_type=OrderType.LMT, limit_price="140", take_profit="160", stop_loss="130"),
    )
    exchange.modify(ACCOUNT, "b", quantity=D(15))
    assert exchange.order(ACCOUNT, "b-tp").quantity == D(15)
    assert exchange.order(ACCOUNT, "b-sl").quantity == D(15)


def test_move_stop_loss_of_live_bracket(exchange: Exchange) -> None:
    exchange.set_price("AAPL", D(150))
    exchange.place(
        ACCOUNT,
        req("b", order_type=OrderType.LMT, limit_price="150", take_profit="160", stop_loss="140"),
    )
    exchange.modify(ACCOUNT, "b-sl", stop_price=D(148))
    exchange.set_price("AAPL", D("147.50"))
    assert exchange.order(ACCOUNT, "b-sl").status is OrderStatus.FILLED
    assert exchange.order(ACCOUNT, "b-tp").status is OrderStatus.CANCELLED
    assert exchange.positions(ACCOUNT) == []


def test_modify_is_persisted(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.sqlite"
    first = Exchange(store=SimStore(path), clock=clock)
    resting_limit(first)
    first.modify(ACCOUNT, "m", quantity=D(12), limit_price=D(139))
    second = Exchange(store=SimStore(path), clock=clock)
    again = second.order(ACCOUNT, "m")
    assert (again.quantity, again.limit_price) == (D(12), D(139))


# ---------------------------------------------------------------------------- OCA cancel


def live_bracket(exchange: Exchange) -> None:
    exchange.set_price("AAPL", D(150))
    exchange.place(
        ACCOUNT,
        req("b", order_type=OrderType.LMT, limit_price="150", take_profit="160", stop_loss="140"),
    )
    assert exchange.order(ACCOUNT, "b").status is OrderStatus.FILLED


@pytest.mark.parametrize(("cancelled", "sibling"), [("b-tp", "b-sl"), ("b-sl", "b-tp")])
def test_cancelling_one_exit_cancels_its_oca_sibling(
    exchange: Exchange, cancelled: str, sibling: str
) -> None:
    live_bracket(exchange)
    report = exchange.cancel(ACCOUNT, cancelled)
    assert report.status is OrderStatus.CANCELLED
    other = exchange.order(ACCOUNT, sibling)
    assert other.status is OrderStatus.CANCELLED
    assert other.reason == "OCA group member cancelled"
    assert exchange.orders(ACCOUNT, open_only=True) == []
    assert exchange.positions(ACCOUNT)[0].quantity == D(10)  # the position stays


def test_cancelling_an_inactive_exit_leaves_the_entry_working(exchange: Exchange) -> None:
    exchange.set_price("AAPL", D(150))
    exchange.place(
        ACCOUNT,
        req("b", order_type=OrderType.LMT, limit_price="140", take_profit="160", stop_loss="130"),
    )
    exchange.cancel(ACCOUNT, "b-tp")
    assert exchange.order(ACCOUNT, "b-sl").status is OrderStatus.CANCELLED
    assert exchange.order(ACCOUNT, "b").status is OrderStatus.ACCEPTED
    exchange.set_price("AAPL", D(139))
    assert exchange.order(ACCOUNT, "b").status is OrderStatus.FILLED
    assert [o.client_order_id for o in exchange.orders(ACCOUNT, open_only=True)] == []


def test_oca_cancel_does_not_touch_other_brackets(exchange: Exchange) -> None:
    live_bracket(exchange)
    exchange.place(
        ACCOUNT,
        req("c", order_type=OrderType.LMT, limit_price="150", take_profit="165", stop_loss="135"),
    )
    exchange.cancel(ACCOUNT, "b-sl")
    assert exchange.order(ACCOUNT, "c-tp").status is OrderStatus.ACCEPTED
    assert exchange.order(ACCOUNT, "c-sl").status is OrderStatus.ACCEPTED
