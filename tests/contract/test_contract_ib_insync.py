"""The OrderService contract over the real ib_insync client talking to the simulator's TWS door."""

from __future__ import annotations

from collections.abc import AsyncIterator

import ib_insync
import pytest

from brokers.ib import IbOrderService
from brokers.port import OrderService
from brokers.sim.core import Exchange
from brokers.sim.tws import run_tws_server
from tests.contract.contract import OrderServiceContract


class TestIbInsyncOrderService(OrderServiceContract):
    @pytest.fixture
    async def service(self, exchange: Exchange) -> AsyncIterator[OrderService]:
        server = await run_tws_server(exchange, port=0)
        svc = IbOrderService("127.0.0.1", server.port, client_id=11, ib_module=ib_insync)
        await svc.connect()
        yield svc
        await svc.close()
        await server.close()
