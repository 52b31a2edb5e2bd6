"""The simulator's short-sale switches: SIM_SHORTING_ENABLED (the account) and SIM_NOT_SHORTABLE
(per instrument, `Instrument.shortable`), from the environment to the core's refusal."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from brokers.exceptions import OrderRejected
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.reasons import Reason
from brokers.sim.runner import Simulator, SimulatorSettings
from brokers.sim.universe import Universe, make_instrument
from schemas.events import Side
from tests.unit.brokers.conftest import ACCOUNT, FakeClock, req

STARTED = datetime(2026, 1, 5, 15, tzinfo=UTC)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_SHORTING_ENABLED", "false")
    monkeypatch.setenv("SIM_NOT_SHORTABLE", " gme, AMC ,,")
    settings = SimulatorSettings()
    config = settings.sim_config(STARTED)
    assert (config.shorting_enabled, config.not_shortable) == (False, frozenset({"GME", "AMC"}))


def test_defaults_lend_everything() -> None:
    config = SimulatorSettings().sim_config(STARTED)
    assert config.shorting_enabled
    assert config.not_shortable == frozenset()
    assert all(i.shortable for i in Exchange(config).instruments())


def test_universe_marks_listed_symbols_also_when_added_later() -> None:
    universe = Universe.load(not_shortable=frozenset({"aapl", "ZZZZ"}))
    universe.add(make_instrument("ZZZZ", Decimal(10)))  # as a replay brings a new symbol
    assert not universe.get("AAPL").shortable
    assert not universe.get("ZZZZ").shortable
    assert universe.get("MSFT").shortable


@pytest.mark.parametrize(
    ("config", "symbol", "refused"),
    [
        (SimConfig(), "AAPL", None),
        (SimConfig(not_shortable=frozenset({"AAPL"})), "AAPL", "no shares of AAPL"),
        (SimConfig(not_shortable=frozenset({"AAPL"})), "MSFT", None),
        (SimConfig(shorting_enabled=False), "MSFT", "shorting is disabled"),
    ],
    ids=["lends", "not_shortable", "another_symbol", "shorting_off"],
)
def test_short_sale_refused_with_not_shortable(config: SimConfig, symbol: str,
                                               refused: str | None, clock: FakeClock) -> None:
    exchange = Exchange(config, clock=clock)
    if refused is None:
        exchange.place(ACCOUNT, req("s", symbol=symbol, side=Side.SELL))
        assert exchange.positions(ACCOUNT)[0].quantity == -10
        return
    with pytest.raises(OrderRejected, match=refused) as caught:
        exchange.place(ACCOUNT, req("s", symbol=symbol, side=Side.SELL))
    assert caught.value.reason is Reason.NOT_SHORTABLE


def test_selling_a_long_position_needs_no_borrow(clock: FakeClock) -> None:
    exchange = Exchange(SimConfig(not_shortable=frozenset({"AAPL"})), clock=clock)
    exchange.place(ACCOUNT, req("in", qty=10))
    exchange.place(ACCOUNT, req("out", side=Side.SELL, qty=10))
    assert exchange.positions(ACCOUNT) == []
    with pytest.raises(OrderRejected, match="no shares of AAPL"):  # the flip's short part
        exchange.place(ACCOUNT, req("flip", side=Side.SELL, qty=1))


async def test_describe_names_the_switch(tmp_path: Path) -> None:
    settings = SimulatorSettings(state=tmp_path / "s.sqlite", port=0, admin_port=0,
                                 tick_seconds=0, not_shortable=frozenset({"TSLA", "AMD"}))
    async with Simulator(settings) as sim:
        assert "shorting  not shortable: AMD, TSLA" in sim.describe()
        assert not sim.exchange.instrument("TSLA").shortable
