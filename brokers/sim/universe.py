"""The simulator's tradable instruments: the S&P 100 (plus anything a caller adds), IB-style.

Reference prices are plausible round figures, not quotes; AAPL starts at exactly 150.00
because the seed example trades it at that limit.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, replace
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from brokers.sim.reasons import Reason, refusal

if TYPE_CHECKING:
    from brokers.sim.fx import FxSpec

ONE = Decimal(1)
CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")


def min_tick(price: Decimal) -> Decimal:
    """SEC Rule 612: quotes at or above $1.00 in cents, below in hundredths of a cent."""
    return CENT if price >= ONE else SUB_PENNY


def on_tick(price: Decimal) -> bool:
    """Whether a price is a whole number of its own minimum tick."""
    return price % min_tick(price) == 0


def round_to_tick(price: Decimal) -> Decimal:
    """Snap a model price to the grid the venue would print it on."""
    tick = min_tick(price)
    return (price / tick).to_integral_value() * tick


def con_id_for(symbol: str) -> int:
    """A stable contract id: IB ids are positive ints, and restarts must not change them."""
    digest = hashlib.sha256(f"jax-sim-con:{symbol}".encode()).digest()
    return 100_000_000 + int.from_bytes(digest[:4], "big") % 900_000_000


@dataclass(frozen=True, slots=True)
class Instrument:
    """A US stock as IB's contract details describe it."""

    symbol: str
    con_id: int
    name: str
    primary_exchange: str
    sector: str
    reference_price: Decimal
    min_tick: Decimal
    currency: str = "USD"
    exchange: str = "SMART"
    lot_size: Decimal = ONE
    sec_type: str = "STK"
    fx: FxSpec | None = None  # a currency pair (brokers/sim/fx.py); None for stocks
    shortable: bool = True  # shares to borrow (IB tick 46, Alpaca `shortable`); SIM_NOT_SHORTABLE


def make_instrument(
    symbol: str,
    reference_price: Decimal,
    name: str = "",
    primary_exchange: str = "NYSE",
    sector: str = "",
) -> Instrument:
    """Build an instrument whose derived fields (con_id, tick) follow the venue's rules."""
    return Instrument(
        symbol=symbol,
        con_id=con_id_for(symbol),
        name=name or symbol,
        primary_exchange=primary_exchange,
        sector=sector,
        reference_price=reference_price,
        min_tick=min_tick(reference_price),
    )


def _read_rows(path: Path | None) -> list[dict[str, str]]:
    if path is None:
        text = resources.files("brokers.sim").joinpath("data/universe.csv").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


class Universe:
    """Symbol lookup that refuses unknown symbols (UNKNOWN_INSTRUMENT). Symbols in
    `not_shortable` are marked so however they arrive (the list, or a replay adding them)."""

    def __init__(self, instruments: list[Instrument],
                 not_shortable: frozenset[str] = frozenset()) -> None:
        self._not_shortable = frozenset(s.upper() for s in not_shortable)
        self._by_symbol: dict[str, Instrument] = {}
        for instrument in instruments:
            self.add(instrument)

    @classmethod
    def load(cls, path: Path | None = None,
             not_shortable: frozenset[str] = frozenset()) -> Universe:
        """The packaged S&P 100 file unless a caller brings its own list."""
        rows = _read_rows(path)
        return cls(
            [
                make_instrument(
                    r["symbol"].strip().upper(),
                    Decimal(r["reference_price"]),
                    r["name"],
                    r["primary_exchange"],
                    r["sector"],
                )
                for r in rows
            ],
            not_shortable,
        )

    def get(self, symbol: str) -> Instrument:
        """The instrument, or an UNKNOWN_INSTRUMENT refusal."""
        try:
            return self._by_symbol[symbol.upper()]
        except KeyError:
            raise refusal(Reason.UNKNOWN_INSTRUMENT, f"unknown instrument {symbol}") from None

    def add(self, instrument: Instrument) -> None:
        """Replays may bring symbols beyond the packaged list."""
        if instrument.symbol in self._not_shortable:
            instrument = replace(instrument, shortable=False)
        self._by_symbol[instrument.symbol] = instrument

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.upper() in self._by_symbol

    def __len__(self) -> int:
        return len(self._by_symbol)

    def symbols(self) -> list[str]:
        """Sorted, so iteration order (and therefore price paths) never depends on dict order."""
        return sorted(self._by_symbol)

    def all(self) -> list[Instrument]:
        return [self._by_symbol[s] for s in self.symbols()]
