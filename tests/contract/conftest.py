"""Fixtures any front door's contract run can reuse: a fresh simulated exchange and its driver."""

from __future__ import annotations

import pytest

from brokers.sim.core import Exchange, SimConfig
from tests.contract.contract import ExchangeMarket

CONTRACT_SEED = 7


@pytest.fixture
def sim_config() -> SimConfig:
    """Default venue rules with a fixed seed; override in a subclass to change them."""
    return SimConfig(seed=CONTRACT_SEED)


@pytest.fixture
def exchange(sim_config: SimConfig) -> Exchange:
    """A fresh in-memory exchange whose default account holds 100,000 USD."""
    return Exchange(sim_config)


@pytest.fixture
def market(exchange: Exchange) -> ExchangeMarket:
    return ExchangeMarket(exchange)
