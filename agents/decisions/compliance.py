"""Pre-trade compliance: the rules a US desk or its broker enforces, checked before an order.

Pure: the caller (the sizing stage) reads the venue and passes everything in. Each check
returns a Refusal with its own reason code and a sentence a trader understands, or None:

- restricted symbols: RESTRICTED_SYMBOLS may not trade at all;
- market hours: the instrument's exchange calendar (exchange_calendars: sessions, early
  closes, holidays) must be open now, and today not an unscheduled closure the library does
  not know yet (MARKET_EXTRA_CLOSURES);
- short sales: a SELL beyond the long held is a short, refused when the venue marks the
  instrument not shortable, or it is hard to borrow or under a short sale restriction;
- self-cross: an order that could trade against the account's own resting order in the same
  symbol (wash-trade prevention);
- pattern day trader: an account under PDT_EQUITY_THRESHOLD may not make a day trade beyond
  PDT_MAX_DAY_TRADES in five business days (PDT_CALENDAR's sessions, less the days
  MARKET_EXTRA_CLOSURES closes). The count comes from the account's fills since
  `pdt_window_start(now, settings)`, which the stage reads from the venue (`fills_since`).

A day trade here is a same-day round trip in one symbol: within one trade day (the exchange
date, or for a fill made when the exchange has no session, the next session), each fill
on the closing side that follows a fill on the opening side (the side of the day's first
fill) counts once, so BUY, SELL is one; BUY, SELL, BUY, SELL two; BUY, BUY, SELL one (FINRA
4210's counting). Without the position carried into the day this can count a sale of an
overnight holding followed by a buy-back as a day trade: the conservative way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from agents.decisions.config import RiskSettings
from agents.decisions.instruments import AssetClass
from agents.decisions.reasons import ReasonCode, Refusal, Stage
from agents.decisions.validation import ensure_utc
from brokers.port import AccountSnapshot, FillReport, InstrumentRules, OrderReport, Position
from schemas.events import OrderIntent, OrderType, Side

if TYPE_CHECKING:
    from exchange_calendars import ExchangeCalendar

ZERO = Decimal(0)
STAGE: Stage = "compliance"
PDT_BUSINESS_DAYS = 5
PDT_ASSET_CLASSES = frozenset({AssetClass.EQUITY, AssetClass.ETF, AssetClass.OPTION})
# Orders priced by a limit; a stop (without limit) does not rest on the book until triggered.
_LIMIT_TYPES = frozenset({OrderType.LMT, OrderType.STP_LMT})
R = ReasonCode


@lru_cache(maxsize=32)
def calendar(name: str) -> ExchangeCalendar:
    """An exchange calendar by its exchange_calendars code, built once per process."""
    import exchange_calendars  # pandas-heavy: only processes that check hours load it

    with quiet_pandas():
        return exchange_calendars.get_calendar(name)


@contextmanager
def quiet_pandas() -> Iterator[None]:
    """exchange_calendars still uses APIs pandas 3.1 deprecates; its warnings are not ours."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="pandas")
        yield


@dataclass(frozen=True)
class ComplianceContext:
    """One decided order and what the venue said about the account when it was decided."""

    intent: OrderIntent
    account: AccountSnapshot
    positions: Sequence[Position]
    open_orders: Sequence[OrderReport]
    fills: Sequence[FillReport]
    rules: InstrumentRules | None
    asset_class: AssetClass
    now: datetime
    settings: RiskSettings

    @property
    def symbol(self) -> str:
        return self.intent.symbol

    @property
    def side(self) -> Side:
        return self.intent.side

    def long_held(self) -> Decimal:
        """The signed quantity held in this symbol (negative when already short)."""
        return sum((p.quantity for p in self.positions if p.symbol == self.symbol), ZERO)

    def is_short_sale(self) -> bool:
        """A SELL of more than the long position opens or extends a short."""
        return self.side is Side.SELL and self.intent.quantity > self.long_held()


