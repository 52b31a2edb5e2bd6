"""A venue that stops answering without hanging up, and what a service must do about it.

`FreezableProxy` relays TCP between a client library and a front door (the simulator's TWS
door); frozen, it relays nothing in either direction but keeps every socket open, as a hung
gateway or a black-holed network path does. Held bytes move on, in order, after `thaw()`:
a request sent during the freeze reaches the venue late, as it would in life.

`StallContract`: with the path frozen every call raises TransientBrokerError within a bound
instead of hanging; after the thaw calls work again and placement stays idempotent. Subclass
it with a `stalled` fixture (a `Stalled`: a connected service whose traffic runs through a
proxy, and that service's per-call timeout) beside the `exchange` fixture of conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from brokers.bounded import BoundedVenue
from brokers.exceptions import (
    DuplicateClientOrderId,
    TransientBrokerError,
    UnknownOrder,
    VenueTimeout,
)
from brokers.port import OrderService
from brokers.sim.core import Exchange
from schemas.events import OrderStatus, OrderType
from tests.contract.contract import eventually, order_request

RECOVERY_SECONDS = 15.0


class FreezableProxy:
    """TCP relay to (host, port) that can be frozen and thawed while connections stay up."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.lose_placements = False  # drop placeOrder requests on the way to the venue
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        """Listen on a free local port; return it."""
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        outbound = _Requests(self)
        for source, sink, edit in ((reader, up_writer, outbound.feed), (up_reader, writer, None)):
            task = asyncio.ensure_future(self._pump(source, sink, edit))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        edit: Callable[[bytes], bytes] | None,
    ) -> None:
        """Copy until EOF; while frozen, hold what was read (and the EOF) until the thaw."""
        try:
            while data := await source.read(65536):
                await self.flowing.wait()
                sink.write(edit(data) if edit else data)
                await sink.drain()
            await self.flowing.wait()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()
            self._writers.discard(sink)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)


class _Requests:
    """The client-to-venue byte stream cut into TWS API frames (after the `API\\0` prefix and
    4-byte big-endian lengths), so that placeOrder frames (message id 3) can be lost on the
    way while the proxy's `lose_placements` is set."""

    def __init__(self, proxy: FreezableProxy) -> None:
        self.proxy = proxy
        self.buffer = b""
        self.prefix_seen = False

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = b""
        if not self.prefix_seen:
            if len(self.buffer) < len(API_PREFIX):
                return out
            out, self.buffer = self.buffer[: len(API_PREFIX)], self.buffer[len(API_PREFIX) :]
            self.prefix_seen = True
        while len(self.buffer) >= FRAME_HEADER:
            size = int.from_bytes(self.buffer[:FRAME_HEADER], "big")
            if len(self.buffer) < FRAME_HEADER + size:
                break
            frame = self.buffer[: FRAME_HEADER + size]
            self.buffer = self.buffer[FRAME_HEADER + size :]
            msg_id = frame[FRAME_HEADER:].split(b"\0", 1)[0]
            if not (self.proxy.lose_placements and msg_id == PLACE_ORDER):
                out += frame
        return out


API_PREFIX = b"API\0"
FRAME_HEADER = 4
PLACE_ORDER = b"3"


@dataclass
class Stalled:
    service: OrderService
    proxy: FreezableProxy
    timeout: float  # the service's own per-call deadline

    @property
    def bound(self) -> float:
        """What any one call may take while frozen: a placement waits for its answer, then
        for one look-up; everything else for one deadline. Generous for a loaded machine."""
        return 2 * self.timeout + 3.0


def _calls(service: OrderService, since: datetime) -> dict[str, Callable[[], Awaitable[Any]]]:
    resting = {"order_type": OrderType.LMT, "limit_price": Decimal("140.00")}
    return {
        "open_orders": service.open_orders,
        "status": lambda: service.status("c-stall-rest"),
        "fills_since": lambda: service.fills_since(since),
        "orders_since": lambda: service.orders_since(since),
        "account": service.account,
        "positions": service.positions,
        "cancel": lambda: service.cancel("c-stall-rest"),
        "place": lambda: service.place(order_request("c-stall-new", **resting)),
    }


