"""Pre-trade limits: boundaries, valuation of positions and working orders, BUY and SELL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agents.decisions import Instrument, ReasonCode, Refusal, Sizing, check_limits, size_position
from brokers.port import OrderReport, Position
from schemas.events import OrderLeg, OrderStatus, Side
from tests.unit.decisions.decisions_factory import T0, Factory

R = ReasonCode
BUY, SELL = Side.BUY, Side.SELL
SIDES = pytest.mark.parametrize("side", [BUY, SELL])


def limits(
    f: Factory,
    side: Side,
    *,
    settings: dict[str, Any] | None = None,
    account: dict[str, Any] | None = None,
    positions: list[Position] | None = None,
    orders: list[OrderReport] | None = None,
    recent: int = 0,
    now: datetime = T0,
) -> Refusal | None:
    """The worked example's order (133 x 150.00 = 19,950.00) against the given book."""
    cfg = f.settings(**(settings or {}))
    acct = f.account(**(account or {}))
    signal = f.signal(side)
    sizing = size_position(signal, acct, Instrument(), cfg)
    assert isinstance(sizing, Sizing)
    return check_limits(signal, sizing, acct, positions or [], orders or [], recent, now, cfg)


def code(result: Refusal | None) -> R | None:
    return None if result is None else result.code


@SIDES
def test_clean_book_passes(f: Factory, side: Side) -> None:
    assert limits(f, side) is None


@SIDES
@pytest.mark.parametrize(("recent", "expected"), [(9, None), (10, R.ORDER_RATE_LIMIT)])
def test_order_rate(f: Factory, side: Side, recent: int, expected: R | None) -> None:
    assert code(limits(f, side, recent=recent)) is expected


@SIDES
@pytest.mark.parametrize(
    ("realized", "unrealized", "expected"),
    [
        pytest.param("-500", "-499.99", None, id="just-inside"),
        pytest.param("-500", "-500", R.MAX_DAILY_LOSS, id="at-limit"),
        pytest.param("0", "-1200", R.MAX_DAILY_LOSS, id="unrealized-only"),
        pytest.param("-1500", "600", None, id="offset-by-gains"),
    ],
)
def test_daily_loss(
    f: Factory, side: Side, realized: str, unrealized: str, expected: R | None
) -> None:
    account = {"realized_pnl_today": realized, "unrealized_pnl": unrealized}
    result = limits(f, side, settings={"max_daily_loss": "1000"}, account=account)
    assert code(result) is expected
    if result is not None:
        assert result.details["max_daily_loss"] == "1000"
        assert result.stage == "risk"


def test_daily_loss_off_by_default(f: Factory) -> None:
    assert limits(f, BUY, account={"realized_pnl_today": "-99999"}) is None


@pytest.mark.parametrize(
    ("side", "held", "expected"),
    [
        pytest.param(BUY, [], None, id="BUY-unaffected"),
        pytest.param(SELL, [], R.SHORTING_DISABLED, id="SELL-short"),
        pytest.param(SELL, [("AAPL", "50", "150")], R.SHORTING_DISABLED, id="SELL-beyond-held"),
        pytest.param(SELL, [("AAPL", "133", "150")], None, id="SELL-held-shares"),
    ],
)
def test_shorting_disabled(f: Factory, side: Side, held: list, expected: R | None) -> None:
    positions = [f.position(*p) for p in held]
    settings = {"allow_same_symbol_position": True, "max_symbol_exposure_pct": "1"}
    result = limits(
        f, side, settings=settings, account={"shorting_enabled": False}, positions=positions
    )
    assert code(result) is expected


@SIDES
@pytest.mark.parametrize(
    ("book", "expected"),
    [
        pytest.param("position", R.SAME_SYMBOL_POSITION, id="position"),
        pytest.param("short-position", R.SAME_SYMBOL_POSITION, id="short-position"),
        pytest.param("pending-entry", R.SAME_SYMBOL_POSITION, id="pending-entry"),
        pytest.param("flat-position", None, id="flat-position"),
        pytest.param("filled-order", None, id="terminal-order"),
        pytest.param("exit-leg", None, id="exit-leg"),
        pytest.param("other-symbol", None, id="other-symbol"),
    ],
)
def test_same_symbol(f: Factory, side: Side, book: str, expected: R | None) -> None:
    positions, orders = {
        "position": ([f.position("AAPL", "10", "150")], []),
        "short-position": ([f.position("AAPL", "-10", "150")], []),
        "pending-entry": ([], [f.order("AAPL", "10", "149")]),
        "flat-position": ([f.position("AAPL", "0", "150")], []),
        "filled-order": ([], [f.order("AAPL", "10", "149", status=OrderStatus.FILLED)]),
        "exit-leg": ([], [f.order("AAPL", "10", "160", leg=OrderLeg.TAKE_PROFIT)]),
        "other-symbol": ([f.position("MSFT", "10", "400")], []),
    }[book]
    assert code(limits(f, side, positions=positions, orders=orders)) is expected


@SIDES
def test_same_symbol_allowed(f: Factory, side: Side) -> None:
    positions = [f.position("AAPL", "10", "150")]
    assert (
        limits(f, side, settings={"allow_same_symbol_position": True}, positions=positions) is None
    )


@SIDES
@pytest.mark.parametrize(
    ("held", "pending", "expected"),
    [
        pytest.param(["MSFT"], [], None, id="one-held"),
        pytest.param(["MSFT", "GOOG"], [], R.MAX_OPEN_POSITIONS, id="two-held"),
        pytest.param(["MSFT"], ["GOOG"], R.MAX_OPEN_POSITIONS, id="held-plus-pending"),
    ],
)
def test_max_open_positions(
    f: Factory, side: Side, held: list[str], pending: list[str], expected: R | None
) -> None:
    positions = [f.position(s, "1", "10") for s in held]
    orders = [f.order(s, "1", "10") for s in pending]
    result = limits(f, side, settings={"max_open_positions": 2}, positions=positions, orders=orders)
    assert code(result) is expected


