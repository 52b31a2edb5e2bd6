"""FX sizing: the per-unit loss of a pair quoted in another currency is converted with the
venue's own factor (Instrument.home_conversion), units round to the pair's precision and stay
within its minimum and maximum. Figures are printed: `pytest -s` shows them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.decisions import Instrument, ReasonCode, Refusal, Sizing, size_position
from agents.decisions.instruments import AssetClass
from schemas.events import Side, SizingBound
from tests.unit.decisions.decisions_factory import Factory

B = SizingBound
JPY_FACTOR = Decimal("0.0066666667")  # OANDA's homeConversions accountLoss for JPY at 150.000


def pair(tick: str, factor: Decimal = Decimal(1), **over: str) -> Instrument:
    fields = {k: Decimal(v) for k, v in over.items()}
    return Instrument(tick_size=Decimal(tick), asset_class=AssetClass.FX,
                      home_conversion=factor, **fields)  # fmt: skip


CASES = [
    # symbol, side, entry, stop, instrument, settings, account, units, bound, risk, value
    pytest.param("EUR_USD", Side.BUY, "1.08500", "1.08000", pair("0.00001"),
                 {"max_position_pct": "1"}, {"buying_power": "5000000"}, "92165",
                 B.POSITION_PCT, "460.82500", "99999.02500", id="eur-usd-pct"),
    pytest.param("EUR_USD", Side.BUY, "1.08500", "1.08000", pair("0.00001"),
                 {"max_position_pct": "1", "risk_per_trade": "0.005"},
                 {"buying_power": "5000000"}, "92165", B.POSITION_PCT, None, None,
                 id="eur-usd-pct-1x"),
    pytest.param("USD_JPY", Side.BUY, "150.000", "149.500", pair("0.001", JPY_FACTOR),
                 {"max_position_pct": "1"}, {"buying_power": "5000000"}, "99999",
                 B.POSITION_PCT, None, None, id="usd-jpy-converted"),
    pytest.param("USD_JPY", Side.SELL, "150.000", "151.000", pair("0.001", JPY_FACTOR),
                 {"max_position_pct": "1", "risk_per_trade": "0.001"},
                 {"buying_power": "5000000"}, "14999", B.RISK, None, None, id="usd-jpy-risk"),
    pytest.param("EUR_USD", Side.BUY, "1.08500", "1.08000", pair("0.00001", max_quantity="5000"),
                 {}, {"buying_power": "5000000"}, "5000", B.MAX_POSITION_SIZE, None, None,
                 id="maximum-units"),
]


@pytest.mark.parametrize(
    ("symbol", "side", "entry", "stop", "instrument", "settings", "account", "units", "bound",
     "risk", "value"), CASES)  # fmt: skip
def test_fx_units(f: Factory, symbol: str, side: Side, entry: str, stop: str,
                  instrument: Instrument, settings: dict, account: dict, units: str,
                  bound: SizingBound, risk: str | None, value: str | None) -> None:  # fmt: skip
    tp = Decimal(entry) + (Decimal(entry) - Decimal(stop)) * 2
    signal = f.signal(side, symbol=symbol, entry_price=Decimal(entry), stop_loss=Decimal(stop),
                      take_profit=tp)  # fmt: skip
    result = size_position(signal, f.account(**account), instrument, f.settings(**settings))
    assert isinstance(result, Sizing), result
    fig = result.figures
    print(f"[fx sizing] {symbol} {side} entry {entry} stop {stop} factor "
          f"{instrument.home_conversion}: units {result.quantity} bound {fig.bound_by} "
          f"risk {fig.risk_amount} USD value {fig.position_value} USD "
          f"(uncapped {fig.uncapped_quantity})")  # fmt: skip
    assert result.quantity == Decimal(units)
    assert result.quantity == result.quantity.to_integral_value()  # tradeUnitsPrecision 0
    assert fig.bound_by == bound
    loss = abs(Decimal(entry) - Decimal(stop)) * instrument.home_conversion
    assert fig.risk_amount == result.quantity * loss
    assert fig.position_value == result.quantity * Decimal(entry) * instrument.home_conversion
    if risk is not None:
        assert fig.risk_amount == Decimal(risk)
    if value is not None:
        assert fig.position_value == Decimal(value)


def test_risk_budget_in_account_currency(f: Factory) -> None:
    """USD_JPY: 1% of 100,000 USD over a 0.500 JPY stop at 1/150 USD per JPY = 299,999 units
    (the unconverted JPY distance would size 2,000 units: 150 times too small)."""
    signal = f.signal(Side.BUY, symbol="USD_JPY", entry_price=Decimal("150.000"),
                      stop_loss=Decimal("149.500"), take_profit=Decimal("151.000"))  # fmt: skip
    result = size_position(signal, f.account(buying_power="5000000"),
                           pair("0.001", JPY_FACTOR), f.settings(max_position_pct="1"))  # fmt: skip
    assert isinstance(result, Sizing)
    assert result.figures.uncapped_quantity == Decimal(299999)


def test_below_the_instruments_minimum_is_refused(f: Factory) -> None:
    signal = f.signal(Side.BUY, symbol="EUR_USD", entry_price=Decimal("1.08500"),
                      stop_loss=Decimal("1.08000"), take_profit=Decimal("1.09500"))  # fmt: skip
    instrument = pair("0.00001", min_quantity="1000000")
    result = size_position(signal, f.account(), instrument, f.settings())
    assert isinstance(result, Refusal)
    assert result.code is ReasonCode.POSITION_TOO_SMALL


def test_equities_are_unchanged(f: Factory) -> None:
    result = size_position(f.signal(Side.BUY), f.account(), Instrument(), f.settings())
    assert isinstance(result, Sizing)
    assert result.quantity == Decimal(133)
    assert result.figures.risk_amount == Decimal("665.00")
    assert result.figures.position_value == Decimal("19950.00")
