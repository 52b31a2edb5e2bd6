"""Pre-trade risk limits over the account as the venue reports it at decision time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from functools import cached_property

from agents.decisions.config import RiskSettings
from agents.decisions.instruments import EXACT, InstrumentBook
from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.sizing import Sizing
from agents.decisions.validation import ensure_utc
from brokers.port import AccountSnapshot, OrderReport, Position
from schemas.events import OrderLeg, Side, Signal

ZERO = Decimal(0)
SATURDAY = 5


@dataclass(frozen=True)
class LimitContext:
    """Everything the limits look at, read once from the venue by the caller."""

    signal: Signal
    sizing: Sizing
    account: AccountSnapshot
    positions: Sequence[Position]
    open_orders: Sequence[OrderReport]
    recent_order_count: int
    now: datetime
    settings: RiskSettings
    instruments: InstrumentBook

    @property
    def symbol(self) -> str:
        """The symbol this order is for."""
        return self.signal.symbol

    @property
    def order_value(self) -> Decimal:
        """This order's value, as sizing computed it (quantity x entry)."""
        return self.sizing.figures.position_value

    def pending_entries(self) -> list[OrderReport]:
        """Working entry orders; their exits (take-profit/stop) only ever reduce exposure."""
        return self._pending_entries

    @cached_property
    def _pending_entries(self) -> list[OrderReport]:
        # found once per decision: every limit asks, and the open orders are the day's
        return working_entries(self.open_orders)

    def held_symbols(self) -> set[str]:
        """Symbols with a position or a pending entry: both will be positions."""
        held = {p.symbol for p in self.positions if p.quantity != 0}
        return held | {o.symbol for o in self.pending_entries()}

    def marks(self) -> dict[str, Decimal]:
        """Last known prices per symbol, to value market orders that carry no price."""
        return {p.symbol: p.market_price for p in self.positions}

    def exposure(self, symbols: Callable[[str], bool]) -> tuple[Decimal, Decimal]:
        """Gross (position value, pending order value) over the symbols selected."""
        held = sum((abs(p.market_value) for p in self.positions if symbols(p.symbol)), ZERO)
        marks = self.marks()
        pending = sum(
            (_order_value(o, marks) for o in self.pending_entries() if symbols(o.symbol)), ZERO
        )
        return held, pending


def working_entries(orders: Iterable[OrderReport]) -> list[OrderReport]:
    """The entry orders still working: all the limits count (an exit only ever reduces
    exposure)."""
    return [o for o in orders if o.leg is OrderLeg.ENTRY and not o.status.is_terminal]


def _order_value(order: OrderReport, marks: dict[str, Decimal]) -> Decimal:
    """Unfilled value of a working order; a priceless market order uses the mark, if known."""
    price = order.limit_price or order.stop_price or marks.get(order.symbol) or ZERO
    return abs(order.quantity - order.filled_quantity) * price


def check_trading_window(ctx: LimitContext) -> Refusal | None:
    """Orders only inside the configured local trading window (and on weekdays)."""
    window, settings = ctx.settings.trading_window, ctx.settings
    if window is None:
        return None
    local = ctx.now.astimezone(settings.zone)
    weekend = settings.trading_weekdays_only and local.weekday() >= SATURDAY
    if not weekend and window.contains(local.time()):
        return None
    return Refusal.of(
        ReasonCode.OUTSIDE_TRADING_WINDOW,
        f"{local:%a %H:%M} {settings.trading_window_tz} is outside the trading window "
        f"{window}" + (" (weekend)" if weekend else ""),
        "risk",
        local_time=local.isoformat(),
        window=window,
        time_zone=settings.trading_window_tz,
        weekdays_only=settings.trading_weekdays_only,
    )


def check_order_rate(ctx: LimitContext) -> Refusal | None:
    """A burst of orders usually means a runaway loop upstream; stop it."""
    limit = ctx.settings.max_orders_per_minute
    if ctx.recent_order_count < limit:
        return None
    return Refusal.of(
        ReasonCode.ORDER_RATE_LIMIT,
        f"{ctx.recent_order_count} orders in the last minute reach MAX_ORDERS_PER_MINUTE {limit}",
        "risk",
        recent_order_count=ctx.recent_order_count,
        max_orders_per_minute=limit,
    )


def check_daily_loss(ctx: LimitContext) -> Refusal | None:
    """After losing MAX_DAILY_LOSS (realized today + unrealized), stop adding risk."""
    limit = ctx.settings.max_daily_loss
    realized, unrealized = ctx.account.realized_pnl_today, ctx.account.unrealized_pnl
    pnl = realized + unrealized
    if limit is None or pnl > -limit:
        return None
    return Refusal.of(
        ReasonCode.MAX_DAILY_LOSS,
        f"today's P&L {pnl} has reached the MAX_DAILY_LOSS of {limit}",
        "risk",
        pnl=pnl,
        realized_pnl_today=realized,
        unrealized_pnl=unrealized,
        max_daily_loss=limit,
    )


