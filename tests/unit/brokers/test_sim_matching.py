from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.exceptions import (
    DuplicateClientOrderId,
    NotCancellable,
    OrderRejected,
    UnknownOrder,
)
from brokers.sim.core import Exchange, SimConfig, SimUpdate, UnknownAccount
from brokers.sim.reasons import Reason
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce
from tests.unit.brokers.conftest import ACCOUNT, FakeClock, req

D = Decimal


def test_fresh_default_account(exchange: Exchange) -> None:
    assert exchange.accounts() == [ACCOUNT]
    snap = exchange.account_snapshot(ACCOUNT)
    assert snap.equity == D(100000)
    assert snap.cash == D(100000)
    assert snap.buying_power == D(200000)
    assert snap.kind.value == "paper"


def test_open_account_and_unknown_account(exchange: Exchange) -> None:
    exchange.open_account("DU0000002", cash=D(5000))
    assert exchange.account_snapshot("DU0000002").cash == D(5000)
    with pytest.raises(UnknownAccount):
        exchange.account_snapshot("DU9999999")


def test_marketable_limit_fills_at_placement(exchange: Exchange) -> None:
    (report,) = exchange.place(ACCOUNT, req("a", order_type=OrderType.LMT, limit_price="150.00"))
    assert report.status is OrderStatus.FILLED
    assert report.avg_fill_price == D("150.00")
    assert report.venue_order_id


def test_limit_rests_then_fills_at_the_print(exchange: Exchange) -> None:
    (report,) = exchange.place(ACCOUNT, req("a", order_type=OrderType.LMT, limit_price="149.00"))
    assert report.status is OrderStatus.ACCEPTED
    exchange.set_price("AAPL", D("149.50"))
    assert exchange.order(ACCOUNT, "a").status is OrderStatus.ACCEPTED
    exchange.set_price("AAPL", D("148.00"))
    done = exchange.order(ACCOUNT, "a")
    assert done.status is OrderStatus.FILLED
    assert done.avg_fill_price == D("148.00")


def test_sell_limit_needs_price_at_or_above(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("s", side=Side.SELL, order_type=OrderType.LMT, limit_price="151"))
    exchange.set_price("AAPL", D("150.99"))
    assert exchange.order(ACCOUNT, "s").filled_quantity == 0
    exchange.set_price("AAPL", D("151.00"))
    assert exchange.order(ACCOUNT, "s").status is OrderStatus.FILLED


def test_buy_stop_triggers_and_fills_at_the_gap(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("b", order_type=OrderType.STP, stop_price="155"))
    exchange.set_price("AAPL", D("154.99"))
    assert exchange.order(ACCOUNT, "b").status is OrderStatus.ACCEPTED
    exchange.set_price("AAPL", D("156.20"))
    done = exchange.order(ACCOUNT, "b")
    assert done.status is OrderStatus.FILLED
    assert done.avg_fill_price == D("156.20")


def test_stop_limit_triggers_then_waits_for_its_limit(exchange: Exchange) -> None:
    exchange.place(
        ACCOUNT,
        req(
            "sl",
            side=Side.SELL,
            order_type=OrderType.STP_LMT,
            stop_price="145",
            limit_price="144.50",
        ),
    )
    exchange.set_price("AAPL", D("144.00"))  # triggers, but below the limit
    assert exchange.order(ACCOUNT, "sl").filled_quantity == 0
    exchange.set_price("AAPL", D("144.60"))
    done = exchange.order(ACCOUNT, "sl")
    assert done.status is OrderStatus.FILLED
    assert done.avg_fill_price == D("144.60")


def test_ioc_without_liquidity_cancels(exchange: Exchange) -> None:
    (report,) = exchange.place(
        ACCOUNT,
        req("i", order_type=OrderType.LMT, limit_price="140", time_in_force=TimeInForce.IOC),
    )
    assert report.status is OrderStatus.CANCELLED
    assert report.filled_quantity == 0


