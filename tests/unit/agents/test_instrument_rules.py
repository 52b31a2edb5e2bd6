"""What the venue says of an instrument is kept for max_age; past half of it an entry is still
served at once and asked again in the background, so a decision never waits for a look-up of
a symbol some decision asked about within max_age. Only a sell's decision needs the venue's
borrow answer (agents/venue_view.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from agents.venue_view import InstrumentRulesCache
from brokers.exceptions import TransientBrokerError
from brokers.port import InstrumentRules
from tests.fakes import T0, FakeVenue

MAX_AGE = timedelta(seconds=60)


class Venue(FakeVenue):
    """Answers instrument() with whether the stock may be shorted now; holds its answer while
    `held` is set, fails while `failing`."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []
        self.borrows: list[bool] = []
        self.shortable = True
        self.held: asyncio.Event | None = None
        self.failing = False

    async def instrument(self, symbol: str, borrow: bool = True) -> InstrumentRules | None:
        self.asked.append(symbol)
        self.borrows.append(borrow)
        if self.held is not None:
            await self.held.wait()
        if self.failing:
            raise TransientBrokerError("venue down", code="1100")
        return InstrumentRules(symbol=symbol, shortable=self.shortable if borrow else None)


def shortable(rules: InstrumentRules | None) -> bool | None:
    assert rules is not None
    return rules.shortable


async def settled(cache: InstrumentRulesCache) -> None:
    for _ in range(20):
        await asyncio.sleep(0)
    assert not cache._refreshing


@pytest.fixture
def venue() -> Venue:
    return Venue()


async def test_a_fresh_entry_is_served_without_asking(venue: Venue) -> None:
    cache = InstrumentRulesCache(venue, MAX_AGE)
    assert shortable(await cache.get("AAPL", T0, borrow=True)) is True
    assert shortable(await cache.get("AAPL", T0 + timedelta(seconds=29), borrow=True)) is True
    await settled(cache)
    assert venue.asked == ["AAPL"]


async def test_late_in_its_age_an_entry_is_served_at_once_and_asked_again_behind(
        venue: Venue) -> None:
    cache = InstrumentRulesCache(venue, MAX_AGE)
    await cache.get("AAPL", T0, borrow=True)
    venue.shortable = False
    venue.held = asyncio.Event()  # the venue's answer takes its time
    later = T0 + timedelta(seconds=46)
    # served from the entry while the venue has not answered: the decision does not wait
    assert shortable(await asyncio.wait_for(cache.get("AAPL", later, borrow=True), 1)) is True
    again = await asyncio.wait_for(
        cache.get("AAPL", later + timedelta(seconds=1), borrow=True), 1)
    assert shortable(again) is True
    assert venue.asked == ["AAPL", "AAPL"]  # one refresh under way per symbol
    venue.held.set()
    await settled(cache)
    assert shortable(await cache.get("AAPL", later + timedelta(seconds=2), borrow=True)) is False
    # the refresh dated the entry when it was asked: not asked again for 30 s
    await cache.get("AAPL", later + timedelta(seconds=29), borrow=True)
    await settled(cache)
    assert venue.asked == ["AAPL", "AAPL"]


async def test_past_max_age_a_decision_waits_for_the_venue(venue: Venue) -> None:
    cache = InstrumentRulesCache(venue, MAX_AGE)
    await cache.get("AAPL", T0, borrow=True)
    venue.shortable = False
    venue.held = asyncio.Event()
    late = cache.get("AAPL", T0 + MAX_AGE + timedelta(seconds=1), borrow=True)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(late)), 0.05)
    venue.held.set()
    await settled(cache)
    after = T0 + MAX_AGE + timedelta(seconds=2)
    assert shortable(await cache.get("AAPL", after, borrow=True)) is False


