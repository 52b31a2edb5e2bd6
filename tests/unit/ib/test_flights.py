"""Coalescer and KeyedLocks: the guards that make one shared IB client safe to share."""

from __future__ import annotations

import asyncio

import pytest

from brokers.ib.flights import Coalescer, KeyedLocks

BOUND = 5.0


class Venue:
    """A fixed-key request whose answers the test releases one at a time."""

    def __init__(self) -> None:
        self.sent = 0
        self.gates: list[asyncio.Event] = []
        self.state = "v0"

    async def request(self) -> str:
        self.sent += 1
        gate = asyncio.Event()
        self.gates.append(gate)
        seen = self.state  # what the venue holds when the request arrives
        await gate.wait()
        return f"{seen}#{self.sent}"

    async def answer_all(self) -> None:
        while not all(g.is_set() for g in self.gates):
            for gate in self.gates:
                gate.set()
            await asyncio.sleep(0)


async def test_concurrent_callers_share_round_trips() -> None:
    flights, venue = Coalescer(), Venue()
    async with asyncio.timeout(BOUND):
        callers = [asyncio.ensure_future(flights.run("openOrders", venue.request))
                   for _ in range(20)]  # fmt: skip
        await asyncio.sleep(0)
        while not all(c.done() for c in callers):
            await venue.answer_all()
            await asyncio.sleep(0)
        answers = [c.result() for c in callers]
    # the first caller's request went out at once; the 19 that came after it share one more
    assert venue.sent == 2
    assert answers == ["v0#1"] + ["v0#2"] * 19


async def test_a_caller_never_gets_an_answer_older_than_its_call() -> None:
    flights, venue = Coalescer(), Venue()
    async with asyncio.timeout(BOUND):
        first = asyncio.ensure_future(flights.run("k", venue.request))
        await asyncio.sleep(0)  # first request in flight, venue at v0
        venue.state = "v1"
        late = [asyncio.ensure_future(flights.run("k", venue.request)) for _ in range(5)]
        await asyncio.sleep(0)
        while not all(c.done() for c in [first, *late]):
            await venue.answer_all()
            await asyncio.sleep(0)
    assert first.result() == "v0#1"
    assert {c.result() for c in late} == {"v1#2"}  # one more round trip, shared by all five
    assert venue.sent == 2


async def test_keys_are_independent() -> None:
    flights, venue = Coalescer(), Venue()
    async with asyncio.timeout(BOUND):
        a = asyncio.ensure_future(flights.run("openOrders", venue.request))
        b = asyncio.ensure_future(flights.run("completedOrders", venue.request))
        await asyncio.sleep(0)
        assert venue.sent == 2
        await venue.answer_all()
        await asyncio.gather(a, b)


async def test_a_failed_request_is_not_shared() -> None:
    flights = Coalescer()
    sent: list[int] = []
    release = asyncio.Event()

    async def flaky() -> str:
        sent.append(1)
        if len(sent) == 1:
            await release.wait()
            raise ConnectionError("dropped")
        return "ok"

    async with asyncio.timeout(BOUND):
        first = asyncio.ensure_future(flights.run("k", flaky))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(flights.run("k", flaky))
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(ConnectionError):
            await first
        assert await second == "ok"
    assert len(sent) == 2


async def test_a_cancelled_caller_frees_the_key() -> None:
    flights = Coalescer()
    never = asyncio.Event()

    async def hang() -> str:
        await never.wait()
        return "never"

    async def quick() -> str:
        return "ok"

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await flights.run("k", hang)
    async with asyncio.timeout(BOUND):
        assert await flights.run("k", quick) == "ok"


async def test_exclusive_waits_for_requests_and_holds_them_off() -> None:
    flights, venue = Coalescer(), Venue()
    order: list[str] = []
    async with asyncio.timeout(BOUND):
        running = asyncio.ensure_future(flights.run("openOrders", venue.request))
        await asyncio.sleep(0)

        async def connect() -> None:
            async with flights.exclusive(["openOrders", "accountValues"]):
                order.append("connect")
                await asyncio.sleep(0)
                order.append("connected")

        connecting = asyncio.ensure_future(connect())
        await asyncio.sleep(0)
        assert order == []  # waits for the request in flight
        await venue.answer_all()
        await running
        waiting = asyncio.ensure_future(flights.run("accountValues", venue.request))
        await connecting
        await asyncio.sleep(0)
        await venue.answer_all()
        await waiting
    assert order == ["connect", "connected"]


async def test_keyed_locks_serialize_one_key_and_forget_it_after() -> None:
    locks = KeyedLocks()
    inside: list[str] = []
    peak = 0

    async def hold(key: str) -> None:
        nonlocal peak
        async with locks.hold(key):
            inside.append(key)
            peak = max(peak, inside.count("a"))
            await asyncio.sleep(0)
            inside.remove(key)

    async with asyncio.timeout(BOUND):
        await asyncio.gather(*(hold("a") for _ in range(5)), hold("b"))
    assert peak == 1
    assert len(locks) == 0


async def test_keyed_locks_give_up_waiting_after_the_deadline() -> None:
    locks = KeyedLocks()
    async with locks.hold("a"):
        with pytest.raises(TimeoutError):
            async with locks.hold("a", wait=0.01):
                pytest.fail("got a held lock")
        assert len(locks) == 1
    assert len(locks) == 0
    async with asyncio.timeout(BOUND), locks.hold("a", wait=0.01):
        pass