async def _timed_failure(
    name: str, call: Callable[[], Awaitable[Any]], bound: float, *, may_answer: bool = False
) -> None:
    """Run one call against the frozen venue: it must raise TransientBrokerError in time
    (or, with `may_answer`, answer from what the live session already knows)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(bound):
            outcome = await call()
    except TransientBrokerError as exc:
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"  frozen {name}: {type(exc).__name__}({exc.code}) after {elapsed_ms:.0f} ms")
        return
    if not may_answer:
        raise AssertionError(f"{name} answered {outcome!r} while the venue was frozen")
    print(f"  frozen {name}: answered from the session's own view")


class StallContract:
    """A venue that stops answering: bounded failures, then recovery."""

    async def _prepare(self, stalled: Stalled, exchange: Exchange) -> None:
        exchange.set_price("AAPL", Decimal("150.00"))
        service = stalled.service
        await service.place(
            order_request("c-stall-rest", order_type=OrderType.LMT, limit_price=Decimal("140.00"))
        )
        await eventually(
            lambda: service.status("c-stall-rest"),
            lambda r: r.status in (OrderStatus.ACCEPTED, OrderStatus.SUBMITTED),
            what="c-stall-rest resting",
        )

    async def _recovered(self, stalled: Stalled) -> None:
        """After the thaw: a call succeeds again (the first may race the old session's end)."""
        started = time.perf_counter()
        await eventually(
            lambda: _succeeds(stalled.service.account),
            bool,
            within=RECOVERY_SECONDS,
            what="a call to succeed after the thaw",
        )
        print(f"  recovered after the thaw in {(time.perf_counter() - started) * 1000:.0f} ms")

    async def test_each_call_fails_in_time_while_frozen(
        self, stalled: Stalled, exchange: Exchange
    ) -> None:
        await self._prepare(stalled, exchange)
        since = datetime.now(UTC) - timedelta(hours=1)
        stalled.proxy.freeze()
        for name, call in _calls(stalled.service, since).items():
            await _timed_failure(name, call, stalled.bound)
        stalled.proxy.thaw()
        await self._recovered(stalled)
        service = stalled.service
        assert (await service.status("c-stall-rest")).status in (
            OrderStatus.ACCEPTED,
            OrderStatus.SUBMITTED,
        )
        assert "c-stall-rest" in {o.client_order_id for o in await service.open_orders()}
        await service.cancel("c-stall-rest")
        await eventually(
            lambda: service.status("c-stall-rest"),
            lambda r: r.status is OrderStatus.CANCELLED,
            what="c-stall-rest cancelled",
        )
        placed = await service.place(order_request("c-stall-after"))
        assert placed.client_order_id == "c-stall-after"

    async def test_concurrent_calls_fail_in_time_while_frozen(
        self, stalled: Stalled, exchange: Exchange
    ) -> None:
        await self._prepare(stalled, exchange)
        since = datetime.now(UTC) - timedelta(hours=1)
        stalled.proxy.freeze()
        calls = _calls(stalled.service, since)
        started = time.perf_counter()
        # status of an order the live session follows may answer from that session's view
        await asyncio.gather(
            *(
                _timed_failure(name, call, stalled.bound, may_answer=name == "status")
                for name, call in calls.items()
            )
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"  {len(calls)} concurrent calls, venue frozen: all done in {elapsed_ms:.0f} ms")
        stalled.proxy.thaw()
        await self._recovered(stalled)
        # the placement sent during the freeze reaches the venue late; placing the same
        # client order id again must find it, not add a second order
        late = await _count(exchange, exchange.config.default_account_id, "c-stall-new")
        try:
            await stalled.service.place(order_request("c-stall-new"))
            outcome = "placed"
        except DuplicateClientOrderId:
            outcome = "DuplicateClientOrderId"
        print(f"  frozen placement arrived late: {bool(late)}; placing it again: {outcome}")
        account = exchange.config.default_account_id
        await eventually(
            lambda: _count(exchange, account, "c-stall-new"), lambda n: n >= 1, what="one order"
        )
        assert await _count(exchange, account, "c-stall-new") == 1

    async def test_lost_placement_is_looked_up_once_then_placeable(
        self, stalled: Stalled, exchange: Exchange
    ) -> None:
        exchange.set_price("AAPL", Decimal("150.00"))
        service, account = stalled.service, exchange.config.default_account_id
        request = order_request("c-lost", order_type=OrderType.LMT, limit_price=Decimal("140.00"))
        await service.account()
        stalled.proxy.lose_placements = True
        started = time.perf_counter()
        with pytest.raises(TransientBrokerError) as caught:
            async with asyncio.timeout(stalled.bound):
                await service.place(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"  lost placement: {caught.value.code} after {elapsed_ms:.0f} ms: {caught.value}")
        assert caught.value.code == "timeout"
        stalled.proxy.lose_placements = False
        assert await _count(exchange, account, "c-lost") == 0
        # the session is healthy: nothing else waits, and the lost order is nowhere
        assert "c-lost" not in {o.client_order_id for o in await service.open_orders()}
        with pytest.raises(UnknownOrder):
            await service.status("c-lost")
        placed = await service.place(request)
        assert placed.client_order_id == "c-lost"
        assert await _count(exchange, account, "c-lost") == 1

    async def test_placement_cut_short_then_answered_late_is_not_doubled(
        self, stalled: Stalled, exchange: Exchange
    ) -> None:
        exchange.set_price("AAPL", Decimal("150.00"))
        service, account = stalled.service, exchange.config.default_account_id
        request = order_request("c-cut", order_type=OrderType.LMT, limit_price=Decimal("140.00"))
        await self._prepare(stalled, exchange)  # AAPL qualified: place() goes straight out
        # an outer deadline shorter than the adapter's own cancels place() mid-wait
        hasty = BoundedVenue(service, stalled.timeout / 4)
        stalled.proxy.freeze()
        with pytest.raises(VenueTimeout):
            await hasty.place(request)
        stalled.proxy.thaw()  # the placement now reaches the venue, late
        await self._recovered(stalled)
        with pytest.raises(DuplicateClientOrderId):
            await service.place(request)
        assert await _count(exchange, account, "c-cut") == 1

    async def test_placement_cut_short_and_lost_can_be_placed_again(
        self, stalled: Stalled, exchange: Exchange
    ) -> None:
        exchange.set_price("AAPL", Decimal("150.00"))
        service, account = stalled.service, exchange.config.default_account_id
        request = order_request("c-cut2", order_type=OrderType.LMT, limit_price=Decimal("140.00"))
        await self._prepare(stalled, exchange)  # AAPL qualified: place() goes straight out
        hasty = BoundedVenue(service, stalled.timeout / 4)
        stalled.proxy.lose_placements = True
        with pytest.raises(VenueTimeout):
            await hasty.place(request)
        stalled.proxy.lose_placements = False
        with pytest.raises(UnknownOrder):
            await service.status("c-cut2")
        placed = await service.place(request)
        assert placed.client_order_id == "c-cut2"
        assert await _count(exchange, account, "c-cut2") == 1


async def _succeeds(call: Callable[[], Awaitable[Any]]) -> bool:
    try:
        await call()
    except TransientBrokerError:
        return False
    return True


async def _count(exchange: Exchange, account: str, client_order_id: str) -> int:
    return sum(1 for o in exchange.orders(account) if o.client_order_id == client_order_id)
