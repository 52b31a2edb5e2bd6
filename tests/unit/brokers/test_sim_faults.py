from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from brokers.exceptions import OrderRejected
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.faults import FaultConfig, FaultInjector, OutageWindow
from brokers.sim.reasons import Reason
from schemas.events import OrderType
from tests.unit.brokers.conftest import ACCOUNT, START, FakeClock, req


def test_defaults_inject_nothing() -> None:
    faults = FaultInjector()
    assert not faults.should_drop()
    assert not faults.transient_error()
    assert not faults.in_outage()
    assert faults.latency_seconds() == 0


def test_rates_are_seeded_and_reproducible() -> None:
    a = FaultInjector(FaultConfig(seed=3, transient_error_rate=0.3))
    b = FaultInjector(FaultConfig(seed=3, transient_error_rate=0.3))
    rolls_a = [a.transient_error() for _ in range(200)]
    rolls_b = [b.transient_error() for _ in range(200)]
    assert rolls_a == rolls_b
    assert 30 < sum(rolls_a) < 90


def test_runtime_switches(clock: FakeClock) -> None:
    faults = FaultInjector(clock=clock)
    faults.set(drop_probability=1.0, latency_ms=250)
    assert faults.should_drop()
    assert faults.latency_seconds() == 0.25
    faults.start_outage(30)
    assert faults.in_outage()
    clock.tick(31)
    assert not faults.in_outage()
    faults.start_outage(5)
    faults.end_outage()
    assert not faults.in_outage()
    with pytest.raises(ValidationError):
        faults.set(transient_error_rate=2.0)


def test_outage_windows() -> None:
    window = OutageWindow(start=START, end=START + timedelta(minutes=5))
    faults = FaultInjector(FaultConfig(outage_windows=(window,)))
    assert faults.in_outage(START + timedelta(minutes=1))
    assert not faults.in_outage(START + timedelta(minutes=5))
    with pytest.raises(ValidationError):
        OutageWindow(start=START, end=START)


def test_rejected_symbols_accept_a_comma_list(clock: FakeClock) -> None:
    config = SimConfig(faults=FaultConfig(rejected_symbols="aapl, MSFT"))
    exchange = Exchange(config, clock=clock)
    with pytest.raises(OrderRejected) as caught:
        exchange.place(ACCOUNT, req("x"))
    assert caught.value.reason is Reason.SYMBOL_NOT_ALLOWED
    exchange.faults.set(rejected_symbols=[])
    exchange.place(ACCOUNT, req("y"))


def test_tick_enforcement_can_be_switched_off(exchange: Exchange) -> None:
    exchange.faults.set(enforce_tick=False)
    (report,) = exchange.place(ACCOUNT, req("t", order_type=OrderType.LMT, limit_price="140.005"))
    assert report.limit_price == Decimal("140.005")
