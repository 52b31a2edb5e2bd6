"""Risk-based position sizing: risk a fixed fraction of equity, then apply every cap, exactly."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from agents.decisions.config import RiskSettings
from agents.decisions.instruments import EXACT, Instrument, PriceRounding, exact_ratio
from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.validation import loss_side, price_refusal, reward_risk
from brokers.port import AccountKind, AccountSnapshot
from schemas.events import OrderType, Side, Signal, SizingBound, SizingFigures

ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True)
class Prices:
    """The signal's prices moved onto the tick grid, each in its safe direction."""

    entry: Decimal  # limit never worse: BUY down, SELL up
    stop_loss: Decimal  # toward entry: never more loss than the signal accepted
    take_profit: Decimal | None  # away from entry: never a worse exit than the signal's


@dataclass(frozen=True)
class Sizing:
    """A sized order: quantity, entry type and price, bracket exits, and how it was reached."""

    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    stop_loss: Decimal
    take_profit: Decimal | None
    figures: SizingFigures


def tick_prices(signal: Signal, instrument: Instrument) -> Prices:
    """Tick-round entry and exits so none is worse for us than the signal's own price."""
    toward_entry = PriceRounding.UP if signal.side is Side.BUY else PriceRounding.DOWN
    tp = signal.take_profit
    return Prices(
        entry=instrument.round_price(signal.entry_price, signal.side),
        stop_loss=instrument.round_price(signal.stop_loss, toward_entry),
        take_profit=None if tp is None else instrument.round_price(tp, toward_entry),
    )


def _units(amount: Decimal, unit_cost: Decimal, step: Decimal) -> Decimal:
    """How many whole steps of unit_cost fit in amount (exact integer division)."""
    if amount <= 0:
        return ZERO
    return EXACT.divide_int(amount, EXACT.multiply(unit_cost, step)) * step


def _caps(
    signal: Signal,
    account: AccountSnapshot,
    step: Decimal,
    cap_price: Decimal,
    settings: RiskSettings,
    instrument: Instrument | None = None,
) -> list[tuple[SizingBound, Decimal]]:
    """Every quantity ceiling, the risk budget first so it wins ties. A pair quoted in another
    currency than the account's converts its per-unit loss and value with the venue's factor."""
    stop_distance = abs(signal.entry_price - signal.stop_loss)
    if instrument is not None:
        stop_distance = instrument.in_account_currency(stop_distance)
        cap_price = instrument.in_account_currency(cap_price)
    caps = [
        (SizingBound.RISK, _units(account.equity * settings.risk_per_trade, stop_distance, step)),
        (
            SizingBound.POSITION_PCT,
            _units(account.equity * settings.max_position_pct, cap_price, step),
        ),
    ]
    if settings.max_position_size is not None:
        caps.append((SizingBound.MAX_POSITION_SIZE, _units(settings.max_position_size, ONE, step)))
    if settings.max_order_notional is not None:
        caps.append(
            (SizingBound.MAX_ORDER_NOTIONAL, _units(settings.max_order_notional, cap_price, step))
        )
    caps.append((SizingBound.BUYING_POWER, _units(account.buying_power, cap_price, step)))
    return caps


def _live_ramp(
    quantity: Decimal,
    bound: SizingBound,
    step: Decimal,
    cap_price: Decimal,
    settings: RiskSettings,
) -> tuple[Decimal, SizingBound, Decimal]:
    """Live accounts start small: scale the quantity down, then cap its value."""
    scale = settings.live_ramp_factor
    scaled = _units(quantity * scale, ONE, step)
    live_cap = _units(settings.live_max_order_notional, cap_price, step)
    if live_cap < scaled:
        return live_cap, SizingBound.LIVE_NOTIONAL_CAP, scale
    return scaled, bound, scale


def _too_small(
    quantity: Decimal,
    uncapped: Decimal,
    bound: SizingBound,
    signal: Signal,
    account: AccountSnapshot,
    settings: RiskSettings,
) -> Refusal:
    """Below the minimum the order is not worth sending; say which cap shrank it."""
    return Refusal.of(
        ReasonCode.POSITION_TOO_SMALL,
        f"sized quantity {quantity} {signal.symbol} (bound by {bound}) is below "
        f"MIN_POSITION_SIZE {settings.min_position_size}",
        "sizing",
        quantity=quantity,
        min_position_size=settings.min_position_size,
        bound_by=bound,
        uncapped_quantity=uncapped,
        equity=account.equity,
        buying_power=account.buying_power,
        entry_price=signal.entry_price,
        stop_distance=abs(signal.entry_price - signal.stop_loss),
        risk_amount=account.equity * settings.risk_per_trade,
    )


