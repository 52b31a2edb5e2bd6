"""The OrderService contract over alpaca-py (TradingClient + TradingStream) talking HTTP and
websocket to the simulator's Alpaca door, and the stall cases through a freezable proxy that
understands HTTP (so that it can lose POST /v2/orders requests on the way)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import ClassVar

import pytest

from brokers.alpaca.service import AlpacaOrderService
from brokers.alpaca.settings import AlpacaSettings
from brokers.port import OrderService
from brokers.sim.alpaca import DEFAULT_KEY_ID, DEFAULT_SECRET, AlpacaDoor, start_alpaca_door
from brokers.sim.alpaca.codes import ALPACA_CODES
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.reasons import Reason
from tests.contract.conftest import CONTRACT_SEED
from tests.contract.contract import OrderServiceContract
from tests.contract.stall import FreezableProxy, StallContract, Stalled

STALL_TIMEOUT = 1.0


@pytest.fixture
def sim_config() -> SimConfig:
    """Alpaca charges no commission on US equities: the exchange behind its door neither."""
    return SimConfig(
        seed=CONTRACT_SEED, commission_per_share=Decimal(0), commission_min=Decimal(0)
    )


def settings_for(base_url: str, stream_url: str) -> AlpacaSettings:
    return AlpacaSettings(
        api_key_id=DEFAULT_KEY_ID, api_secret_key=DEFAULT_SECRET,  # type: ignore[arg-type]
        base_url=base_url, stream_url=stream_url, paper=True,
    )  # fmt: skip


class TestAlpacaOrderService(OrderServiceContract):
    venue_codes: ClassVar[dict[Reason, str]] = {
        reason: str(code) for reason, (_, code) in ALPACA_CODES.items()
    }

    @pytest.fixture
    async def service(self, exchange: Exchange) -> AsyncIterator[OrderService]:
        door = await start_alpaca_door(exchange, "127.0.0.1", 0)
        svc = AlpacaOrderService(settings_for(door.base_url, door.stream_url), timeout=4.0)
        await svc.connect()
        yield svc
        await svc.close()
        await door.close()


class HttpFreezableProxy(FreezableProxy):
    """FreezableProxy whose `lose_placements` drops POST /v2/orders requests (HTTP/1.1
    requests parsed by their Content-Length; a websocket upgrade passes through raw)."""

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        outbound = _HttpRequests(self)
        for source, sink, edit in ((reader, up_writer, outbound.feed), (up_reader, writer, None)):
            task = asyncio.ensure_future(self._pump(source, sink, edit))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


class _HttpRequests:
    def __init__(self, proxy: FreezableProxy) -> None:
        self.proxy = proxy
        self.buffer = b""
        self.raw = False  # after a websocket upgrade: no more HTTP requests on this socket

    def feed(self, data: bytes) -> bytes:
        if self.raw:
            return data
        self.buffer += data
        out = b""
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[: end + 4]
            size = _content_length(head)
            if len(self.buffer) < end + 4 + size:
                break
            request, self.buffer = self.buffer[: end + 4 + size], self.buffer[end + 4 + size :]
            if not (self.proxy.lose_placements and head.startswith(b"POST /v2/orders ")):
                out += request
            if b"upgrade: websocket" in head.lower():
                self.raw = True
                out, self.buffer = out + self.buffer, b""
                break
        return out


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class TestAlpacaStall(StallContract):
    """The same adapter with a freezable HTTP proxy between alpaca-py and the Alpaca door."""

    @pytest.fixture
    async def stalled(self, exchange: Exchange) -> AsyncIterator[Stalled]:
        door: AlpacaDoor = await start_alpaca_door(exchange, "127.0.0.1", 0)
        proxy = HttpFreezableProxy("127.0.0.1", door.port)
        port = await proxy.start()
        svc = AlpacaOrderService(
            settings_for(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/stream"),
            timeout=STALL_TIMEOUT,
        )
        await svc.connect()
        yield Stalled(svc, proxy, STALL_TIMEOUT)
        proxy.thaw()
        await svc.close()
        await proxy.close()
        await door.close()
