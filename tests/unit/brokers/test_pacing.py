"""The pacing wrapper: a burst above the venue's limit is queued, never refused, and never more
than the limit goes out in any window, measured where the orders arrive (the simulator)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import pytest

from brokers.pacing import (
    BACKGROUND,
    PUBLISHED,
    READ,
    Pace,
    PacedVenue,
    Pacer,
    background,
    pacer_for,
    queue_depths,
)
from brokers.port import OrderService
from brokers.sim.core import Exchange
from brokers.sim.service import SimOrderService
from schemas.events import OrderType
from tests.unit.brokers.conftest import ACCOUNT, START, FakeClock, req


def virtual(clock: FakeClock) -> tuple[object, object]:
    """The pacer on the simulator's clock: sleeping moves the clock, so no test waits."""

    def now() -> float:
        return (clock.now - START).total_seconds()

    async def sleep(seconds: float) -> None:
        clock.tick(max(seconds, 0))
        await asyncio.sleep(0)

    return now, sleep


def most_in_any_window(times: list[datetime], period: float) -> int:
    """The largest number of arrivals inside any window [t, t + period)."""
    stamps = sorted((t - START).total_seconds() for t in times)
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_ib_burst_of_brackets_is_paced_at_the_simulator(exchange: Exchange,
                                                              clock: FakeClock) -> None:
    limit = PUBLISHED["ib"]
    now, sleep = virtual(clock)
    pacer = Pacer("ib:test", limit, now, sleep)  # type: ignore[arg-type]
    service = PacedVenue(SimOrderService(exchange), pacer)
    assert isinstance(service, OrderService)
    await service.connect()
    burst = 60  # brackets: 180 orders at the venue, over three times IB's 50 a second
    depths: list[int] = []

    async def one(i: int) -> None:
        depths.append(pacer.queue_depth())
        await service.place(req(f"b{i}", take_profit="999", stop_loss="1"))

    await asyncio.gather(*(one(i) for i in range(burst)))
    orders = exchange.orders(ACCOUNT)
    per_id = Counter(o.client_order_id for o in orders)
    busiest = most_in_any_window([o.created_at for o in orders], limit.period)
    per_second = Counter(int((o.created_at - START).total_seconds()) for o in orders)
    print(f"IB pacing: {len(orders)} orders ({burst} brackets) over "
          f"{(clock.now - START).total_seconds():.2f}s of simulator time; busiest 1s window "
          f"{busiest} (limit {limit.limit}); per second {sorted(per_second.values())}; "
          f"deepest queue {pacer.max_waiting}")
    assert len(orders) == 3 * burst
    assert set(per_id.values()) == {1}  # every order placed once
    assert {f"b{i}" for i in range(burst)} <= set(per_id)
    assert busiest <= limit.limit
    assert max(per_second.values()) <= limit.limit
    assert pacer.max_waiting > 1  # the burst queued
    assert pacer.queue_depth() == 0


async def test_alpaca_pace_is_per_minute(exchange: Exchange, clock: FakeClock) -> None:
    now, sleep = virtual(clock)
    pacer = Pacer("alpaca:test", PUBLISHED["alpaca"], now, sleep)  # type: ignore[arg-type]
    service = PacedVenue(SimOrderService(exchange), pacer)
    await service.connect()
    await asyncio.gather(*(service.place(req(f"a{i}", qty=1, order_type=OrderType.LMT,
                                                 limit_price="1")) for i in range(450)))
    orders = exchange.orders(ACCOUNT)
    busiest = most_in_any_window([o.created_at for o in orders], 60.0)
    print(f"Alpaca pacing: {len(orders)} requests over {(clock.now - START).total_seconds()}s;"
          f" busiest minute {busiest} (limit 200)")
    assert len(orders) == 450
    assert busiest <= 200


async def test_reads_are_paced_too_and_queue_is_exported(exchange: Exchange,
                                                         clock: FakeClock) -> None:
    now, sleep = virtual(clock)
    pacer = Pacer("oanda:q", Pace(2, 1.0), now, sleep)  # type: ignore[arg-type]
    service = PacedVenue(SimOrderService(exchange), pacer)
    await service.connect()
    seen: list[int] = []

    async def read() -> None:
        await service.account()
        seen.append(pacer.queue_depth())

    await asyncio.gather(*(read() for _ in range(5)))
    assert pacer.sent_total == 5
    assert max(seen) >= 1
    assert (clock.now - START).total_seconds() >= 2  # five reads at two a second


def test_published_paces_and_registry() -> None:
    assert str(PUBLISHED["ib"]) == "45 per 1s"  # ib_async's own limit, under TWS's 50
    p = pacer_for("ib:client-7")
    assert pacer_for("ib:client-7") is p
    assert queue_depths()["ib:client-7"] == 0
    with pytest.raises(ValueError, match="no published pace"):
        pacer_for("nowhere")
    with pytest.raises(ValueError, match="a pace needs"):
        Pace(0, 1.0)


class _Counted(SimOrderService):
    """An adapter that says what each call sends: reads answered from pushed state, none."""

    def wire_messages(self, operation: str, *args: object) -> int | None:
        return {"account": 0, "status": 0, "fills_since": 1}.get(operation)