def _precheck(signal: Signal, account: AccountSnapshot) -> Refusal | None:
    """Sizing needs sane prices (validation guarantees them) and positive equity."""
    refusal = price_refusal(signal)
    if refusal is not None or account.equity > 0:
        return refusal
    return Refusal.of(
        ReasonCode.NO_EQUITY,
        f"account {account.account_id} has no equity to risk",
        "sizing",
        equity=account.equity,
        account_id=account.account_id,
    )


def _stop_within_tick(signal: Signal, prices: Prices) -> Refusal | None:
    """A stop that rounds onto the entry would trigger at once: no room to size against."""
    if loss_side(signal.side, prices.entry, prices.stop_loss):
        return None
    return Refusal.of(
        ReasonCode.STOP_WITHIN_TICK,
        f"stop_loss {signal.stop_loss} rounds onto the entry {prices.entry}; "
        "it must be at least one tick away",
        "sizing",
        entry_price=signal.entry_price,
        stop_loss=signal.stop_loss,
        rounded_entry=prices.entry,
        rounded_stop=prices.stop_loss,
    )


def size_position(
    signal: Signal, account: AccountSnapshot, instrument: Instrument, settings: RiskSettings
) -> Sizing | Refusal:
    """Risk RISK_PER_TRADE of equity to the stop, bounded by every cap, rounded down to lot."""
    refusal = _precheck(signal, account)
    if refusal is not None:
        return refusal
    with localcontext(EXACT):
        prices = tick_prices(signal, instrument)
        return _stop_within_tick(signal, prices) or _size(
            signal, account, instrument, settings, prices
        )


def _size(
    signal: Signal,
    account: AccountSnapshot,
    instrument: Instrument,
    settings: RiskSettings,
    prices: Prices,
) -> Sizing | Refusal:
    """Take the smallest cap, ramp live accounts, refuse if too small."""
    step = instrument.qty_step
    cap_price = max(signal.entry_price, prices.entry)
    caps = _caps(signal, account, step, cap_price, settings, instrument)
    bound, quantity = min(caps, key=lambda c: c[1])
    quantity, bound = _within_instrument(quantity, bound, instrument)
    scale = ONE
    if account.kind is AccountKind.LIVE:
        quantity, bound, scale = _live_ramp(quantity, bound, step, cap_price, settings)
    uncapped = caps[0][1]
    minimum = max(settings.min_position_size, instrument.min_quantity or ZERO)
    if quantity <= 0 or quantity < minimum:
        return _too_small(quantity, uncapped, bound, signal, account, settings)
    figures = _figures(signal, account, settings, quantity, bound, uncapped, scale, instrument)
    return Sizing(
        quantity=quantity,
        order_type=settings.order_type,
        limit_price=prices.entry if settings.order_type is OrderType.LMT else None,
        stop_loss=prices.stop_loss,
        take_profit=prices.take_profit,
        figures=figures,
    )


def _within_instrument(
    quantity: Decimal, bound: SizingBound, instrument: Instrument
) -> tuple[Decimal, SizingBound]:
    """No more than the instrument's maximum order size (OANDA maximumOrderUnits)."""
    if instrument.max_quantity is None or quantity <= instrument.max_quantity:
        return quantity, bound
    return instrument.round_qty(instrument.max_quantity), SizingBound.MAX_POSITION_SIZE


def _figures(
    signal: Signal,
    account: AccountSnapshot,
    settings: RiskSettings,
    quantity: Decimal,
    bound: SizingBound,
    uncapped: Decimal,
    scale: Decimal,
    instrument: Instrument | None = None,
) -> SizingFigures:
    """The numbers that explain the quantity; risk is what the order actually takes, in the
    account currency (stop_distance stays in the instrument's price units)."""
    stop_distance = abs(signal.entry_price - signal.stop_loss)
    convert = instrument.in_account_currency if instrument is not None else (lambda x: x)
    risk_amount = convert(quantity * stop_distance)
    return SizingFigures(
        equity=account.equity,
        buying_power=account.buying_power,
        risk_per_trade=settings.risk_per_trade,
        stop_distance=stop_distance,
        risk_amount=risk_amount,
        risk_percent=exact_ratio(risk_amount, account.equity),
        position_value=convert(quantity * signal.entry_price),
        rr_ratio=reward_risk(signal),
        bound_by=bound,
        uncapped_quantity=uncapped,
        scale=scale,
    )
