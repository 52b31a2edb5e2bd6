"""Where the simulator's prices come from: a seeded mean-reverting walk, or replayed bars.

A step's move depends only on (seed, symbol, step index, price before the step), so the same
seed gives the same path on every machine and a restarted simulator continues where it was.
Scripted tests pin prices with `PriceBook.set_price`; a pinned symbol ignores steps until
released.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from brokers.sim.universe import Universe, min_tick, round_to_tick

DEFAULT_THETA = 0.02  # pull back towards the reference per step
DEFAULT_SIGMA = 0.002  # per-step shock as a fraction of the reference price


@dataclass(frozen=True, slots=True)
class Tick:
    """One step's print for one symbol."""

    price: Decimal
    volume: Decimal


class PriceSource(Protocol):
    """Produces step `step` (1-based) from the price before it; None means no print."""

    def next_tick(self, symbol: str, step: int, current: Decimal) -> Tick | None: ...

    def initial(self, symbol: str) -> Tick | None: ...


def base_volume(symbol: str) -> Decimal:
    """Shares a symbol trades per step on average: stable per symbol, 200k to 2M."""
    digest = hashlib.sha256(f"jax-sim-vol:{symbol}".encode()).digest()
    return Decimal(200_000 + int.from_bytes(digest[:4], "big") % 1_800_000)


def _rng(seed: int, symbol: str, step: int) -> random.Random:
    # String seeds go through SHA-512 in random.Random, so they do not depend on PYTHONHASHSEED.
    return random.Random(f"{seed}|{symbol}|{step}")


def ou_step(
    seed: int,
    symbol: str,
    step: int,
    current: Decimal,
    reference: Decimal,
    theta: float = DEFAULT_THETA,
    sigma: float = DEFAULT_SIGMA,
) -> Tick:
    """One Ornstein-Uhlenbeck step, rounded to the tick and never below one tick."""
    rng = _rng(seed, symbol, step)
    ref = float(reference)
    x = float(current)
    x = x + theta * (ref - x) + sigma * ref * rng.gauss(0.0, 1.0)
    price = round_to_tick(Decimal(repr(round(max(x, 0.0), 6))))
    floor = min_tick(price)
    volume = Decimal(math.floor(float(base_volume(symbol)) * (0.5 + rng.random())))
    return Tick(price=max(price, floor), volume=volume)


def ou_path(seed: int, symbol: str, reference: Decimal, steps: int) -> list[Decimal]:
    """Prices at steps 0..steps with no overrides: what determinism tests compare."""
    prices = [reference]
    for step in range(1, steps + 1):
        prices.append(ou_step(seed, symbol, step, prices[-1], reference).price)
    return prices


class OrnsteinUhlenbeckSource:
    """The default source: every universe symbol wanders around its reference price."""

    def __init__(
        self,
        seed: int,
        universe: Universe,
        theta: float = DEFAULT_THETA,
        sigma: float = DEFAULT_SIGMA,
    ) -> None:
        self._seed = seed
        self._universe = universe
        self._theta = theta
        self._sigma = sigma

    def initial(self, symbol: str) -> Tick | None:
        return Tick(self._universe.get(symbol).reference_price, base_volume(symbol))

    def next_tick(self, symbol: str, step: int, current: Decimal) -> Tick | None:
        ref = self._universe.get(symbol).reference_price
        return ou_step(self._seed, symbol, step, current, ref, self._theta, self._sigma)


@dataclass(frozen=True, slots=True)
class Bar:
    timestamp: datetime
    symbol: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def _parse_ts(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_bars(path: Path) -> list[Bar]:
    """Bars CSV with header timestamp,symbol,open,high,low,close,volume (naive times are UTC)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            Bar(
                timestamp=_parse_ts(row["timestamp"]),
                symbol=row["symbol"].strip().upper(),
                open=Decimal(row["open"]),
                high=Decimal(row["high"]),
                low=Decimal(row["low"]),
                close=Decimal(row["close"]),
                volume=Decimal(row["volume"]),
            )
            for row in csv.DictReader(handle)
        ]


class ReplaySource:
    """Step n prints the closes of the n-th distinct timestamp; after the last bar prices hold."""

    def __init__(self, bars: list[Bar]) -> None:
        by_time: dict[datetime, dict[str, Bar]] = defaultdict(dict)
        for bar in bars:
            by_time[bar.timestamp][bar.symbol] = bar
        self._timeline = [by_time[t] for t in sorted(by_time)]
        self._first: dict[str, Bar] = {}
        for frame in self._timeline:
            for symbol, bar in frame.items():
                self._first.setdefault(symbol, bar)

    @classmethod
    def from_csv(cls, path: Path) -> ReplaySource:
        return cls(read_bars(path))

    def symbols(self) -> list[str]:
        return sorted(self._first)

    def __len__(self) -> int:
        return len(self._timeline)

    def initial(self, symbol: str) -> Tick | None:
        bar = self._first.get(symbol)
        return None if bar is None else Tick(bar.open, bar.volume)

    def next_tick(self, symbol: str, step: int, current: Decimal) -> Tick | None:
        if not 1 <= step <= len(self._timeline):
            return None
        bar = self._timeline[step - 1].get(symbol)
        return None if bar is None else Tick(bar.close, bar.volume)


@dataclass(slots=True)
class Quote:
    """Mutable per-symbol state the book keeps and the store persists."""

    price: Decimal
    volume: Decimal
    held: bool = False


class PriceBook:
    """Current price and step volume of every symbol, advanced one step at a time."""

    def __init__(self, universe: Universe, source: PriceSource) -> None:
        self._universe = universe
        self._source = source
        self.step = 0
        self._quotes: dict[str, Quote] = {}
        for symbol in universe.symbols():
            first = source.initial(symbol)
            ref = universe.get(symbol).reference_price
            self._quotes[symbol] = (
                Quote(first.price, first.volume) if first else Quote(ref, base_volume(symbol))
            )

    def quote(self, symbol: str) -> Quote:
        return self._quotes[self._universe.get(symbol).symbol]

    def price(self, symbol: str) -> Decimal:
        return self.quote(symbol).price

    def advance(self) -> list[str]:
        """Move one step; return the symbols whose print changed (held ones never do)."""
        self.step += 1
        moved = []
        for symbol, quote in self._quotes.items():
            if quote.held:
                continue
            tick = self._source.next_tick(symbol, self.step, quote.price)
            if tick is not None:
                quote.price, quote.volume = tick.price, tick.volume
                moved.append(symbol)
        return moved

    def set_price(self, symbol: str, price: Decimal, hold: bool = True) -> str:
        """Script a print; held prices stay put through later steps until released."""
        quote = self.quote(symbol)
        quote.price = price
        quote.held = hold
        return self._universe.get(symbol).symbol

    def release(self, symbol: str) -> None:
        self.quote(symbol).held = False

    def items(self) -> list[tuple[str, Quote]]:
        return list(self._quotes.items())

    def restore(self, step: int, quotes: dict[str, Quote]) -> None:
        """Put back what the store saved, ignoring symbols no longer in the universe."""
        self.step = step
        for symbol, quote in quotes.items():
            if symbol in self._quotes:
                self._quotes[symbol] = quote