def check_shorting(ctx: LimitContext) -> Refusal | None:
    """A SELL beyond the shares held is a short sale, which this account may not make."""
    if ctx.signal.side is not Side.SELL or ctx.account.shorting_enabled:
        return None
    long_held = sum((p.quantity for p in ctx.positions if p.symbol == ctx.symbol), ZERO)
    if long_held >= ctx.sizing.quantity:
        return None
    return Refusal.of(
        ReasonCode.SHORTING_DISABLED,
        f"SELL {ctx.sizing.quantity} {ctx.symbol} would open a short and account "
        f"{ctx.account.account_id} has shorting disabled",
        "risk",
        quantity=ctx.sizing.quantity,
        held=long_held,
        account_id=ctx.account.account_id,
    )


def check_same_symbol(ctx: LimitContext) -> Refusal | None:
    """One position per symbol unless ALLOW_SAME_SYMBOL_POSITION: no silent doubling up."""
    if ctx.settings.allow_same_symbol_position or ctx.symbol not in ctx.held_symbols():
        return None
    held = sum((p.quantity for p in ctx.positions if p.symbol == ctx.symbol), ZERO)
    pending = len([o for o in ctx.pending_entries() if o.symbol == ctx.symbol])
    return Refusal.of(
        ReasonCode.SAME_SYMBOL_POSITION,
        f"{ctx.symbol} already has a position ({held}) or a pending entry ({pending} orders)",
        "risk",
        symbol=ctx.symbol,
        position_quantity=held,
        pending_entries=pending,
    )


def check_open_positions(ctx: LimitContext) -> Refusal | None:
    """Cap how many symbols are at risk at once, pending entries included."""
    held = ctx.held_symbols()
    count = len(held | {ctx.symbol})
    limit = ctx.settings.max_open_positions
    if count <= limit:
        return None
    return Refusal.of(
        ReasonCode.MAX_OPEN_POSITIONS,
        f"{len(held)} open positions/pending entries; one more would exceed "
        f"MAX_OPEN_POSITIONS {limit}",
        "risk",
        open_positions=len(held),
        max_open_positions=limit,
    )


def _exposure_refusal(
    ctx: LimitContext,
    code: ReasonCode,
    setting: str,
    pct: Decimal,
    selected: Callable[[str], bool],
    **extra: object,
) -> Refusal | None:
    """Refuse when held + pending + this order would exceed pct of equity."""
    held, pending = ctx.exposure(selected)
    total = held + pending + ctx.order_value
    limit = ctx.account.equity * pct
    if total <= limit:
        return None
    scope = " ".join(f"{v}" for v in extra.values()) or "gross"
    return Refusal.of(
        code,
        f"{scope} exposure {total} would exceed {setting} {pct} of equity ({limit})",
        "risk",
        **extra,
        positions_value=held,
        open_orders_value=pending,
        order_value=ctx.order_value,
        total=total,
        limit=limit,
        equity=ctx.account.equity,
        **{setting.lower(): pct},
    )


def check_gross_exposure(ctx: LimitContext) -> Refusal | None:
    """Everything held and working plus this order stays within a fraction of equity."""
    return _exposure_refusal(
        ctx,
        ReasonCode.MAX_GROSS_EXPOSURE,
        "MAX_GROSS_EXPOSURE_PCT",
        ctx.settings.max_gross_exposure_pct,
        lambda _symbol: True,
    )


def check_symbol_exposure(ctx: LimitContext) -> Refusal | None:
    """One symbol's total exposure stays within a fraction of equity."""
    return _exposure_refusal(
        ctx,
        ReasonCode.MAX_SYMBOL_EXPOSURE,
        "MAX_SYMBOL_EXPOSURE_PCT",
        ctx.settings.max_symbol_exposure_pct,
        lambda symbol: symbol == ctx.symbol,
        symbol=ctx.symbol,
    )


def check_group_exposure(ctx: LimitContext) -> Refusal | None:
    """Correlation guard: one sector/group stays within a fraction of equity."""
    group = ctx.instruments.group_of(ctx.symbol)
    if group is None:
        return None
    return _exposure_refusal(
        ctx,
        ReasonCode.MAX_GROUP_EXPOSURE,
        "MAX_GROUP_EXPOSURE_PCT",
        ctx.settings.max_group_exposure_pct,
        lambda symbol: ctx.instruments.group_of(symbol) == group,
        group=group,
    )


LIMITS: tuple[Callable[[LimitContext], Refusal | None], ...] = (
    check_trading_window,
    check_order_rate,
    check_daily_loss,
    check_shorting,
    check_same_symbol,
    check_open_positions,
    check_gross_exposure,
    check_symbol_exposure,
    check_group_exposure,
)


def check_limits(
    signal: Signal,
    sizing: Sizing,
    account: AccountSnapshot,
    positions: Iterable[Position],
    open_orders: Iterable[OrderReport],
    recent_order_count: int,
    now: datetime,
    settings: RiskSettings,
    instruments: InstrumentBook | None = None,
) -> Refusal | None:
    """The first limit this order would break, in a fixed order, or None."""
    ctx = LimitContext(
        signal=signal,
        sizing=sizing,
        account=account,
        positions=tuple(positions),
        open_orders=tuple(open_orders),
        recent_order_count=recent_order_count,
        now=ensure_utc(now),
        settings=settings,
        instruments=InstrumentBook.from_settings(settings) if instruments is None else instruments,
    )
    with localcontext(EXACT):
        for limit in LIMITS:
            refusal = limit(ctx)
            if refusal is not None:
                return refusal
    return None
