"""IB shortability (generic tick 236) read by brokers/ib/shortable.py, over a fake IB client:
tick 46 mapped to the port's flag, the subscription always cancelled, no answer in time = None."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from eventkit import Event

from brokers.ib.shortable import (
    TICKER_KEY,
    ShortableReading,
    read_shortable,
    shortable_flag,
)


@dataclass
class Tick:
    tickType: int
    price: float
    size: float


@dataclass(eq=False)  # hashed by identity, as the library's tickers are
class FakeTicker:
    ticks: list[Tick] = field(default_factory=list)
    updateEvent: Event = field(default_factory=lambda: Event("updateEvent"))


class FakeIB:
    """What read_shortable touches of ib_async.IB: client, wrapper, error/disconnect events.
    `answer(req_id)` is what the 'venue' sends after the request."""

    def __init__(self, ticks: list[Tick] | None = None, error: int | None = None) -> None:
        self.connected = True
        self.next_id = 100
        self.sent: list[tuple[int, str, bool]] = []
        self.cancelled: list[int] = []
        self.ticker = FakeTicker()
        self.reply_ticks = ticks or []
        self.reply_error = error
        self.errorEvent = Event("errorEvent")
        self.disconnectedEvent = Event("disconnectedEvent")
        self.client = self
        self.wrapper = self
        self.ticker2ReqId: dict[Any, dict[FakeTicker, int]] = defaultdict(dict)

    # client
    def getReqId(self) -> int:
        if not self.connected:
            raise ConnectionError("Not connected")
        self.next_id += 1
        return self.next_id

    def reqMktData(self, req_id: int, contract: Any, ticks: str, snapshot: bool,
                   regulatory: bool, options: list[Any]) -> None:
        self.sent.append((req_id, ticks, snapshot))
        asyncio.get_running_loop().call_soon(self._answer, req_id)

    def cancelMktData(self, req_id: int) -> None:
        self.cancelled.append(req_id)

    def isConnected(self) -> bool:
        return self.connected

    # wrapper
    def startTicker(self, req_id: int, contract: Any, key: str) -> FakeTicker:
        self.ticker2ReqId[key][self.ticker] = req_id
        return self.ticker

    def endTicker(self, ticker: FakeTicker, key: str) -> int:
        return self.ticker2ReqId[key].pop(ticker, 0)

    def _answer(self, req_id: int) -> None:
        if self.reply_error is not None:
            self.errorEvent.emit(req_id, self.reply_error, "no market data permissions", None)
        if self.reply_ticks:
            self.ticker.ticks = list(self.reply_ticks)
            self.ticker.updateEvent.emit(self.ticker)
            self.ticker.ticks = []


# indicator sent as tick 46 (None: no tick 46) -> the port's flag, the reading's level
INDICATORS = {
    "easy to borrow": (3.0, True, "available"),
    "hard to borrow": (2.0, False, "hard to borrow"),
    "not shortable": (1.0, False, "not shortable"),
    "zero, NaN in ib_async": (math.nan, False, "not shortable"),
    "silent venue": (None, None, "unknown"),
}


@pytest.mark.parametrize("name", sorted(INDICATORS))
async def test_tick_46_is_the_shortable_flag(name: str) -> None:
    value, flag, level = INDICATORS[name]
    ticks = [] if value is None else [Tick(46, value, 0.0), Tick(89, math.nan, 5000.0)]
    ib = FakeIB(ticks)
    reading = await read_shortable(ib, object(), limit=0.2)
    print(f"{name}: {reading}")
    assert (reading.shortable, reading.level) == (flag, level)
    if value is not None:
        assert reading.shares == Decimal(5000)
    assert ib.sent == [(101, "236", False)]  # streaming: TWS refuses generic ticks on snapshots
    assert ib.cancelled == [101]
    assert ib.ticker2ReqId[TICKER_KEY] == {}
    assert len(ib.ticker.updateEvent) == len(ib.errorEvent) == len(ib.disconnectedEvent) == 0


async def test_an_error_for_the_request_ends_the_wait() -> None:
    ib = FakeIB(error=354)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reading = await read_shortable(ib, object(), limit=30)
    waited = loop.time() - started
    print(f"error 354 answered after {waited:.3f}s: {reading}")
    assert reading.shortable is None
    assert reading.error == (354, "no market data permissions")
    assert waited < 30
    assert ib.cancelled == [101]


async def test_an_informational_notice_does_not_end_the_wait() -> None:
    ib = FakeIB(ticks=[Tick(46, 3.0, 0.0)], error=2104)
    reading = await read_shortable(ib, object(), limit=0.5)
    assert reading == ShortableReading(3.0, None, None)


async def test_not_connected_is_an_unanswered_read() -> None:
    ib = FakeIB()
    ib.connected = False
    reading = await read_shortable(ib, object(), limit=0.1)
    assert reading.shortable is None
    assert reading.error is not None
    assert ib.sent == []


async def test_a_concurrent_read_keeps_its_own_bookkeeping() -> None:
    ib = FakeIB([Tick(46, 3.0, 0.0)])
    first, second = await asyncio.gather(read_shortable(ib, object(), 0.2),
                                         read_shortable(ib, object(), 0.2))
    assert first.shortable is second.shortable is True
    assert sorted(ib.cancelled) == [101, 102]


def test_flag_thresholds() -> None:
    assert [shortable_flag(v) for v in (None, 0.0, 1.5, 2.0, 2.5, 2.51, 3.0)] == [
        None, False, False, False, False, True, True]