def calendar_name(symbol: str, venue: str, settings: RiskSettings) -> str:
    """The calendar that governs this symbol on this venue ('' = no market-hours check)."""
    return (settings.symbol_calendars.get(symbol.upper())
            or settings.venue_calendars.get(venue)
            or settings.market_calendar)


def check_restricted(ctx: ComplianceContext) -> Refusal | None:
    """The desk's restricted list: no order, whatever the side."""
    if ctx.symbol.upper() not in ctx.settings.restricted_symbols:
        return None
    return Refusal.of(
        R.SYMBOL_RESTRICTED,
        f"{ctx.symbol} is on the restricted list (RESTRICTED_SYMBOLS): compliance does not "
        f"allow {ctx.side} orders in it",
        STAGE, symbol=ctx.symbol, side=ctx.side)


@dataclass(frozen=True)
class Closed:
    """Why a market is closed; `holiday` names the day when it is a holiday (scheduled, or an
    unscheduled closure from MARKET_EXTRA_CLOSURES)."""

    why: str
    holiday: str | None = None


def market_closed(name: str, now: datetime, closures: Iterable[str] = ()) -> str | None:
    """Why the market of calendar `name` is closed at `now`, or None when it is open."""
    closed = market_closure(name, now, closures)
    return None if closed is None else closed.why


def market_closure(name: str, now: datetime, closures: Iterable[str] = ()) -> Closed | None:
    """`market_closed` with the holiday named; `closures`: MARKET_EXTRA_CLOSURES entries."""
    with quiet_pandas():
        return _market_closed(name, now, tuple(closures))


def extra_closure(name: str, day: date, closures: Iterable[str]) -> bool:
    """Whether MARKET_EXTRA_CLOSURES closes calendar `name` (or an alias of it) all `day`."""
    for entry in closures:
        which, _, when = entry.rpartition(":")
        if when != day.isoformat():
            continue
        if not which or which == name or calendar(which).name == calendar(name).name:
            return True
    return False


def _market_closed(name: str, now: datetime, closures: tuple[str, ...]) -> Closed | None:
    import pandas as pd

    cal = calendar(name)
    minute = pd.Timestamp(now).floor("min")
    if not cal.first_minute <= minute <= cal.last_minute:
        return Closed(f"the {name} calendar has no sessions around {now:%Y-%m-%d}")
    local = now.astimezone(ZoneInfo(str(cal.tz)))
    if extra_closure(name, local.date(), closures):
        holiday = "unscheduled closure (MARKET_EXTRA_CLOSURES)"
        return Closed(f"{local:%a %Y-%m-%d} is an exchange holiday on {name}: an {holiday}",
                      holiday)
    if cal.is_open_on_minute(minute, ignore_breaks=False):
        return None
    today = pd.Timestamp(local.date())
    if local.weekday() < 5 and not cal.is_session(today):
        holiday = _holiday_name(cal, today)
        named = f" ({holiday})" if holiday != "holiday" else ""
        return Closed(f"{local:%a %Y-%m-%d} is an exchange holiday on {name}{named}", holiday)
    if cal.is_session(today):
        opens, closes = cal.session_open(today), cal.session_close(today)
        return Closed(f"{local:%a %H:%M} {cal.tz} is outside today's {name} session "
                      f"{opens.tz_convert(cal.tz):%H:%M}-{closes.tz_convert(cal.tz):%H:%M}")
    return Closed(f"{local:%a %Y-%m-%d} is not a trading day on {name}")


def _holiday_name(cal: ExchangeCalendar, day: Any) -> str:
    """The calendar's name for the holiday (e.g. 'Christmas'), else 'holiday'."""
    rules = cal.regular_holidays
    if rules is None:
        return "holiday"
    named = rules.holidays(day, day, return_name=True)
    return str(named.iloc[0]) if len(named) else "holiday"


