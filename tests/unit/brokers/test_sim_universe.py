from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.exceptions import OrderRejected
from brokers.sim.reasons import Reason
from brokers.sim.universe import Universe, con_id_for, min_tick, on_tick, round_to_tick

SP100_SAMPLE = ["AAPL", "MSFT", "AMZN", "NVDA", "GOOGL", "META", "JPM", "XOM", "BRK.B", "KO"]


def test_universe_holds_the_sp100() -> None:
    universe = Universe.load()
    assert len(universe) >= 100
    for symbol in SP100_SAMPLE:
        assert symbol in universe


def test_aapl_reference_is_the_seed_vector() -> None:
    aapl = Universe.load().get("AAPL")
    assert aapl.reference_price == Decimal("150.00")
    assert aapl.primary_exchange == "NASDAQ"
    assert aapl.exchange == "SMART"
    assert aapl.currency == "USD"
    assert aapl.min_tick == Decimal("0.01")
    assert aapl.lot_size == 1


def test_every_instrument_is_well_formed() -> None:
    universe = Universe.load()
    con_ids = set()
    for inst in universe.all():
        assert inst.primary_exchange in {"NASDAQ", "NYSE"}
        assert inst.reference_price > 0
        assert on_tick(inst.reference_price)
        assert inst.sector
        con_ids.add(inst.con_id)
    assert len(con_ids) == len(universe)


def test_con_ids_are_stable() -> None:
    assert con_id_for("AAPL") == con_id_for("AAPL")
    assert Universe.load().get("AAPL").con_id == con_id_for("AAPL")
    assert con_id_for("AAPL") != con_id_for("MSFT")


def test_lookup_is_case_insensitive() -> None:
    assert Universe.load().get("aapl").symbol == "AAPL"


def test_unknown_symbol_is_refused() -> None:
    with pytest.raises(OrderRejected) as caught:
        Universe.load().get("ZZZZ")
    assert caught.value.reason is Reason.UNKNOWN_INSTRUMENT
    assert "unknown instrument ZZZZ" in str(caught.value)


@pytest.mark.parametrize(
    ("price", "tick"),
    [("1.00", "0.01"), ("150", "0.01"), ("0.9999", "0.0001"), ("0.5", "0.0001")],
)
def test_min_tick_follows_rule_612(price: str, tick: str) -> None:
    assert min_tick(Decimal(price)) == Decimal(tick)


def test_on_tick_and_rounding() -> None:
    assert on_tick(Decimal("150.01"))
    assert not on_tick(Decimal("150.005"))
    assert on_tick(Decimal("0.1234"))
    assert not on_tick(Decimal("0.12345"))
    assert round_to_tick(Decimal("150.006")) == Decimal("150.01")
