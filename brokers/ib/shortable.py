"""Whether IB lends a stock for a short sale now: market data generic tick 236.

IB does not put shortability in contract details; it publishes it as market data. Asking for
generic tick 236 makes TWS send tick type 46 ("shortable", a tickGeneric: above 2.5 shares are
available to borrow, above 1.5 hard to borrow / a locate is needed, else not shortable) and
tick type 89 ("shortable shares", a tickSize). TWS refuses generic ticks on a snapshot request
(error 321), so the read is a streaming subscription cancelled as soon as tick 46 arrives, or
when the time limit passes unanswered (then the answer is None: the venue did not say).

The read goes below `IB.reqMktData` to the wrapper's ticker bookkeeping under its own key
(as `reqTickersAsync` does for snapshots), so it never replaces or cancels another
subscription of the same contract; ticks are taken from the ticker's update event, which both
ib_async and ib_insync emit (ib_insync has no `Ticker.shortable` field).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import errors

GENERIC_TICKS = "236"
SHORTABLE_TICK = 46  # tickGeneric: the shortability indicator
SHORTABLE_SHARES_TICK = 89  # tickSize: shares available to borrow
EASY_TO_BORROW = 2.5  # indicator above: shares available
HARD_TO_BORROW = 1.5  # indicator above (and not above EASY_TO_BORROW): a locate is needed
WAIT_S = 2.0  # TWS sends tick 46 right after the subscription starts
TICKER_KEY = "shortable"  # the wrapper's ticker2ReqId key for these reads


@dataclass(frozen=True)
class ShortableReading:
    """What IB said about borrowing one stock; `indicator` None = no tick 46 in time."""

    indicator: float | None = None
    shares: Decimal | None = None
    error: tuple[int, str] | None = None

    @property
    def shortable(self) -> bool | None:
        """The port's flag: True only when shares are available (a hard-to-borrow stock is
        not shortable without a locate, as Alpaca's `easy_to_borrow` is read too)."""
        return shortable_flag(self.indicator)

    @property
    def level(self) -> str:
        """'available', 'hard to borrow', 'not shortable' or 'unknown'."""
        if self.indicator is None:
            return "unknown"
        if self.indicator > EASY_TO_BORROW:
            return "available"
        return "hard to borrow" if self.indicator > HARD_TO_BORROW else "not shortable"


def shortable_flag(indicator: float | None) -> bool | None:
    """Tick 46's value as the port's `shortable` (None: IB did not say)."""
    if indicator is None:
        return None
    return indicator > EASY_TO_BORROW


def indicator_of(value: float) -> float:
    """ib_async turns a generic tick of 0 into NaN (its empty size): an answer all the same,
    meaning nothing to borrow."""
    return 0.0 if math.isnan(value) else value


def shares_of(value: float) -> Decimal | None:
    return None if math.isnan(value) or value < 0 else Decimal(str(value))


class _Collector:
    """Ticks 46 / 89 and errors for one request id, from the library's events."""

    def __init__(self, req_id: int) -> None:
        self.req_id = req_id
        self.indicator: float | None = None
        self.shares: Decimal | None = None
        self.error: tuple[int, str] | None = None
        self.answered = asyncio.Event()  # tick 46, an error, or the session ended

    def on_update(self, ticker: Any) -> None:
        for tick in ticker.ticks:
            if tick.tickType == SHORTABLE_TICK:
                self.indicator = indicator_of(float(tick.price))
                self.answered.set()
            elif tick.tickType == SHORTABLE_SHARES_TICK:
                self.shares = shares_of(float(tick.size))

    def on_error(self, req_id: int, code: int, message: str, *_: Any) -> None:
        if req_id == self.req_id and errors.classify(code) is not errors.ErrorKind.INFORMATIONAL:
            self.error = (code, message)
            self.answered.set()

    def on_disconnected(self) -> None:
        self.answered.set()

    def reading(self) -> ShortableReading:
        return ShortableReading(self.indicator, self.shares, self.error)


async def read_shortable(ib: Any, contract: Any, limit: float = WAIT_S) -> ShortableReading:
    """Subscribe to generic tick 236 for `contract`, wait at most `limit` seconds for tick 46
    (or an error for the request), cancel. Never raises for an unanswered request."""
    try:
        req_id = ib.client.getReqId()
    except ConnectionError as exc:
        return ShortableReading(error=(504, str(exc)))
    seen = _Collector(req_id)
    ticker = ib.wrapper.startTicker(req_id, contract, TICKER_KEY)
    ticker.updateEvent += seen.on_update
    ib.errorEvent += seen.on_error
    ib.disconnectedEvent += seen.on_disconnected
    try:
        ib.client.reqMktData(req_id, contract, GENERIC_TICKS, False, False, [])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await seen.answered.wait()
    finally:
        ticker.updateEvent -= seen.on_update
        ib.errorEvent -= seen.on_error
        ib.disconnectedEvent -= seen.on_disconnected
        if ib.wrapper.ticker2ReqId[TICKER_KEY].get(ticker) == req_id:
            ib.wrapper.endTicker(ticker, TICKER_KEY)
        if ib.isConnected():
            ib.client.cancelMktData(req_id)
    return seen.reading()