def check_market_hours(ctx: ComplianceContext) -> Refusal | None:
    """Orders only while the instrument's exchange is in session (holidays and early closes
    from the calendar library, not a hand-written list; unscheduled closures the library
    does not know yet from MARKET_EXTRA_CLOSURES)."""
    name = calendar_name(ctx.symbol, ctx.intent.venue, ctx.settings)
    if not name:
        return None
    closed = market_closure(name, ctx.now, ctx.settings.market_extra_closures)
    if closed is None:
        return None
    holiday = {} if closed.holiday is None else {"holiday": closed.holiday}
    return Refusal.of(
        R.MARKET_CLOSED, f"the market for {ctx.symbol} is closed: {closed.why}", STAGE,
        symbol=ctx.symbol, calendar=name, at=ctx.now.isoformat(), **holiday)


def ssr_applies(symbol: str, entries: Iterable[str], day: date) -> bool:
    """SSR_SYMBOLS entries: SYMBOL (always) or SYMBOL@YYYY-MM-DD (that exchange date)."""
    for entry in entries:
        name, _, when = entry.partition("@")
        if name == symbol.upper() and (not when or when == day.isoformat()):
            return True
    return False


def check_short_sale(ctx: ComplianceContext) -> Refusal | None:
    """A short sale needs shares to borrow and no short sale restriction."""
    settings = ctx.settings
    if not settings.short_sale_check or not ctx.is_short_sale():
        return None
    held, qty = ctx.long_held(), ctx.intent.quantity
    facts: dict[str, Any] = {"symbol": ctx.symbol, "quantity": qty, "held": held}
    shortable = None if ctx.rules is None else ctx.rules.shortable
    if shortable is False or (shortable is None and settings.shortable_required):
        said = "marks it not shortable" if shortable is False else "does not say it is shortable"
        return Refusal.of(
            R.SHORT_NOT_SHORTABLE,
            f"SELL {qty} {ctx.symbol} would sell short (held {held}) and {ctx.intent.venue} "
            f"{said}: there are no shares to borrow", STAGE, **facts, venue=ctx.intent.venue)
    if ctx.symbol.upper() in settings.hard_to_borrow_symbols:
        return Refusal.of(
            R.SHORT_HARD_TO_BORROW,
            f"SELL {qty} {ctx.symbol} would sell short (held {held}) and {ctx.symbol} is hard "
            "to borrow (HARD_TO_BORROW_SYMBOLS)", STAGE, **facts)
    day = ctx.now.astimezone(ZoneInfo("America/New_York")).date()
    if ssr_applies(ctx.symbol, settings.ssr_symbols, day):
        return Refusal.of(
            R.SHORT_SALE_RESTRICTED,
            f"SELL {qty} {ctx.symbol} would sell short (held {held}) and {ctx.symbol} is under "
            f"a short sale restriction on {day} (SSR_SYMBOLS)", STAGE, **facts, day=day)
    return None


def _crosses(new_side: Side, new_price: Decimal | None, resting: OrderReport) -> bool:
    """Whether an order at new_price (None = market) could fill against `resting`."""
    if resting.side is new_side or resting.status.is_terminal:
        return False
    if resting.quantity - resting.filled_quantity <= 0:
        return False
    if resting.order_type not in _LIMIT_TYPES and resting.order_type is not OrderType.MKT:
        return False  # a plain stop is not on the book until it triggers
    resting_price = resting.limit_price if resting.order_type in _LIMIT_TYPES else None
    if new_price is None or resting_price is None:
        return True
    return new_price >= resting_price if new_side is Side.BUY else new_price <= resting_price


