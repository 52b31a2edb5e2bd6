"""Instrument specs (lot, tick, fractional, class, group) and exact tick/lot rounding."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, Inexact, localcontext
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from brokers.port import InstrumentRules
from schemas.events import Side

if TYPE_CHECKING:
    from agents.decisions.config import RiskSettings

# Enough digits that price and quantity arithmetic never rounds.
EXACT = Context(prec=60)

ONE = Decimal(1)
PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")


class AssetClass(StrEnum):
    """What kind of instrument; informational, and a default group for exposure limits."""

    EQUITY = "equity"
    ETF = "etf"
    OPTION = "option"
    FUTURE = "future"
    FX = "fx"
    CRYPTO = "crypto"


class PriceRounding(StrEnum):
    """Which way to move a price that is off the tick grid."""

    DOWN = "down"
    UP = "up"


class Instrument(BaseModel):
    """How one symbol trades; the defaults are a US equity (lot 1, Rule 612 ticks)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = ""
    lot_size: Decimal = Field(default=ONE, gt=0, description="Whole-order quantity step.")
    tick_size: Decimal | None = Field(
        default=None,
        gt=0,
        description="Fixed price step; empty = SEC Rule 612 (0.01 at/above 1.00, else 0.0001).",
    )
    fractional: bool = Field(default=False, description="Whether fractional quantities trade.")
    fraction_step: Decimal = Field(
        default=SUB_PENNY, gt=0, description="Quantity step when fractional is true."
    )
    asset_class: AssetClass = AssetClass.EQUITY
    group: str | None = Field(default=None, description="Sector/correlation group for limits.")
    min_quantity: Decimal | None = Field(default=None, gt=0, description="Smallest order size.")
    max_quantity: Decimal | None = Field(default=None, gt=0, description="Largest order size.")
    home_conversion: Decimal = Field(
        default=ONE,
        gt=0,
        description="Account-currency value of one unit of the price's currency (a pair's "
        "quote currency): the venue's own conversion factor (OANDA homeConversions "
        "accountLoss), read at decision time; 1 when the price is in the account currency.",
    )

    @property
    def qty_step(self) -> Decimal:
        """The smallest quantity increment an order may use."""
        return self.fraction_step if self.fractional else self.lot_size

    def tick_for(self, price: Decimal) -> Decimal:
        """The tick that applies at this price level."""
        if self.tick_size is not None:
            return self.tick_size
        return rule_612_tick(price)

    def round_price(self, price: Decimal, direction: Side | PriceRounding) -> Decimal:
        """Round a price onto this instrument's tick grid in the given direction."""
        return round_price_to_tick(price, direction, self.tick_size)

    def in_account_currency(self, amount: Decimal) -> Decimal:
        """A per-unit price difference or value converted to the account currency."""
        return amount if self.home_conversion == ONE else amount * self.home_conversion

    def round_qty(self, qty: Decimal) -> Decimal:
        """Round a quantity down to this instrument's step (never up: never more risk)."""
        return round_qty_down(qty, self.qty_step)


def exact_ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """A quotient that is exact when it terminates, else rounded to 10 decimal places."""
    context = EXACT.copy()
    context.clear_flags()
    quotient = context.divide(numerator, denominator)
    if not context.flags[Inexact]:
        return quotient
    return quotient.quantize(Decimal("1e-10"), context=context)


def rule_612_tick(price: Decimal) -> Decimal:
    """US equities quote in pennies at/above 1.00 and in 0.0001 below (SEC Rule 612)."""
    return PENNY if price >= ONE else SUB_PENNY


def _direction(direction: Side | PriceRounding) -> PriceRounding:
    """A BUY limit rounds down and a SELL limit up, so the limit is never worse."""
    if isinstance(direction, Side):
        return PriceRounding.DOWN if direction is Side.BUY else PriceRounding.UP
    return direction


def _snap(price: Decimal, tick: Decimal, rounding: PriceRounding) -> Decimal:
    """Move a price to a multiple of tick, exactly, keeping the tick's exponent."""
    mode = ROUND_FLOOR if rounding is PriceRounding.DOWN else ROUND_CEILING
    with localcontext(EXACT):
        steps = (price / tick).to_integral_value(rounding=mode)
        return (steps * tick).quantize(tick)


def round_price_to_tick(
    price: Decimal, direction: Side | PriceRounding, tick_size: Decimal | None = None
) -> Decimal:
    """Round onto the tick grid (fixed tick, or Rule 612 when tick_size is None)."""
    rounding = _direction(direction)
    if tick_size is not None:
        return _snap(price, tick_size, rounding)
    snapped = _snap(price, rule_612_tick(price), rounding)
    if snapped >= ONE:
        # Crossing up to 1.0000 lands on the penny grid too; show it with penny exponent.
        return _snap(snapped, PENNY, rounding)
    return snapped


def round_qty_down(qty: Decimal, lot: Decimal) -> Decimal:
    """The largest multiple of lot not above qty (zero for anything below one lot)."""
    if lot <= 0:
        raise ValueError(f"lot size must be positive; got {lot}")
    if qty <= 0:
        return Decimal(0)
    with localcontext(EXACT):
        return (qty / lot).to_integral_value(rounding=ROUND_FLOOR) * lot


class InstrumentBook:
    """Symbol -> Instrument with US-equity defaults, plus the symbol -> group map."""

    def __init__(
        self,
        overrides: Mapping[str, Instrument] | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self._overrides = {k.upper(): v for k, v in (overrides or {}).items()}
        self._groups = {k.upper(): v for k, v in (groups or {}).items()}

    @classmethod
    def from_settings(cls, settings: RiskSettings) -> InstrumentBook:
        """The book configured by INSTRUMENTS and SYMBOL_GROUPS."""
        return cls(settings.instruments, settings.symbol_groups)

    @classmethod
    def coerce(
        cls, value: InstrumentBook | Mapping[str, Instrument] | None, settings: RiskSettings
    ) -> InstrumentBook:
        """Accept a book, a plain mapping (merged over the settings' groups) or nothing."""
        if isinstance(value, InstrumentBook):
            return value
        if value is None:
            return cls.from_settings(settings)
        merged = {**settings.instruments, **value}
        return cls(merged, settings.symbol_groups)

    def get(self, symbol: str) -> Instrument:
        """The spec for a symbol: its override, else the US-equity default."""
        key = symbol.upper()
        spec = self._overrides.get(key) or Instrument()
        group = spec.group or self._groups.get(key)
        return spec.model_copy(update={"symbol": key, "group": group})

    def group_of(self, symbol: str) -> str | None:
        """The configured exposure group of a symbol, if any."""
        return self.get(symbol).group


def with_venue_rules(spec: Instrument, rules: InstrumentRules | None) -> Instrument:
    """The configured spec with what the venue publishes laid over it: where the venue says
    how an instrument trades, it wins (it would refuse anything else); the rest stays as
    configured."""
    if rules is None:
        return spec
    update: dict[str, object] = {}
    for name in ("lot_size", "tick_size", "min_quantity", "max_quantity", "home_conversion"):
        value = getattr(rules, name)
        if value is not None:
            update[name] = value
    if rules.fractional is not None:
        update["fractional"] = rules.fractional
    if rules.quantity_increment is not None:
        update["fraction_step"] = rules.quantity_increment
    return spec.model_copy(update=update) if update else spec
