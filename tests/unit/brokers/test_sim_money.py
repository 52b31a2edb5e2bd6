from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers.exceptions import OrderRejected
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.models import Lot, apply_to_lot, commission_for
from brokers.sim.reasons import Reason
from schemas.events import OrderStatus, Side
from tests.unit.brokers.conftest import ACCOUNT, FakeClock, req

D = Decimal
CONFIG = SimConfig()


@pytest.mark.parametrize(
    ("qty", "value", "fee"),
    [
        (10, "1500", "1.00"),  # minimum
        (1000, "150000", "5.00"),  # per share
        (1, "50", "0.50"),  # capped at 1% of value
        (300, "60", "0.60"),  # cap beats per share and minimum
        (333, "49950", "1.67"),  # 1.665 rounds half up
    ],
)
def test_commission_follows_ib_fixed(qty: int, value: str, fee: str) -> None:
    assert commission_for(CONFIG, D(qty), D(value)) == D(fee)


def test_partial_fills_pay_the_order_commission_once(clock: FakeClock) -> None:
    exchange = Exchange(SimConfig(), clock=clock)
    exchange.set_price("AAPL", D(150))
    exchange.set_liquidity("AAPL", D(100))
    exchange.place(ACCOUNT, req("p", qty=1000))
    exchange.advance(9)
    fees = [f.commission for f in exchange.fills(ACCOUNT)]
    assert len(fees) == 10
    assert sum(fees) == commission_for(CONFIG, D(1000), D(150000)) == D("5.00")
    assert exchange.account_snapshot(ACCOUNT).cash == D(100000) - D(150000) - D(5)


def test_average_cost_and_realized_pnl() -> None:
    lot, realized = apply_to_lot(None, D(10), D(100))
    lot, realized = apply_to_lot(lot, D(10), D(110))
    assert lot == Lot(D(20), D(105))
    assert realized == 0
    lot, realized = apply_to_lot(lot, D(-5), D(120))
    assert lot == Lot(D(15), D(105))
    assert realized == D(75)
    lot, realized = apply_to_lot(lot, D(-15), D(100))
    assert lot is None
    assert realized == D(-75)


def test_flip_long_to_short_realizes_and_resets_cost() -> None:
    lot, realized = apply_to_lot(Lot(D(10), D(100)), D(-15), D(90))
    assert realized == D(-100)
    assert lot == Lot(D(-5), D(90))


def test_realized_pnl_is_net_of_commissions() -> None:
    lot, realized = apply_to_lot(None, D(10), D(100), commission=D(2))
    assert lot == Lot(D(10), D(100), fees=D(2))  # the cost stays the bare price
    assert realized == 0
    lot, realized = apply_to_lot(lot, D(-4), D(110), commission=D(1))
    assert realized == D(40) - D("0.80") - D(1)  # 4/10 of the opening fee, all the closing
    assert lot == Lot(D(6), D(100), fees=D("1.20"))
    lot, realized = apply_to_lot(lot, D(-10), D(90), commission=D(5))
    assert realized == D(-60) - D("1.20") - D(3)  # closes 6 of 10: 6/10 of the fee
    assert lot == Lot(D(-4), D(90), fees=D(2))  # the opening 4 carry the rest


def test_short_profit_when_price_falls() -> None:
    lot, _ = apply_to_lot(None, D(-10), D(100))
    lot, realized = apply_to_lot(lot, D(4), D(80))
    assert realized == D(80)
    assert lot == Lot(D(-6), D(100))


def test_short_position_in_the_account(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("s", side=Side.SELL, qty=100))
    snap = exchange.account_snapshot(ACCOUNT)
    assert snap.cash == D(100000) + D(15000) - D(1)
    assert snap.gross_position_value == D(15000)
    assert snap.equity == D(100000) - D(1)
    assert snap.buying_power == 2 * snap.equity - D(15000)
    exchange.set_price("AAPL", D(140))
    (pos,) = exchange.positions(ACCOUNT)
    assert pos.quantity == D(-100)
    assert pos.market_value == D(-14000)
    assert pos.unrealized_pnl == D(1000)
    exchange.place(ACCOUNT, req("c", side=Side.BUY, qty=100))
    snap = exchange.account_snapshot(ACCOUNT)
    assert snap.realized_pnl_today == D(1000) - D(2)  # net of both commissions
    assert snap.cash == D(100000) + D(1000) - D(2)
    exchange.end_of_day()
    assert exchange.account_snapshot(ACCOUNT).realized_pnl_today == 0


def test_buying_power_rule(exchange: Exchange) -> None:
    exchange.place(ACCOUNT, req("b", qty=400))  # 60,000 long
    snap = exchange.account_snapshot(ACCOUNT)
    assert snap.equity == D(100000) - D(2)
    assert snap.buying_power == 2 * snap.equity - D(60000)


SYMBOLS = ["AAPL", "MSFT", "F"]
trade = st.tuples(
    st.sampled_from(SYMBOLS),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(min_value=1, max_value=120),
    st.decimals(min_value=D("5.00"), max_value=D("500.00"), places=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(trade, min_size=1, max_size=12))
def test_equity_moves_only_by_prices_and_commissions(
    trades: list[tuple[str, Side, int, Decimal]],
) -> None:
    exchange = Exchange(SimConfig(margin_multiplier=D(50)))
    expected = D(100000)
    for i, (symbol, side, qty, price) in enumerate(trades):
        before = exchange.account_snapshot(ACCOUNT).equity
        exchange.set_price(symbol, price)
        moved = exchange.account_snapshot(ACCOUNT).equity
        refusal: str | None = None  # the neutral reason
        try:
            (report,) = exchange.place(ACCOUNT, req(f"h{i}", symbol=symbol, side=side, qty=qty))
        except OrderRejected as refused:
            refusal = refused.reason
        if refusal is not None:
            # A margin call in all but name (e.g. a short squeezed from 5 to 490): refusing
            # for buying power is right, and a refusal moves nothing.
            assert refusal is Reason.INSUFFICIENT_BUYING_POWER
            assert exchange.account_snapshot(ACCOUNT).equity == moved
            expected += moved - before
            continue
        assert report.status is OrderStatus.FILLED
        fee = exchange.fills(ACCOUNT)[-1].commission
        after = exchange.account_snapshot(ACCOUNT)
        assert after.equity == moved - fee
        expected += (moved - before) - fee
        positions = exchange.positions(ACCOUNT)
        assert after.cash + sum(p.market_value for p in positions) == after.equity
        assert after.unrealized_pnl == sum(p.unrealized_pnl for p in positions)
    assert exchange.account_snapshot(ACCOUNT).equity == expected
    for j, pos in enumerate(exchange.positions(ACCOUNT)):  # flat again at the last prints
        side = Side.SELL if pos.quantity > 0 else Side.BUY
        shares = str(abs(pos.quantity))
        exchange.place(ACCOUNT, req(f"x{j}", symbol=pos.symbol, side=side, qty=shares))
        expected -= exchange.fills(ACCOUNT)[-1].commission
    assert exchange.positions(ACCOUNT) == []
    snap = exchange.account_snapshot(ACCOUNT)
    assert snap.equity == expected
    assert snap.unrealized_pnl == 0
    # Realized P&L is net of every commission, so once flat it is all that moved equity.
    # Average costs can be repeating fractions; only the last digits of 28 may differ.
    assert abs(expected - (D(100000) + snap.realized_pnl_today)) < D("1e-20")