@SIDES
def test_max_open_positions_counts_existing_symbol_once(f: Factory, side: Side) -> None:
    positions = [f.position("AAPL", "1", "150"), f.position("MSFT", "1", "10")]
    settings = {"max_open_positions": 2, "allow_same_symbol_position": True}
    assert limits(f, side, settings=settings, positions=positions) is None


@SIDES
@pytest.mark.parametrize(
    ("book", "expected"),
    [
        # Equity 100,000 at 100% gross; this order is 19,950.00.
        pytest.param([("MSFT", "200", "400.25")], None, id="exactly-at-limit"),
        pytest.param([("MSFT", "200", "400.26")], R.MAX_GROSS_EXPOSURE, id="one-cent-over"),
        pytest.param([("MSFT", "-200", "400.26")], R.MAX_GROSS_EXPOSURE, id="short-counts"),
    ],
)
def test_gross_exposure(f: Factory, side: Side, book: list, expected: R | None) -> None:
    positions = [f.position(*p) for p in book]
    assert code(limits(f, side, positions=positions)) is expected


@SIDES
@pytest.mark.parametrize(
    ("order", "expected"),
    [
        pytest.param(("MSFT", "200", "400.26"), R.MAX_GROSS_EXPOSURE, id="working-limit"),
        pytest.param(("MSFT", "200", None), None, id="unpriced-market-unknown-mark"),
        pytest.param(("MSFT", "400", "400.26", "200"), R.MAX_GROSS_EXPOSURE, id="partly-filled"),
    ],
)
def test_gross_counts_working_orders(
    f: Factory, side: Side, order: tuple, expected: R | None
) -> None:
    symbol, qty, price, *filled = order
    orders = [f.order(symbol, qty, price, filled=filled[0] if filled else "0")]
    assert code(limits(f, side, orders=orders)) is expected


@SIDES
def test_market_order_valued_at_mark(f: Factory, side: Side) -> None:
    positions = [f.position("MSFT", "1", "400.26")]
    orders = [f.order("MSFT", "199", None)]
    assert code(limits(f, side, positions=positions, orders=orders)) is R.MAX_GROSS_EXPOSURE


@SIDES
@pytest.mark.parametrize(
    ("held_qty", "expected"),
    [
        # 25% of 100,000 = 25,000; this order 19,950 leaves 5,050 = 33.66 shares at 150.
        pytest.param("33.66", None, id="at-limit"),
        pytest.param("33.67", R.MAX_SYMBOL_EXPOSURE, id="over"),
    ],
)
def test_symbol_exposure(f: Factory, side: Side, held_qty: str, expected: R | None) -> None:
    positions = [f.position("AAPL", held_qty, "150")]
    settings = {"allow_same_symbol_position": True}
    result = limits(f, side, settings=settings, positions=positions)
    assert code(result) is expected
    if result is not None:
        assert result.details["symbol"] == "AAPL"
        assert result.details["limit"] == "25000.00"


@SIDES
@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        pytest.param("AAPL:tech,MSFT:tech", R.MAX_GROUP_EXPOSURE, id="same-group"),
        pytest.param("AAPL:tech,MSFT:software", None, id="different-group"),
        pytest.param("MSFT:tech", None, id="ungrouped-symbol"),
    ],
)
def test_group_exposure(f: Factory, side: Side, groups: str, expected: R | None) -> None:
    positions = [f.position("MSFT", "76", "400")]  # 30,400 + 19,950 > 50,000
    result = limits(f, side, settings={"symbol_groups": groups}, positions=positions)
    assert code(result) is expected
    if result is not None:
        assert result.details["group"] == "tech"


NY_WINDOW = {"trading_window": "09:30-16:00"}


@SIDES
@pytest.mark.parametrize(
    ("now", "settings", "expected"),
    [
        pytest.param(datetime(2026, 2, 6, 14, 30, tzinfo=UTC), NY_WINDOW, None, id="open"),
        pytest.param(
            datetime(2026, 2, 6, 14, 29, tzinfo=UTC), NY_WINDOW, R.OUTSIDE_TRADING_WINDOW, id="pre"
        ),
        pytest.param(
            datetime(2026, 2, 6, 21, 0, tzinfo=UTC), NY_WINDOW, R.OUTSIDE_TRADING_WINDOW, id="close"
        ),
        pytest.param(
            datetime(2026, 2, 7, 15, 0, tzinfo=UTC), NY_WINDOW, R.OUTSIDE_TRADING_WINDOW, id="sat"
        ),
        pytest.param(
            datetime(2026, 2, 7, 15, 0, tzinfo=UTC),
            {**NY_WINDOW, "trading_weekdays_only": False},
            None,
            id="sat-allowed",
        ),
        pytest.param(
            datetime(2026, 7, 6, 13, 30, tzinfo=UTC), NY_WINDOW, None, id="summer-time-open"
        ),
        pytest.param(
            datetime(2026, 2, 6, 23, 0, tzinfo=UTC),
            {"trading_window": "18:00-02:00", "trading_weekdays_only": False},
            None,
            id="wraps-midnight",
        ),
        pytest.param(datetime(2026, 2, 6, 23, 0, tzinfo=UTC), {}, None, id="no-window-configured"),
    ],
)
def test_trading_window(
    f: Factory, side: Side, now: datetime, settings: dict, expected: R | None
) -> None:
    assert code(limits(f, side, settings=settings, now=now)) is expected
