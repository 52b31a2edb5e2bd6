"""The OrderService contract over the real ib_async client talking to the simulator's TWS door."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import ib_async
import pytest

from brokers.exceptions import UnknownOrder
from brokers.ib import IbOrderService
from brokers.port import OrderService
from brokers.sim.core import Exchange
from brokers.sim.reasons import Reason
from brokers.sim.tws import run_tws_server
from brokers.sim.tws.reasons import IB_CODES
from schemas.events import OrderStatus, OrderType
from tests.contract.contract import Market, OrderServiceContract, order_request
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

    async def test_wire_messages_is_what_goes_on_the_wire(self, service: OrderService,
                                                          market: Market) -> None:
        """What the adapter says a call will send (brokers.pacing charges it) against the
        TWS API messages the call sent, counted at ib_async's Client.send: never fewer
        charged than sent, and reads between full reads charged (and sending) nothing."""
        assert isinstance(service, IbOrderService)
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(order_request("w-1"))
        client = service.ib.client
        sent: list[str] = []
        send = client.send

        def counted(*fields: Any, **kwargs: Any) -> Any:
            sent.append(str(fields[0]) if fields else "?")
            return send(*fields, **kwargs)

        client.send = counted
        since = datetime.now(UTC) - timedelta(minutes=5)
        calls: list[tuple[str, tuple[Any, ...], Callable[[], Awaitable[Any]]]] = [
            ("orders_and_open_orders", (), lambda: service.orders_and_open_orders(since)),
            ("orders_and_open_orders", (), lambda: service.orders_and_open_orders(since)),
            ("orders_since", (), lambda: service.orders_since(since)),
            ("open_orders", (), service.open_orders),
            ("fills_since", (), lambda: service.fills_since(since)),
            ("fills_since", (), lambda: service.fills_since(since)),
            ("status", ("w-1",), lambda: service.status("w-1")),
            ("status", ("nobody",), lambda: _unknown(service.status("nobody"))),
        ]
        charged = []
        for operation, args, call in calls:
            told = service.wire_messages(operation, *args)
            before = len(sent)
            await call()
            charged.append((operation, told, len(sent) - before))
        print(f"IB wire_messages (operation, charged, sent): {charged}")
        assert all(told is not None and told >= went for _, told, went in charged)
        assert [told for _, told, _ in charged] == [2, 0, 0, 0, 1, 0, 0, 3]


    async def test_a_report_is_built_again_only_when_its_order_changed(
            self, service: OrderService, market: Market) -> None:
        """The adapter reuses an order's report while nothing it is built from changed, and
        builds it again when TWS pushes a change (here a cancel)."""
        assert isinstance(service, IbOrderService)
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(order_request("r-1", order_type=OrderType.LMT,
                                          limit_price=Decimal("140.00")))
        first = [r for r in await service.open_orders() if r.client_order_id == "r-1"]
        again = [r for r in await service.open_orders() if r.client_order_id == "r-1"]
        assert len(first) == 1
        assert again[0] is first[0]
        await service.cancel("r-1")
        assert (await service.status("r-1")).status is OrderStatus.CANCELLED
        assert "r-1" not in {r.client_order_id for r in await service.open_orders()}


async def _unknown(call: Awaitable[Any]) -> None:
    with pytest.raises(UnknownOrder):
        await call


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