async def test_a_failed_refresh_keeps_the_entry_until_max_age(venue: Venue) -> None:
    cache = InstrumentRulesCache(venue, MAX_AGE)
    await cache.get("AAPL", T0, borrow=True)
    venue.failing = True
    assert shortable(await cache.get("AAPL", T0 + timedelta(seconds=46), borrow=True)) is True
    await settled(cache)  # the refresh failed, logged, and nothing escaped
    assert shortable(await cache.get("AAPL", T0 + timedelta(seconds=59), borrow=True)) is True
    with pytest.raises(TransientBrokerError):  # past max_age the failure is the decision's
        await cache.get("AAPL", T0 + MAX_AGE + timedelta(seconds=1), borrow=True)


async def test_close_stops_the_refreshes_under_way(venue: Venue) -> None:
    cache = InstrumentRulesCache(venue, MAX_AGE)
    await cache.get("AAPL", T0, borrow=True)
    venue.held = asyncio.Event()
    await cache.get("AAPL", T0 + timedelta(seconds=50), borrow=True)
    assert cache._refreshing
    await asyncio.wait_for(cache.close(), 1)
    await settled(cache)


async def test_entries_due_together_are_asked_again_one_at_a_time(venue: Venue) -> None:
    cache = InstrumentRulesCache(venue, MAX_AGE)
    symbols = ["AAPL", "MSFT", "NVDA"]
    for symbol in symbols:  # read together, as in a burst: due together
        await cache.get(symbol, T0, borrow=True)
    venue.held = asyncio.Event()
    due = T0 + timedelta(seconds=50)
    for symbol in symbols:
        assert shortable(await cache.get(symbol, due, borrow=True)) is True  # none waits
    for _ in range(5):
        await asyncio.sleep(0)
    assert venue.asked == [*symbols, "AAPL"]  # the others wait their turn
    venue.held.set()
    await settled(cache)
    assert venue.asked == [*symbols, *symbols]


async def test_a_buy_asks_without_the_borrow_and_a_sell_needs_it(venue: Venue) -> None:
    cache = InstrumentRulesCache(venue, MAX_AGE)
    assert shortable(await cache.get("AAPL", T0, borrow=False)) is None
    assert venue.borrows == [False]
    # a sell is not served an entry asked without the borrow: it asks, in line
    assert shortable(await cache.get("AAPL", T0 + timedelta(seconds=1), borrow=True)) is True
    assert venue.borrows == [False, True]
    # now buys and sells are both served that entry
    assert shortable(await cache.get("AAPL", T0 + timedelta(seconds=2), borrow=False)) is True
    assert shortable(await cache.get("AAPL", T0 + timedelta(seconds=3), borrow=True)) is True
    await settled(cache)
    assert venue.borrows == [False, True]


async def test_a_refresh_asks_what_its_entry_was_asked(venue: Venue) -> None:
    cache = InstrumentRulesCache(venue, MAX_AGE)
    await cache.get("AAPL", T0, borrow=False)
    await cache.get("MSFT", T0, borrow=True)
    due = T0 + timedelta(seconds=40)
    await cache.get("AAPL", due, borrow=False)
    await cache.get("MSFT", due, borrow=False)  # a buy of a symbol once sold
    await settled(cache)
    assert list(zip(venue.asked, venue.borrows, strict=True)) == [
        ("AAPL", False), ("MSFT", True), ("AAPL", False), ("MSFT", True)]


async def test_of_two_answers_asked_at_once_the_one_with_the_borrow_is_kept(
        venue: Venue) -> None:
    cache = InstrumentRulesCache(venue, MAX_AGE)
    venue.held = asyncio.Event()
    sell = asyncio.ensure_future(cache.get("AAPL", T0, borrow=True))
    buy = asyncio.ensure_future(cache.get("AAPL", T0, borrow=False))
    for _ in range(3):
        await asyncio.sleep(0)
    venue.held.set()
    await sell  # answers first
    await buy  # answers last, without the borrow: does not replace the sell's answer
    assert shortable(await cache.get("AAPL", T0, borrow=True)) is True
    assert len(venue.asked) == 2