def test_day_orders_expire_gtc_survive(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("d", order_type=OrderType.LMT, limit_price="140"))
    exchange.place(
        ACCOUNT,
        req("g", order_type=OrderType.LMT, limit_price="140", time_in_force=TimeInForce.GTC),
    )
    exchange.end_of_day()
    assert exchange.order(ACCOUNT, "d").status is OrderStatus.EXPIRED
    assert exchange.order(ACCOUNT, "g").status is OrderStatus.ACCEPTED
    assert [o.client_order_id for o in exchange.orders(ACCOUNT, open_only=True)] == ["g"]


def test_resting_order_fills_as_the_path_moves(exchange: Exchange) -> None:
    exchange.place(
        ACCOUNT,
        req(
            "w",
            order_type=OrderType.LMT,
            limit_price="149.50",
            time_in_force=TimeInForce.GTC,
            qty=1,
        ),
    )
    exchange.place(
        ACCOUNT,
        req(
            "w2",
            side=Side.SELL,
            order_type=OrderType.LMT,
            limit_price="150.50",
            time_in_force=TimeInForce.GTC,
            qty=1,
        ),
    )
    exchange.advance(200)
    statuses = {exchange.order(ACCOUNT, c).status for c in ("w", "w2")}
    assert statuses == {OrderStatus.FILLED}


def test_duplicate_client_id_even_after_finish(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("dup"))
    with pytest.raises(DuplicateClientOrderId):
        exchange.place(ACCOUNT, req("dup"))
    assert len(exchange.orders(ACCOUNT)) == 1
    assert len(exchange.fills(ACCOUNT)) == 1


def test_duplicate_of_a_bracket_child_id(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("p-tp", order_type=OrderType.LMT, limit_price="140"))
    with pytest.raises(DuplicateClientOrderId):
        exchange.place(ACCOUNT, req("p", take_profit="160", stop_loss="145"))
    with pytest.raises(UnknownOrder):
        exchange.order(ACCOUNT, "p")


def test_client_ids_are_per_account(exchange: Exchange) -> None:
    exchange.open_account("DU0000002")
    exchange.place(ACCOUNT, req("same"))
    exchange.place("DU0000002", req("same"))
    assert exchange.order("DU0000002", "same").status is OrderStatus.FILLED


@pytest.mark.parametrize("price", ["150.005", "149.999"])
def test_off_tick_price_is_refused(exchange: Exchange, price: str) -> None:
    with pytest.raises(OrderRejected) as caught:
        exchange.place(ACCOUNT, req("t", order_type=OrderType.LMT, limit_price=price))
    assert caught.value.reason is Reason.OFF_TICK
    assert caught.value.code == "off_tick"  # the in-process venue's own code: the reason
    assert f"price {D(price)} is off" in str(caught.value)


def test_off_tick_bracket_price_is_refused(exchange: Exchange) -> None:
    with pytest.raises(OrderRejected) as caught:
        exchange.place(ACCOUNT, req("t", take_profit="160.001", stop_loss="145"))
    assert caught.value.reason is Reason.OFF_TICK


def test_fractional_quantity_is_refused(exchange: Exchange) -> None:
    with pytest.raises(OrderRejected) as caught:
        exchange.place(ACCOUNT, req("f", qty="1.5"))
    assert caught.value.reason is Reason.INVALID_QUANTITY


def test_unknown_symbol_is_refused(exchange: Exchange) -> None:
    with pytest.raises(OrderRejected) as caught:
        exchange.place(ACCOUNT, req("u", symbol="NOPE"))
    assert caught.value.reason is Reason.UNKNOWN_INSTRUMENT
    assert exchange.orders(ACCOUNT) == []


def test_insufficient_buying_power_is_refused(exchange: Exchange) -> None:
    with pytest.raises(OrderRejected) as caught:
        exchange.place(ACCOUNT, req("big", qty=1334))  # 1334 * 150 > 200,000
    assert caught.value.reason is Reason.INSUFFICIENT_BUYING_POWER
    assert "insufficient" in str(caught.value)
    exchange.place(ACCOUNT, req("ok", qty=1333))


def test_open_orders_reserve_buying_power(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("r1", qty=1000, order_type=OrderType.LMT, limit_price="140"))
    with pytest.raises(OrderRejected):
        exchange.place(ACCOUNT, req("r2", qty=500, order_type=OrderType.LMT, limit_price="140"))