def check_self_cross(ctx: ComplianceContext) -> Refusal | None:
    """No order that could trade with the account's own resting order (a wash trade)."""
    if not ctx.settings.self_cross_check:
        return None
    intent = ctx.intent
    price = intent.limit_price if intent.order_type in _LIMIT_TYPES else None
    for resting in ctx.open_orders:
        if resting.symbol != ctx.symbol or resting.client_order_id == intent.client_order_id:
            continue
        if _crosses(intent.side, price, resting):
            at = "market" if price is None else f"limit {price}"
            theirs = resting.limit_price if resting.limit_price is not None else "market"
            return Refusal.of(
                R.SELF_CROSS,
                f"{intent.side} {intent.quantity} {ctx.symbol} at {at} could trade against "
                f"this account's own resting {resting.side} order {resting.client_order_id} "
                f"at {theirs}: a wash trade; cancel that order first", STAGE,
                symbol=ctx.symbol, side=intent.side, price=price,
                resting_client_order_id=resting.client_order_id, resting_side=resting.side,
                resting_price=resting.limit_price, resting_leg=resting.leg)
    return None


def _open(name: str, day: date, closures: Iterable[str]) -> bool:
    """Whether `day` is a session of calendar `name` that MARKET_EXTRA_CLOSURES leaves open."""
    import pandas as pd

    return bool(calendar(name).is_session(pd.Timestamp(day))) and not extra_closure(
        name, day, closures)


def trade_day(day: date, settings: RiskSettings) -> date:
    """The business day a trade made on exchange-local `day` counts to: `day` itself when it
    is an open session of PDT_CALENDAR, else the next open one (a fill on a weekend, holiday
    or MARKET_EXTRA_CLOSURES day, as a paper venue may make, dates to the next session, as
    its trade date would). An order decided on such a day trades on that session too."""
    return _open_day(day, settings, timedelta(days=1))


def _open_day(day: date, settings: RiskSettings, step: timedelta) -> date:
    """`day` when it is an open session of PDT_CALENDAR, else the first open one `step`s on."""
    name, closures = settings.pdt_calendar, settings.market_extra_closures
    with quiet_pandas():
        while not _open(name, day, closures):
            day += step
    return day


def pdt_sessions(now: datetime, settings: RiskSettings) -> list[date]:
    """The five business days of the day-trade count, the latest (the trade day of `now`:
    today, or the next session when today is not one) last: the PDT calendar's sessions less
    its MARKET_EXTRA_CLOSURES days."""
    import pandas as pd

    name, closures = settings.pdt_calendar, settings.market_extra_closures
    cal = calendar(name)
    last = trade_day(now.astimezone(ZoneInfo(str(cal.tz))).date(), settings)
    with quiet_pandas():
        # each closure entry removes at most one session, so this many always leaves five
        wanted = PDT_BUSINESS_DAYS + len(closures)
        days = [s.date() for s in cal.sessions_window(pd.Timestamp(last), -wanted)]
    open_days = [d for d in days if not extra_closure(name, d, closures)]
    return open_days[-PDT_BUSINESS_DAYS:]


def pdt_window_start(now: datetime, settings: RiskSettings) -> datetime:
    """Since when the stage must read fills (`venue.fills_since`) for the day-trade count:
    the day after the last open session before the window's first, since a fill made in
    between (a weekend's) dates to that first session."""
    first = pdt_sessions(ensure_utc(now), settings)[0]
    day = timedelta(days=1)
    before = _open_day(first - day, settings, -day)
    zone = ZoneInfo(str(calendar(settings.pdt_calendar).tz))
    return datetime.combine(before + day, time(0), zone).astimezone(ensure_utc(now).tzinfo)


