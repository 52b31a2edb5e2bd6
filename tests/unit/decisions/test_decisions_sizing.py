"""Sizing: which cap binds, tick and lot rounding, live ramp; plus instrument helpers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.decisions import (
    Instrument,
    InstrumentBook,
    ReasonCode,
    Refusal,
    Sizing,
    round_price_to_tick,
    round_qty_down,
    size_position,
)
from agents.decisions.instruments import PriceRounding, exact_ratio
from brokers.port import AccountKind
from schemas.events import OrderType, Side, SizingBound
from tests.unit.decisions.decisions_factory import Factory

BUY, SELL = Side.BUY, Side.SELL
B = SizingBound
LIVE = {"account_id": "U7654321", "kind": AccountKind.LIVE}


def sized(result: Sizing | Refusal) -> Sizing:
    assert isinstance(result, Sizing), result
    return result


BOUNDS = [
    pytest.param({"max_position_pct": "1"}, {"buying_power": "1e6"}, "200", B.RISK, id="risk"),
    pytest.param({"max_position_pct": "0.3"}, {}, "200", B.RISK, id="tie-risk-wins"),
    pytest.param({}, {}, "133", B.POSITION_PCT, id="position-pct"),
    pytest.param({"max_position_size": "50"}, {}, "50", B.MAX_POSITION_SIZE, id="max-size"),
    pytest.param({"max_order_notional": "3000"}, {}, "20", B.MAX_ORDER_NOTIONAL, id="notional"),
    pytest.param({}, {"buying_power": "15000"}, "100", B.BUYING_POWER, id="buying-power"),
    pytest.param(
        {"live_trading_account": "U7654321"}, LIVE, "6", B.LIVE_NOTIONAL_CAP, id="live-cap"
    ),
    pytest.param(
        {"live_trading_account": "U7654321", "live_max_order_notional": "1e6"},
        LIVE,
        "13",
        B.POSITION_PCT,
        id="live-ramp-only",
    ),
]


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize(("settings", "account", "qty", "bound"), BOUNDS)
def test_binding_cap(
    f: Factory, side: Side, settings: dict, account: dict, qty: str, bound: SizingBound
) -> None:
    result = sized(
        size_position(f.signal(side), f.account(**account), Instrument(), f.settings(**settings))
    )
    assert result.quantity == Decimal(qty)
    assert result.figures.bound_by == bound
    assert result.figures.uncapped_quantity == Decimal(200)
    assert result.figures.risk_amount == Decimal(qty) * Decimal(5)
    assert result.figures.position_value == Decimal(qty) * Decimal(150)
    live = account.get("kind") is AccountKind.LIVE
    assert result.figures.scale == (Decimal("0.1") if live else Decimal(1))


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize(
    ("settings", "account"),
    [
        pytest.param({"min_position_size": "150"}, {}, id="below-min"),
        pytest.param({}, {"buying_power": "0"}, id="no-buying-power"),
        pytest.param({}, {"buying_power": "-10"}, id="negative-buying-power"),
        pytest.param({"max_order_notional": "149"}, {}, id="notional-below-one-share"),
    ],
)
def test_position_too_small(f: Factory, side: Side, settings: dict, account: dict) -> None:
    result = size_position(
        f.signal(side), f.account(**account), Instrument(), f.settings(**settings)
    )
    assert isinstance(result, Refusal)
    assert result.code is ReasonCode.POSITION_TOO_SMALL
    assert result.stage == "sizing"
    for key in ("quantity", "min_position_size", "bound_by", "uncapped_quantity", "equity"):
        assert key in result.details


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize("equity", ["0", "-5"])
def test_no_equity(f: Factory, side: Side, equity: str) -> None:
    result = size_position(f.signal(side), f.account(equity=equity), Instrument(), f.settings())
    assert isinstance(result, Refusal)
    assert result.code is ReasonCode.NO_EQUITY


@pytest.mark.parametrize("side", [BUY, SELL])
def test_market_orders_have_no_limit(f: Factory, side: Side) -> None:
    result = sized(
        size_position(f.signal(side), f.account(), Instrument(), f.settings(order_type="MKT"))
    )
    assert result.order_type is OrderType.MKT
    assert result.limit_price is None
    assert result.quantity == Decimal(133)


@pytest.mark.parametrize(
    ("side", "prices", "limit", "stop", "tp"),
    [
        pytest.param(
            BUY,
            {"entry_price": "150.005", "stop_loss": "144.995", "take_profit": "160.005"},
            "150.00",
            "145.00",
            "160.01",
            id="BUY-limit-down-stop-up-tp-up",
        ),
        pytest.param(
            SELL,
            {"entry_price": "150.005", "stop_loss": "155.005", "take_profit": "139.995"},
            "150.01",
            "155.00",
            "139.99",
            id="SELL-limit-up-stop-down-tp-down",
        ),
    ],
)
def test_tick_rounding_never_worse(
    f: Factory, side: Side, prices: dict, limit: str, stop: str, tp: str
) -> None:
    result = sized(size_position(f.signal(side, **prices), f.account(), Instrument(), f.settings()))
    assert result.limit_price == Decimal(limit)
    assert result.stop_loss == Decimal(stop)
    assert result.take_profit == Decimal(tp)
    # Position value is measured at the signal's entry but capped at the worse of entry/limit.
    assert result.figures.position_value <= Decimal(20000)
    assert result.quantity * max(Decimal(limit), Decimal("150.005")) <= Decimal(20000)


@pytest.mark.parametrize("side", [BUY, SELL])
def test_sub_dollar_prices(f: Factory, side: Side) -> None:
    prices = {
        BUY: {"entry_price": "0.5", "stop_loss": "0.45", "take_profit": "0.6"},
        SELL: {"entry_price": "0.5", "stop_loss": "0.55", "take_profit": "0.4"},
    }[side]
    result = sized(size_position(f.signal(side, **prices), f.account(), Instrument(), f.settings()))
    assert result.quantity == Decimal(20000)
    assert result.figures.bound_by == B.RISK
    assert result.limit_price == Decimal("0.5000")


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize(
    ("instrument", "settings", "qty"),
    [
        pytest.param(Instrument(lot_size=Decimal(100)), {}, "100", id="lot-100"),
        pytest.param(
            Instrument(fractional=True), {"min_position_size": "0.0001"}, "133.3333", id="fraction"
        ),
        pytest.param(
            Instrument(lot_size=Decimal(100)),
            {"min_position_size": "101"},
            None,
            id="lot-too-small",
        ),
    ],
)
def test_lot_rounding(
    f: Factory, side: Side, instrument: Instrument, settings: dict, qty: str | None
) -> None:
    result = size_position(f.signal(side), f.account(), instrument, f.settings(**settings))
    if qty is None:
        assert isinstance(result, Refusal)
        assert result.code is ReasonCode.POSITION_TOO_SMALL
    else:
        assert sized(result).quantity == Decimal(qty)


def test_fixed_tick_instrument(f: Factory) -> None:
    instrument = Instrument(tick_size=Decimal("0.05"))
    signal = f.signal(BUY, entry_price="150.04", stop_loss="145.00", take_profit="160.01")
    result = sized(size_position(signal, f.account(), instrument, f.settings()))
    assert result.limit_price == Decimal("150.00")
    assert result.take_profit == Decimal("160.05")


# --- instruments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "direction", "expected"),
    [
        pytest.param("150", BUY, "150.00", id="on-tick"),
        pytest.param("150.005", BUY, "150.00", id="buy-down"),
        pytest.param("150.005", SELL, "150.01", id="sell-up"),
        pytest.param("150.009", PriceRounding.DOWN, "150.00", id="down"),
        pytest.param("150.001", PriceRounding.UP, "150.01", id="up"),
        pytest.param("0.12345", BUY, "0.1234", id="sub-dollar-down"),
        pytest.param("0.12345", SELL, "0.1235", id="sub-dollar-up"),
        pytest.param("0.99995", SELL, "1.00", id="cross-one-up"),
        pytest.param("1.004", BUY, "1.00", id="one-down"),
    ],
)
def test_round_price_to_tick(price: str, direction: Side | PriceRounding, expected: str) -> None:
    result = round_price_to_tick(Decimal(price), direction)
    assert result == Decimal(expected)
    assert str(result) == expected


@pytest.mark.parametrize(
    ("qty", "lot", "expected"),
    [
        ("133.9", "1", "133"),
        ("250", "100", "200"),
        ("99", "100", "0"),
        ("0.123456", "0.0001", "0.1234"),
        ("-5", "1", "0"),
    ],
)
def test_round_qty_down(qty: str, lot: str, expected: str) -> None:
    assert round_qty_down(Decimal(qty), Decimal(lot)) == Decimal(expected)


def test_round_qty_down_needs_positive_lot() -> None:
    with pytest.raises(ValueError, match="lot size must be positive"):
        round_qty_down(Decimal(1), Decimal(0))


def test_instrument_book(f: Factory) -> None:
    settings = f.settings(
        symbol_groups="AAPL:tech,XOM:energy",
        instruments='{"xom": {"lot_size": "10", "group": "oil"}}',
    )
    book = InstrumentBook.from_settings(settings)
    assert book.get("AAPL") == Instrument(symbol="AAPL", group="tech")
    assert book.get("XOM").lot_size == Decimal(10)
    assert book.group_of("XOM") == "oil"
    assert book.group_of("MSFT") is None
    merged = InstrumentBook.coerce({"MSFT": Instrument(group="tech")}, settings)
    assert merged.group_of("MSFT") == "tech"
    assert merged.group_of("AAPL") == "tech"
    assert InstrumentBook.coerce(book, settings) is book


def test_exact_ratio() -> None:
    assert exact_ratio(Decimal("665.00"), Decimal(100000)) == Decimal("0.00665")
    assert exact_ratio(Decimal(2), Decimal(3)) == Decimal("0.6666666667")
