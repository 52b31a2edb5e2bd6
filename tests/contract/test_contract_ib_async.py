"""The OrderService contract over the real ib_async client talking to the simulator's TWS door."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import ib_async
import pytest

from brokers.ib import IbOrderService
from brokers.port import OrderService
from brokers.sim.core import Exchange
from brokers.sim.reasons import Reason
from brokers.sim.tws import run_tws_server
from brokers.sim.tws.reasons import IB_CODES
from tests.contract.contract import OrderServiceContract
from tests.contract.stall import FreezableProxy, StallContract, Stalled

STALL_TIMEOUT = 1.0


class TestIbAsyncOrderService(OrderServiceContract):
    venue_codes: ClassVar[dict[Reason, str]] = {
        reason: str(code) for reason, (code, _) in IB_CODES.items()
    }

    @pytest.fixture
    async def service(self, exchange: Exchange) -> AsyncIterator[OrderService]:
        server = await run_tws_server(exchange, port=0)
        svc = IbOrderService("127.0.0.1", server.port, client_id=11, ib_module=ib_async)
        await svc.connect()
        yield svc
        await svc.close()
        await server.close()


class TestIbAsyncPushedState(TestIbAsyncOrderService):
    """The same contract with the production setting: completed orders and executions are
    asked of TWS at most every 5 s (IB_FULL_READ_SECONDS); between, the library's state as
    TWS pushes it answers."""

    @pytest.fixture
    async def service(self, exchange: Exchange) -> AsyncIterator[OrderService]:
        server = await run_tws_server(exchange, port=0)
        svc = IbOrderService("127.0.0.1", server.port, client_id=13, ib_module=ib_async,
                             full_read_seconds=5.0)
        await svc.connect()
        yield svc
        await svc.close()
        await server.close()


class TestIbAsyncStall(StallContract):
    """The same adapter with a freezable proxy between ib_async and the TWS door."""

    @pytest.fixture
    async def stalled(self, exchange: Exchange) -> AsyncIterator[Stalled]:
        server = await run_tws_server(exchange, port=0)
        proxy = FreezableProxy("127.0.0.1", server.port)
        port = await proxy.start()
        svc = IbOrderService(
            "127.0.0.1", port, client_id=12, ib_module=ib_async, timeout=STALL_TIMEOUT
        )
        await svc.connect()
        yield Stalled(svc, proxy, STALL_TIMEOUT)
        proxy.thaw()
        await svc.close()
        await proxy.close()
        await server.close()