def day_trades(fills: Iterable[FillReport], zone: ZoneInfo,
               days: Iterable[date] | None = None,
               to_trade_day: Callable[[date], date] | None = None,
               ) -> dict[tuple[date, str], int]:
    """Day trades per (trade date, symbol): closing-side fills right after an opening one.
    A fill's trade date is `to_trade_day` of its exchange-local date (that date without)."""
    wanted = None if days is None else set(days)
    runs: dict[tuple[date, str], list[Side]] = {}
    for fill in sorted(fills, key=lambda f: (f.executed_at, f.execution_id)):
        day = fill.executed_at.astimezone(zone).date()
        if to_trade_day is not None:
            day = to_trade_day(day)
        if wanted is None or day in wanted:
            runs.setdefault((day, fill.symbol), []).append(fill.side)
    counts: dict[tuple[date, str], int] = {}
    for key, sides in runs.items():
        opening = sides[0]
        n = sum(1 for a, b in pairwise(sides) if a is opening and b is not opening)
        if n:
            counts[key] = n
    return counts


def check_pattern_day_trader(ctx: ComplianceContext) -> Refusal | None:
    """Under the equity threshold, a day trade beyond the allowance in five business days is
    refused (FINRA 4210's pattern day trader rule)."""
    settings, equity = ctx.settings, ctx.account.equity
    if not settings.pdt_check or ctx.asset_class not in PDT_ASSET_CLASSES:
        return None
    if equity >= settings.pdt_equity_threshold:
        return None
    sessions = pdt_sessions(ctx.now, settings)
    zone = ZoneInfo(str(calendar(settings.pdt_calendar).tz))
    dated = lru_cache(maxsize=None)(lambda day: trade_day(day, settings))
    today = sessions[-1]  # the trade day of now
    mine = [f for f in ctx.fills if f.account_id in ("", ctx.account.account_id)]
    counts = day_trades(mine, zone, sessions, dated)
    today_sides = [f.side for f in sorted(mine, key=lambda f: (f.executed_at, f.execution_id))
                   if f.symbol == ctx.symbol
                   and dated(f.executed_at.astimezone(zone).date()) == today]
    if not today_sides or today_sides[0] is ctx.side:
        return None  # this order opens (or adds to) today's position: not a day trade yet
    made = sum(counts.values())
    if made < settings.pdt_max_day_trades:
        return None
    return Refusal.of(
        R.PATTERN_DAY_TRADER,
        f"{ctx.side} {ctx.intent.quantity} {ctx.symbol} would close a position opened today: "
        f"day trade number {made + 1} in five business days, and account "
        f"{ctx.account.account_id} has equity {equity} under the pattern day trader "
        f"threshold {settings.pdt_equity_threshold} (at most {settings.pdt_max_day_trades})",
        STAGE, symbol=ctx.symbol, day_trades=made, max_day_trades=settings.pdt_max_day_trades,
        equity=equity, threshold=settings.pdt_equity_threshold,
        since=sessions[0].isoformat(), account_id=ctx.account.account_id)


CHECKS: tuple[Callable[[ComplianceContext], Refusal | None], ...] = (
    check_restricted,
    check_market_hours,
    check_short_sale,
    check_self_cross,
    check_pattern_day_trader,
)


def check_compliance(
    intent: OrderIntent,
    account: AccountSnapshot,
    positions: Iterable[Position],
    open_orders: Iterable[OrderReport],
    fills: Iterable[FillReport],
    rules: InstrumentRules | None,
    now: datetime,
    settings: RiskSettings,
    asset_class: AssetClass = AssetClass.EQUITY,
) -> Refusal | None:
    """The first compliance rule this decided order would break, in a fixed order, or None.

    `fills`: the account's executions since `pdt_window_start(now, settings)`; `rules`: the
    venue's `instrument(symbol)` (its `shortable`); `open_orders`: working orders including
    decided-but-unplaced reservations.
    """
    ctx = ComplianceContext(intent, account, tuple(positions), tuple(open_orders),
                            tuple(fills), rules, asset_class, ensure_utc(now), settings)
    for check in CHECKS:
        refusal = check(ctx)
        if refusal is not None:
            return refusal
    return None


def pdt_lookback(now: datetime, settings: RiskSettings) -> timedelta:
    """How far back the stage's fill read must reach (for a venue view's look-back)."""
    return ensure_utc(now) - pdt_window_start(now, settings)
