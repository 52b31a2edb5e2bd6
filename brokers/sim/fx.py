"""FX in the simulator: currency pairs as OANDA lists them, their price paths and their money.

A pair BASE_QUOTE is priced in QUOTE per one BASE; units are BASE (negative = short). The
account's home currency is USD: what a pair gains or loses in its quote currency is converted
with the home conversion factor of that currency (1 for USD, 1 / USD_XXX for XXX quoted
against USD, XXX_USD otherwise), so USD_JPY P&L in JPY lands in the account in USD.

Money follows OANDA's model, not a stock account's: opening a position moves no cash (the
balance changes only by realized P&L), the position ties up margin (notional x marginRate),
and net asset value is balance + unrealized P&L. Spread-only pricing: no commission.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import resources

from brokers.exceptions import OrderRejected
from brokers.port import OrderRequest
from brokers.sim.prices import DEFAULT_THETA, PriceSource, Tick
from brokers.sim.reasons import Reason, refusal
from brokers.sim.universe import Instrument, con_id_for

HOME = "USD"
ONE = Decimal(1)
FX_VOLUME = Decimal(1_000_000_000)  # units a pair trades per step: FX is deep
FX_SIGMA = 0.0002  # per-step shock as a fraction of the reference (about 2 pips on EUR_USD)
FACTOR_PLACES = Decimal("1e-10")
MONEY_PLACES = Decimal("0.0001")  # OANDA reports account money to 4 places


@dataclass(frozen=True, slots=True)
class FxSpec:
    """A pair's trading rules, as OANDA's GET /v3/accounts/{id}/instruments describes them."""

    base: str
    quote: str
    display_name: str
    display_precision: int
    pip_location: int
    trade_units_precision: int
    minimum_trade_size: Decimal
    maximum_order_units: Decimal
    margin_rate: Decimal

    @property
    def tick(self) -> Decimal:
        """The smallest price step (10^-displayPrecision)."""
        return ONE.scaleb(-self.display_precision)

    @property
    def units_step(self) -> Decimal:
        """The smallest units step (10^-tradeUnitsPrecision)."""
        return ONE.scaleb(-self.trade_units_precision)


def _spec(row: dict[str, str]) -> FxSpec:
    base, _, quote = row["symbol"].partition("_")
    return FxSpec(
        base=base,
        quote=quote,
        display_name=row["display_name"],
        display_precision=int(row["display_precision"]),
        pip_location=int(row["pip_location"]),
        trade_units_precision=int(row["trade_units_precision"]),
        minimum_trade_size=Decimal(row["minimum_trade_size"]),
        maximum_order_units=Decimal(row["maximum_order_units"]),
        margin_rate=Decimal(row["margin_rate"]),
    )


def load_fx() -> list[Instrument]:
    """The packaged pairs (brokers/sim/data/fx.csv): the majors and two crosses."""
    text = resources.files("brokers.sim").joinpath("data/fx.csv").read_text("utf-8")
    out = []
    for row in csv.DictReader(text.splitlines()):
        spec = _spec(row)
        symbol = row["symbol"].strip().upper()
        out.append(
            Instrument(
                symbol=symbol,
                con_id=con_id_for(symbol),
                name=spec.display_name,
                primary_exchange="IDEALPRO",
                sector="FX",
                reference_price=Decimal(row["reference_price"]),
                min_tick=spec.tick,
                currency=spec.quote,
                exchange="IDEALPRO",
                lot_size=spec.units_step,
                sec_type="CASH",
                fx=spec,
            )
        )
    return out


def home_factor(quote: str, price_of: Callable[[str], Decimal], symbols: Container[str]) -> Decimal:
    """What one unit of `quote` is worth in the home currency, from the pairs' last prints."""
    if quote == HOME:
        return ONE
    if f"{HOME}_{quote}" in symbols:
        return (ONE / price_of(f"{HOME}_{quote}")).quantize(FACTOR_PLACES, ROUND_HALF_EVEN)
    if f"{quote}_{HOME}" in symbols:
        return price_of(f"{quote}_{HOME}")
    raise ValueError(f"no pair converts {quote} into {HOME}")


def money(amount: Decimal) -> Decimal:
    """Account money to OANDA's 4 places."""
    return amount.quantize(MONEY_PLACES, ROUND_HALF_EVEN)


def _prices(order: OrderRequest) -> Iterable[Decimal]:
    candidates = (order.limit_price, order.stop_price, order.take_profit, order.stop_loss)
    return [p for p in candidates if p is not None]


def check_order(spec: FxSpec, order: OrderRequest, enforce_precision: bool) -> None:
    """Units on the pair's precision within its minimum and maximum; prices within its
    display precision (off it: Reason.OFF_TICK)."""
    units = order.quantity
    if units % spec.units_step != 0:
        raise refusal(Reason.INVALID_QUANTITY, f"units {units} exceed the units precision")
    if units < spec.minimum_trade_size:
        raise refusal(Reason.INVALID_QUANTITY, f"units {units} below the minimum trade size "
                      f"{spec.minimum_trade_size}")  # fmt: skip
    if units > spec.maximum_order_units:
        raise refusal(Reason.INVALID_QUANTITY, f"units {units} above the maximum order units "
                      f"{spec.maximum_order_units}")  # fmt: skip
    if enforce_precision and any(p % spec.tick != 0 for p in _prices(order)):
        raise refusal(Reason.OFF_TICK, f"a price has more precision than {spec.tick}")


def without_prices(order: OrderRequest) -> OrderRequest:
    """The order with its prices hidden from the equity tick rule (FX has its own)."""
    return order.model_copy(
        update={"limit_price": None, "stop_price": None, "take_profit": None, "stop_loss": None}
    )


def fx_step(seed: int, symbol: str, step: int, current: Decimal, reference: Decimal,
            tick: Decimal, sigma: float = FX_SIGMA) -> Tick:  # fmt: skip
    """One mean-reverting step on the pair's own price grid, never below one tick."""
    rng = random.Random(f"{seed}|{symbol}|{step}")
    ref = float(reference)
    x = float(current) + DEFAULT_THETA * (ref - float(current)) + sigma * ref * rng.gauss(0, 1)
    price = Decimal(repr(round(max(x, 0.0), 9))).quantize(tick, ROUND_HALF_EVEN)
    return Tick(price=max(price, tick), volume=FX_VOLUME)


class FxAwareSource:
    """Pairs walk on their own grid with deep volume; everything else as the inner source."""

    def __init__(self, inner: PriceSource, seed: int, instruments: Callable[[str], Instrument]):
        self._inner = inner
        self._seed = seed
        self._instrument = instruments

    def _fx(self, symbol: str) -> Instrument | None:
        try:
            found = self._instrument(symbol)
        except OrderRejected:
            return None
        return found if found.fx is not None else None

    def initial(self, symbol: str) -> Tick | None:
        pair = self._fx(symbol)
        if pair is None:
            return self._inner.initial(symbol)
        return Tick(pair.reference_price, FX_VOLUME)

    def next_tick(self, symbol: str, step: int, current: Decimal) -> Tick | None:
        pair = self._fx(symbol)
        if pair is None or pair.fx is None:
            return self._inner.next_tick(symbol, step, current)
        return fx_step(self._seed, symbol, step, current, pair.reference_price, pair.fx.tick)
