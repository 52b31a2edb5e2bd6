"""The contract over the in-process front door (SimOrderService)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from brokers.port import OrderService
from brokers.sim.core import Exchange
from brokers.sim.reasons import Reason
from brokers.sim.service import SimOrderService
from tests.contract.contract import OrderServiceContract


class TestSimOrderService(OrderServiceContract):
    # no wire: the reason is the code
    venue_codes: ClassVar[dict[Reason, str]] = {reason: reason.value for reason in Reason}

    @pytest.fixture
    async def service(self, exchange: Exchange) -> AsyncIterator[OrderService]:
        svc = SimOrderService(exchange)
        await svc.connect()
        yield svc
        await svc.close()


async def test_sim_service_satisfies_the_port(exchange: Exchange) -> None:
    assert isinstance(SimOrderService(exchange), OrderService)
