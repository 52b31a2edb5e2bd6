"""The simulator lists its open orders from a book it keeps as orders change: the list is
the one made by building every open order's report at the time of asking, whatever happened
(placements, fills, brackets' exits waking and cancelling each other, changes, cancels, the
close, a restart from the store)."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from brokers.exceptions import BrokerError
from brokers.port import OrderReport
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.store import SimStore
from schemas.events import OrderType, Side
from tests.unit.brokers.conftest import ACCOUNT, FakeClock, req

SYMBOLS = ("AAPL", "MSFT", "KO")


def made_now(exchange: Exchange) -> list[OrderReport]:
    """Every open order's report built at the time of asking, in placement order."""
    orders = sorted((o for o in exchange._orders.values()
                     if o.account_id == ACCOUNT and o.is_open), key=lambda o: o.seq)
    return [o.report() for o in orders]


def shake(exchange: Exchange, clock: FakeClock, rng: random.Random, steps: int) -> None:
    placed: list[str] = []
    for n in range(steps):
        action = rng.random()
        try:
            if action < 0.45:
                symbol = rng.choice(SYMBOLS)
                price = exchange.last_price(symbol)
                side = rng.choice([Side.BUY, Side.SELL])
                up, down = price * Decimal("1.01"), price * Decimal("0.99")
                tp, sl = (up, down) if side is Side.BUY else (down, up)
                coid = f"o{n}"
                exchange.place(ACCOUNT, req(
                    coid, symbol, side, qty=rng.randrange(1, 5),
                    order_type=rng.choice([OrderType.MKT, OrderType.LMT]),
                    limit_price=f"{price:.2f}", take_profit=f"{tp:.2f}",
                    stop_loss=f"{sl:.2f}"))
                placed.append(coid)
            elif action < 0.75:
                exchange.advance(rng.randrange(1, 4))
            elif action < 0.85 and placed:
                exchange.cancel(ACCOUNT, rng.choice(placed))
            elif action < 0.95:
                symbol = rng.choice(SYMBOLS)
                move = Decimal(rng.choice(["0.97", "0.995", "1.005", "1.03"]))
                exchange.set_price(symbol, exchange.last_price(symbol) * move, hold=False)
            else:
                exchange.end_of_day()
        except BrokerError:
            pass  # a refusal (a cancel of an ended order, no cash): the venue's answer
        clock.tick(0.5)
        assert exchange.orders(ACCOUNT, open_only=True) == made_now(exchange), n


def test_the_open_orders_are_those_built_at_the_time_of_asking(clock: FakeClock) -> None:
    exchange = Exchange(SimConfig(seed=11), clock=clock)
    shake(exchange, clock, random.Random(5), 400)
    assert exchange.orders(ACCOUNT, open_only=True)  # the scenario leaves orders resting


def test_a_restarted_simulator_lists_the_same_open_orders(tmp_path: Path,
                                                          clock: FakeClock) -> None:
    path = tmp_path / "sim.sqlite"
    first = Exchange(SimConfig(seed=5), store=SimStore(path), clock=clock)
    shake(first, clock, random.Random(9), 150)
    before = first.orders(ACCOUNT, open_only=True)
    again = Exchange(SimConfig(seed=5), store=SimStore(path), clock=clock)
    assert again.orders(ACCOUNT, open_only=True) == made_now(again) == before
    shake(again, clock, random.Random(10), 50)


@pytest.mark.parametrize("seed", [1, 3, 21])
def test_matching_only_what_changed_fills_as_matching_every_resting_order(seed: int) -> None:
    """Two simulators on one script of operations, one looking at every resting order of
    the symbol at each pass: the same orders, fills and execution ids after every step."""
    clocks = (FakeClock(), FakeClock())
    quick, full = (Exchange(SimConfig(seed=11), clock=c) for c in clocks)
    full.quick_match = False
    rng = random.Random(seed)
    for n in range(600):
        script = rng.random(), rng.choice(SYMBOLS), rng.choice([Side.BUY, Side.SELL])
        pick, qty = rng.random(), rng.randrange(1, 400)
        for exchange, clock in ((quick, clocks[0]), (full, clocks[1])):
            step(exchange, n, script, pick, qty)
            clock.tick(0.5)
        assert quick.orders(ACCOUNT) == full.orders(ACCOUNT), n
        assert quick.fills(ACCOUNT) == full.fills(ACCOUNT), n
    assert len(full.fills(ACCOUNT)) > 100


def step(exchange: Exchange, n: int, script: tuple[float, str, Side], pick: float,
         qty: int) -> None:
    action, symbol, side = script
    price = exchange.last_price(symbol)
    try:
        if action < 0.5:
            up, down = price * Decimal("1.004"), price * Decimal("0.996")
            tp, sl = (up, down) if side is Side.BUY else (down, up)
            limit = price * Decimal("0.999" if side is Side.BUY else "1.001")
            exchange.place(ACCOUNT, req(
                f"o{n}", symbol, side, qty=qty,
                order_type=OrderType.LMT if pick < 0.5 else OrderType.MKT,
                limit_price=f"{limit:.2f}" if pick < 0.5 else None,
                take_profit=f"{tp:.2f}", stop_loss=f"{sl:.2f}"))
        elif action < 0.7:
            exchange.advance(1 + int(pick * 3))
        elif action < 0.8:
            exchange.set_liquidity(symbol, Decimal(50) if pick < 0.5 else None)
        elif action < 0.9:
            move = Decimal("0.997") if pick < 0.5 else Decimal("1.003")
            exchange.set_price(symbol, price * move, hold=pick < 0.25)
        elif action < 0.97:
            resting = exchange.orders(ACCOUNT, open_only=True)
            if resting:
                exchange.cancel(ACCOUNT, resting[int(pick * len(resting))].client_order_id)
        else:
            exchange.end_of_day()
    except BrokerError:
        pass