async def test_a_call_that_sends_nothing_is_not_charged_and_does_not_wait(
        exchange: Exchange, clock: FakeClock) -> None:
    """The pacer spends the adapter's own count (through BoundedVenue, as wired): a read
    served from pushed state neither queues behind a full window nor uses it up."""
    from brokers.bounded import BoundedVenue

    now, sleep = virtual(clock)
    pacer = Pacer("ib:counted", Pace(3, 1.0), now, sleep)  # type: ignore[arg-type]
    service = PacedVenue(BoundedVenue(_Counted(exchange), 5.0), pacer)
    await service.connect()
    await service.place(req("full", take_profit="999", stop_loss="1"))  # 3: the window is full
    assert pacer.sent_total == 3
    started = clock.now
    for _ in range(10):
        await service.account()  # 0 messages
        await service.status("full")  # 0 messages
    assert clock.now == started  # nothing waited
    assert pacer.sent_total == 3
    await service.fills_since(START)  # 1 message: waits for the window to move
    await service.positions()  # not counted by the adapter: its published cost, 1
    assert pacer.sent_total == 5
    assert clock.now > started


async def test_background_calls_take_the_turn_after_every_other(clock: FakeClock) -> None:
    now, sleep = virtual(clock)
    pacer = Pacer("ib:kinds", Pace(1, 1.0), now, sleep)  # type: ignore[arg-type]
    served: list[str] = []

    async def call(name: str, kind: int) -> None:
        await pacer.acquire(1, kind)
        served.append(name)

    await pacer.acquire(1)  # the window is full: every call below waits
    arrivals = [("bg1", BACKGROUND), ("read1", READ), ("bg2", BACKGROUND), ("order1", READ),
                ("read2", READ)]
    await asyncio.gather(*(call(n, k) for n, k in arrivals))
    # bg1 came to a free turn, found no room and gave the turn up while it waits: the others
    # in arrival order, the background calls last
    assert served[:3] == ["read1", "order1", "read2"]
    assert sorted(served[3:]) == ["bg1", "bg2"]
    assert pacer.queue_depth() == 0


async def test_background_calls_leave_the_reserve_of_every_window_to_the_others(
        clock: FakeClock) -> None:
    now, _ = virtual(clock)
    gate = asyncio.Event()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # time moves when the test says
        slept.append(seconds)
        await gate.wait()
        clock.tick(max(seconds, 0))

    pacer = Pacer("ib:reserve", Pace(45, 1.0), now, sleep)  # type: ignore[arg-type]
    assert pacer.reserve == 5
    for _ in range(38):
        await pacer.acquire(1)
    await pacer.acquire(2, BACKGROUND)  # 40 in the window: fits under 45 - 5
    assert slept == []
    waited = asyncio.create_task(pacer.acquire(1, BACKGROUND))  # 41 would not: it waits
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(slept) == 1
    assert not waited.done()
    # it waits without the turn: the others still get the whole limit, at once
    await asyncio.wait_for(pacer.acquire(5), 1)
    assert len(slept) == 1
    gate.set()
    await asyncio.wait_for(waited, 1)
    assert pacer.sent_total == 38 + 2 + 5 + 1


async def test_a_waiter_cancelled_in_the_queue_or_holding_the_turn_blocks_no_one(
        clock: FakeClock) -> None:
    now, sleep = virtual(clock)
    pacer = Pacer("ib:cancel", Pace(1, 1.0), now, sleep)  # type: ignore[arg-type]
    await pacer.acquire(1)
    holder = asyncio.create_task(pacer.acquire(1, READ))
    queued = asyncio.create_task(pacer.acquire(1, READ))
    last = asyncio.create_task(pacer.acquire(1, READ))
    await asyncio.sleep(0)
    queued.cancel()
    holder.cancel()
    await asyncio.wait_for(last, 1)
    assert holder.cancelled()
    assert queued.cancelled()
    assert pacer.queue_depth() == 0
    await asyncio.wait_for(pacer.acquire(1), 1)  # the turn is free again


class _Recorder:
    """A venue that notes the order its calls reach it in."""

    venue = "ib"

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def place(self, order: object) -> None:
        self.calls.append("place")

    async def instrument(self, symbol: str, borrow: bool = True) -> None:
        self.calls.append(f"instrument {symbol}")

    async def open_orders(self) -> list[object]:
        self.calls.append("open_orders")
        return []


async def test_a_background_read_waits_behind_orders_and_reads(
        clock: FakeClock) -> None:
    now, _ = virtual(clock)
    window = asyncio.Event()  # the window stays full until the test opens it

    async def sleep(seconds: float) -> None:
        await window.wait()
        clock.tick(max(seconds, 0))

    pacer = Pacer("ib:bg", Pace(1, 1.0), now, sleep)  # type: ignore[arg-type]
    inner = _Recorder()
    venue = PacedVenue(inner, pacer)  # type: ignore[arg-type]
    window.set()
    await pacer.acquire(1)  # the window is full
    window.clear()

    async def refresh() -> None:
        with background():
            await venue.instrument("AAPL")

    calls = [asyncio.create_task(venue.open_orders()),  # takes the free turn, waits for room
             asyncio.create_task(refresh()),
             asyncio.create_task(venue.open_orders()),
             asyncio.create_task(venue.place(req("o1", take_profit="999", stop_loss="1")))]
    for _ in range(5):
        await asyncio.sleep(0)
    assert pacer.queue_depth() == 4
    window.set()
    await asyncio.gather(*calls)
    assert inner.calls == ["open_orders", "open_orders", "place", "instrument AAPL"]