def test_closing_orders_need_no_buying_power(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("in", qty=1333))
    exchange.set_price("AAPL", D(100))  # equity falls, buying power with it
    exchange.place(ACCOUNT, req("out", side=Side.SELL, qty=1333))
    assert exchange.positions(ACCOUNT) == []


def test_shorting_disabled_is_refused(clock: FakeClock) -> None:
    exchange = Exchange(SimConfig(shorting_enabled=False), clock=clock)
    with pytest.raises(OrderRejected) as caught:
        exchange.place(ACCOUNT, req("s", side=Side.SELL))
    assert caught.value.reason is Reason.NOT_SHORTABLE
    assert not exchange.account_snapshot(ACCOUNT).shorting_enabled


def test_cash_account_buying_power_is_cash(clock: FakeClock) -> None:
    exchange = Exchange(SimConfig(margin_multiplier=D(1)), clock=clock)
    assert exchange.account_snapshot(ACCOUNT).buying_power == D(100000)
    with pytest.raises(OrderRejected):
        exchange.place(ACCOUNT, req("x", qty=667))


def test_cancel_rules(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("c", order_type=OrderType.LMT, limit_price="140"))
    report = exchange.cancel(ACCOUNT, "c")
    assert report.status is OrderStatus.CANCELLED
    with pytest.raises(NotCancellable) as not_cancellable:
        exchange.cancel(ACCOUNT, "c")
    assert not_cancellable.value.reason is Reason.NOT_CANCELLABLE
    with pytest.raises(UnknownOrder) as unknown:
        exchange.cancel(ACCOUNT, "nope")
    assert unknown.value.reason is Reason.UNKNOWN_ORDER


def test_given_venue_ids_and_lookup(exchange: Exchange) -> None:
    ids = {OrderLeg.ENTRY: "7", OrderLeg.TAKE_PROFIT: "8", OrderLeg.STOP_LOSS: "9"}
    reports = exchange.place(
        ACCOUNT,
        req("v", order_type=OrderType.LMT, limit_price="140", take_profit="150", stop_loss="135"),
        venue_order_ids=ids,
    )
    assert [r.venue_order_id for r in reports] == ["7", "8", "9"]
    assert exchange.order_by_venue_id(ACCOUNT, "8").client_order_id == "v-tp"
    with pytest.raises(OrderRejected) as caught:
        exchange.place(ACCOUNT, req("w"), venue_order_ids={OrderLeg.ENTRY: "7"})
    assert caught.value.reason is Reason.DUPLICATE_ORDER_ID
    with pytest.raises(UnknownOrder):
        exchange.order_by_venue_id(ACCOUNT, "404")


def test_generated_venue_ids_are_unique(exchange: Exchange) -> None:
    ids = {exchange.place(ACCOUNT, req(f"g{i}", qty=1))[0].venue_order_id for i in range(5)}
    assert len(ids) == 5


def test_subscribers_see_order_changes_and_fills(exchange: Exchange) -> None:
    seen: list[SimUpdate] = []
    stop = exchange.subscribe(seen.append)
    exchange.place(ACCOUNT, req("s"))
    kinds = [u.order.status.value if u.order else "fill" for u in seen if u.order or u.fill]
    assert kinds == ["accepted", "fill", "filled"]
    assert all(u.account_id == ACCOUNT for u in seen)
    stop()
    exchange.place(ACCOUNT, req("t"))
    assert len(seen) == 3


def test_a_failing_subscriber_does_not_break_the_venue(exchange: Exchange) -> None:
    def boom(update: SimUpdate) -> None:
        raise RuntimeError("listener bug")

    exchange.subscribe(boom)
    (report,) = exchange.place(ACCOUNT, req("s"))
    assert report.status is OrderStatus.FILLED


def test_fills_since_filters_by_time(exchange: Exchange, clock: FakeClock) -> None:
    exchange.place(ACCOUNT, req("early", qty=1))
    cut = clock.tick(60)
    exchange.place(ACCOUNT, req("late", qty=1))
    assert [f.client_order_id for f in exchange.fills(ACCOUNT, since=cut)] == ["late"]
    assert len(exchange.fills(ACCOUNT)) == 2
