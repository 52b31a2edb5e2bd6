"""Risk settings from the environment (no prefix), validated so impossible values fail early."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agents.decisions.instruments import Instrument
from schemas.events import OrderType, TimeInForce


@dataclass(frozen=True)
class Interval:
    """An allowed range for a numeric setting; None means unbounded on that side."""

    low: Decimal | None = None
    high: Decimal | None = None
    low_open: bool = True
    high_open: bool = False

    def contains(self, value: Decimal) -> bool:
        """Whether value lies inside the range."""
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (
            self.high is not None and (value > self.high or (self.high_open and value == self.high))
        )

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"in {left}{self.low}, {self.high}{right}"


def _between(low: str, high: str, *, low_open: bool = True) -> Interval:
    """A closed-above range, open below unless told otherwise."""
    return Interval(Decimal(low), Decimal(high), low_open=low_open)


POSITIVE = Interval(Decimal(0))
UNIT_FRACTION = _between("0", "1")

# Field name -> allowed range; filled by _setting, enforced by one validator.
_BOUNDS: dict[str, Interval] = {}


def _setting(name: str, default: Any, description: str, bounds: Interval | None = None) -> Any:
    """Declare a setting: env name, default, README description and optional bounds."""
    if bounds is not None:
        _BOUNDS[name.lower()] = bounds
        description = f"{description} Must be {bounds}."
    return Field(default=default, validation_alias=name, description=description)


class TradingWindow(BaseModel):
    """A daily window of local wall-clock time; start > end wraps past midnight."""

    model_config = ConfigDict(frozen=True)

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        """Whether a local time of day falls in [start, end)."""
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _parse_window(value: Any) -> Any:
    """'09:30-16:00' -> TradingWindow fields; anything else passes through."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    match = _WINDOW.match(value)
    if match is None:
        raise ValueError(f"TRADING_WINDOW must look like HH:MM-HH:MM; got {value!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        start, end = time(h1, m1), time(h2, m2)
    except ValueError as exc:
        raise ValueError(f"TRADING_WINDOW has an impossible time: {value!r} ({exc})") from exc
    if start == end:
        raise ValueError(f"TRADING_WINDOW must not be empty; got {value!r}")
    return {"start": start, "end": end}


def _json(name: str, text: str) -> Any:
    """Decode a JSON setting, naming the setting when it is malformed."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} is not valid JSON ({exc.msg}); got {text!r}") from exc


def _parse_groups(value: Any) -> Any:
    """SYMBOL_GROUPS as JSON ({"AAPL": "tech"}) or compact ("AAPL:tech,MSFT:tech")."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        return _json("SYMBOL_GROUPS", text)
    groups: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        symbol, sep, group = entry.partition(":")
        if not sep or not symbol.strip() or not group.strip():
            raise ValueError(f"SYMBOL_GROUPS entry {entry!r} must be SYMBOL:GROUP")
        groups[symbol.strip()] = group.strip()
    return groups


def _parse_symbols(value: Any) -> Any:
    """SYMBOL_ALLOWLIST as 'AAPL,MSFT' or a JSON list; empty means no allow-list."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return _json("SYMBOL_ALLOWLIST", text)
    symbols = [s.strip() for s in text.split(",") if s.strip()]
    return symbols or None


def _parse_list(name: str, value: Any) -> Any:
    """A comma-separated or JSON list of symbols, upper-case; empty is the empty set."""
    if isinstance(value, str):
        text = value.strip()
        value = _json(name, text) if text.startswith("[") else text.split(",")
    if value is None:
        return frozenset()
    return frozenset(str(s).strip().upper() for s in value if str(s).strip())


def _closure(entry: str) -> str:
    """One MARKET_EXTRA_CLOSURES entry, YYYY-MM-DD or CALENDAR:YYYY-MM-DD, checked."""
    name, _, day = entry.rpartition(":")
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"MARKET_EXTRA_CLOSURES entry {entry!r} must be YYYY-MM-DD or "
                         "CALENDAR:YYYY-MM-DD") from None
    return f"{name}:{when.isoformat()}" if name else when.isoformat()


def _parse_pairs(name: str, value: Any) -> Any:
    """KEY:VALUE pairs, comma-separated, or a JSON object."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        return _json(name, text)
    pairs: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        key, sep, item = entry.partition(":")
        if not sep or not key.strip() or not item.strip():
            raise ValueError(f"{name} entry {entry!r} must be KEY:VALUE")
        pairs[key.strip()] = item.strip()
    return pairs


class RiskSettings(BaseSettings):
    """Every knob of signal validation, sizing and pre-trade limits; frozen once read."""

    model_config = SettingsConfigDict(
        frozen=True,
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        env_ignore_empty=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    risk_per_trade: Decimal = _setting(
        "RISK_PER_TRADE",
        Decimal("0.01"),
        "Fraction of equity risked per trade (entry-to-stop loss), e.g. 0.01 = 1%.",
        _between("0", "0.1"),
    )
    max_position_pct: Decimal = _setting(
        "MAX_POSITION_PCT",
        Decimal("0.20"),
        "Largest position value of one order as a fraction of equity.",
        UNIT_FRACTION,
    )
    order_type: OrderType = _setting(
        "ORDER_TYPE",
        OrderType.LMT,
        "Entry order type: LMT (limit at the tick-rounded entry price) or MKT.",
    )
    min_position_size: Decimal = _setting(
        "MIN_POSITION_SIZE",
        Decimal(1),
        "Smallest quantity worth sending; a smaller sized order is refused.",
        POSITIVE,
    )
    max_position_size: Decimal | None = _setting(
        "MAX_POSITION_SIZE",
        None,
        "Optional largest quantity of one order (empty = no cap).",
        POSITIVE,
    )
    max_order_notional: Decimal | None = _setting(
        "MAX_ORDER_NOTIONAL",
        None,
        "Optional largest order value (quantity x entry) in account currency (empty = no cap).",
        POSITIVE,
    )
    four_eyes_notional: Decimal | None = _setting(
        "FOUR_EYES_NOTIONAL",
        None,
        "Optional order value above which two distinct approvers must approve (empty = one).",
        POSITIVE,
    )
    min_reward_risk: Decimal | None = _setting(
        "MIN_REWARD_RISK",
        None,
        "Optional minimum reward:risk (take-profit distance / stop distance); needs a take-profit.",
        _between("0", "100"),
    )
    min_confidence: Decimal | None = _setting(
        "MIN_CONFIDENCE",
        None,
        "Optional minimum signal confidence; signals without a confidence are then refused.",
        _between("0", "1", low_open=False),
    )
    signal_ttl_seconds: int = _setting(
        "SIGNAL_TTL_SECONDS",
        3600,
        "Age after which a signal can no longer become an order; a signal's ttl_seconds wins.",
        _between("0", "604800"),
    )
    symbol_allowlist: Annotated[frozenset[str] | None, NoDecode] = _setting(
        "SYMBOL_ALLOWLIST",
        None,
        "Optional comma-separated symbols that may trade (empty = any well-formed symbol).",
    )
    max_price: Decimal = _setting(
        "MAX_PRICE",
        Decimal(1_000_000),
        "Guard against absurd prices: entry, stop or take-profit above this are refused.",
        POSITIVE,
    )
    max_open_positions: int = _setting(
        "MAX_OPEN_POSITIONS",
        10,
        "Most symbols held or with a pending entry at once, counting this order's.",
        Interval(Decimal(1), low_open=False),
    )
    max_daily_loss: Decimal | None = _setting(
        "MAX_DAILY_LOSS",
        None,
        "Optional loss amount (realized today + unrealized) at which new orders stop.",
        POSITIVE,
    )
    max_gross_exposure_pct: Decimal = _setting(
        "MAX_GROSS_EXPOSURE_PCT",
        Decimal("1.0"),
        "Cap on positions + open orders + this order, gross, as a fraction of equity.",
        UNIT_FRACTION,
    )
    max_symbol_exposure_pct: Decimal = _setting(
        "MAX_SYMBOL_EXPOSURE_PCT",
        Decimal("0.25"),
        "Cap on one symbol's position + open orders + this order as a fraction of equity.",
        UNIT_FRACTION,
    )
    max_group_exposure_pct: Decimal = _setting(
        "MAX_GROUP_EXPOSURE_PCT",
        Decimal("0.50"),
        "Cap on one group's (sector's) exposure as a fraction of equity: the correlation guard.",
        UNIT_FRACTION,
    )
    symbol_groups: Annotated[dict[str, str], NoDecode] = _setting(
        "SYMBOL_GROUPS",
        {},
        'Symbol -> group map, JSON ({"AAPL": "tech"}) or "AAPL:tech,MSFT:tech".',
    )
    allow_same_symbol_position: bool = _setting(
        "ALLOW_SAME_SYMBOL_POSITION",
        False,
        "Allow a new order in a symbol already held or with a pending entry.",
    )
    max_orders_per_minute: int = _setting(
        "MAX_ORDERS_PER_MINUTE",
        10,
        "Order-rate limit: refuse when this many orders went out in the last minute.",
        Interval(Decimal(1), low_open=False),
    )
    trading_window: Annotated[TradingWindow | None, NoDecode] = _setting(
        "TRADING_WINDOW",
        None,
        "Optional daily window HH:MM-HH:MM in TRADING_WINDOW_TZ when orders may be made.",
    )
    trading_window_tz: str = _setting(
        "TRADING_WINDOW_TZ",
        "America/New_York",
        "IANA time zone of TRADING_WINDOW.",
    )
    trading_weekdays_only: bool = _setting(
        "TRADING_WEEKDAYS_ONLY",
        True,
        "With TRADING_WINDOW set, also refuse on Saturdays and Sundays (local time).",
    )
    time_in_force: TimeInForce = _setting(
        "TIME_IN_FORCE", TimeInForce.DAY, "Time in force of entry orders: DAY, GTC or IOC."
    )
    live_trading_account: str = _setting(
        "LIVE_TRADING_ACCOUNT",
        "",
        "The one live account id explicitly enabled for live trading (empty = live refused).",
    )
    live_ramp_factor: Decimal = _setting(
        "LIVE_RAMP_FACTOR",
        Decimal("0.1"),
        "On live accounts the sized quantity is scaled by this (start small).",
        UNIT_FRACTION,
    )
    live_max_order_notional: Decimal = _setting(
        "LIVE_MAX_ORDER_NOTIONAL",
        Decimal(1000),
        "On live accounts, the largest order value (quantity x entry).",
        POSITIVE,
    )
    instruments: Annotated[dict[str, Instrument], NoDecode] = _setting(
        "INSTRUMENTS",
        {},
        'Optional JSON per-symbol overrides, e.g. {"BRK.A": {"lot_size": "1", "tick_size": '
        '"0.01", "fractional": false, "asset_class": "equity", "group": "fin"}}.',
    )

    # pre-trade compliance (agents/decisions/compliance.py)
    restricted_symbols: Annotated[frozenset[str], NoDecode] = _setting(
        "RESTRICTED_SYMBOLS",
        frozenset(),
        "Comma-separated symbols the desk may not trade at all, BUY or SELL (compliance list).",
    )
    market_calendar: str = _setting(
        "MARKET_CALENDAR",
        "",
        "Exchange calendar (exchange_calendars code, e.g. XNYS) whose sessions, early closes "
        "and holidays bound when orders may go out (empty = no market-hours check).",
    )
    venue_calendars: Annotated[dict[str, str], NoDecode] = _setting(
        "VENUE_CALENDARS",
        {},
        'Per-venue calendar overriding MARKET_CALENDAR, e.g. "ib:XNYS,oanda:24/5".',
    )
    symbol_calendars: Annotated[dict[str, str], NoDecode] = _setting(
        "SYMBOL_CALENDARS",
        {},
        'Per-symbol calendar overriding the venue\'s, e.g. "VOD:XLON,ES:CMES".',
    )
    market_extra_closures: Annotated[frozenset[str], NoDecode] = _setting(
        "MARKET_EXTRA_CLOSURES",
        frozenset(),
        "Unscheduled closures the calendar library does not know yet (a day of mourning, "
        "weather): comma-separated ISO dates, each a whole local day closed on every calendar "
        'checked, or CALENDAR:DATE for one calendar, e.g. "XNYS:2025-01-09".',
    )
    short_sale_check: bool = _setting(
        "SHORT_SALE_CHECK",
        True,
        "Refuse a short sale (SELL beyond the long held) of an instrument the venue marks not "
        "shortable, or one on HARD_TO_BORROW_SYMBOLS or SSR_SYMBOLS.",
    )
    shortable_required: bool = _setting(
        "SHORTABLE_REQUIRED",
        False,
        "Also refuse a short sale when the venue publishes no shortable flag for the symbol.",
    )
    hard_to_borrow_symbols: Annotated[frozenset[str], NoDecode] = _setting(
        "HARD_TO_BORROW_SYMBOLS",
        frozenset(),
        "Comma-separated symbols that may not be sold short (hard to borrow).",
    )
    ssr_symbols: Annotated[frozenset[str], NoDecode] = _setting(
        "SSR_SYMBOLS",
        frozenset(),
        "Short sale restriction (Rule 201): SYMBOL (every day) or SYMBOL@YYYY-MM-DD (that "
        "exchange date), comma-separated; short sales of them are refused.",
    )
    self_cross_check: bool = _setting(
        "SELF_CROSS_CHECK",
        True,
        "Refuse an order that could trade against the account's own resting order in the same "
        "symbol (wash-trade prevention).",
    )
    pdt_check: bool = _setting(
        "PDT_CHECK",
        True,
        "Pattern day trader rule: under PDT_EQUITY_THRESHOLD, refuse a day trade beyond "
        "PDT_MAX_DAY_TRADES in five business days (equities and options only).",
    )
    pdt_equity_threshold: Decimal = _setting(
        "PDT_EQUITY_THRESHOLD",
        Decimal(25000),
        "Account equity at or above which the pattern day trader limit does not apply.",
        POSITIVE,
    )
    pdt_max_day_trades: int = _setting(
        "PDT_MAX_DAY_TRADES",
        3,
        "Day trades an account under the threshold may make in five business days.",
        Interval(Decimal(0), low_open=False),
    )
    pdt_calendar: str = _setting(
        "PDT_CALENDAR",
        "XNYS",
        "Exchange calendar whose sessions, less the days MARKET_EXTRA_CLOSURES closes, are the "
        "business days of the day-trade count.",
    )

    @field_validator(*_BOUNDS, mode="after")
    @classmethod
    def _in_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse impossible numbers with a message naming the setting."""
        name = info.field_name or ""
        if value is not None and not _BOUNDS[name].contains(Decimal(value)):
            raise ValueError(f"{name.upper()} must be {_BOUNDS[name]}; got {value}")
        return value

    @field_validator("order_type", mode="after")
    @classmethod
    def _entry_type(cls, value: OrderType) -> OrderType:
        """Only limit-at-entry and market entries are supported."""
        if value not in (OrderType.LMT, OrderType.MKT):
            raise ValueError(f"ORDER_TYPE must be LMT or MKT; got {value}")
        return value

    @field_validator("trading_window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        """Accept the compact HH:MM-HH:MM form from the environment."""
        return _parse_window(value)

    @field_validator("symbol_groups", mode="before")
    @classmethod
    def _groups(cls, value: Any) -> Any:
        """Accept JSON or the compact SYMBOL:GROUP list."""
        return _parse_groups(value)

    @field_validator("symbol_groups", mode="after")
    @classmethod
    def _groups_upper(cls, value: dict[str, str]) -> dict[str, str]:
        """Symbols compare upper-case everywhere."""
        return {k.strip().upper(): v.strip() for k, v in value.items()}

    @field_validator("symbol_allowlist", mode="before")
    @classmethod
    def _allowlist(cls, value: Any) -> Any:
        """Accept a comma-separated list or JSON."""
        return _parse_symbols(value)

    @field_validator("symbol_allowlist", mode="after")
    @classmethod
    def _allowlist_upper(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        """Symbols compare upper-case everywhere."""
        return None if value is None else frozenset(s.strip().upper() for s in value)

    @field_validator("instruments", mode="before")
    @classmethod
    def _instruments_json(cls, value: Any) -> Any:
        """INSTRUMENTS arrives as JSON text from the environment."""
        if isinstance(value, str):
            return _json("INSTRUMENTS", value) if value.strip() else {}
        return value

    @field_validator("instruments", mode="after")
    @classmethod
    def _instrument_keys(cls, value: dict[str, Instrument]) -> dict[str, Instrument]:
        """Key and symbol upper-case, so lookups cannot miss on case."""
        return {k.upper(): v.model_copy(update={"symbol": k.upper()}) for k, v in value.items()}

    @field_validator("restricted_symbols", "hard_to_borrow_symbols", "ssr_symbols",
                     mode="before")
    @classmethod
    def _symbol_sets(cls, value: Any, info: ValidationInfo) -> Any:
        """Comma-separated or JSON lists, upper-case."""
        return _parse_list(str(info.field_name).upper(), value)

    @field_validator("venue_calendars", "symbol_calendars", mode="before")
    @classmethod
    def _calendar_maps(cls, value: Any, info: ValidationInfo) -> Any:
        """KEY:CALENDAR pairs or JSON."""
        return _parse_pairs(str(info.field_name).upper(), value)

    @field_validator("market_extra_closures", mode="before")
    @classmethod
    def _closures(cls, value: Any) -> Any:
        """[CALENDAR:]YYYY-MM-DD entries, comma-separated or JSON, each date checked."""
        if isinstance(value, str):
            text = value.strip()
            value = _json("MARKET_EXTRA_CLOSURES", text) if text.startswith("[") else \
                text.split(",")
        return frozenset(_closure(str(e).strip()) for e in value or () if str(e).strip())

    @field_validator("symbol_calendars", mode="after")
    @classmethod
    def _calendar_symbols_upper(cls, value: dict[str, str]) -> dict[str, str]:
        """Symbols compare upper-case everywhere."""
        return {k.upper(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _known_calendars(self) -> RiskSettings:
        """An unknown calendar name would only fail at the first order; fail at start."""
        names = {self.market_calendar, self.pdt_calendar, *self.venue_calendars.values(),
                 *self.symbol_calendars.values(),
                 *(e.rpartition(":")[0] for e in self.market_extra_closures)} - {""}
        if names:
            import exchange_calendars  # heavy (pandas): imported only when a calendar is named

            known = set(exchange_calendars.get_calendar_names(include_aliases=True))
            unknown = sorted(names - known)
            if unknown:
                raise ValueError(f"unknown exchange calendar(s) {unknown}: use an "
                                 "exchange_calendars code such as XNYS, XNAS, XLON, CMES, 24/5")
        return self

    @field_validator("trading_window_tz", mode="after")
    @classmethod
    def _zone(cls, value: str) -> str:
        """An unknown zone would silently shift the window; refuse it."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"TRADING_WINDOW_TZ is not a known time zone; got {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RiskSettings:
        """Cross-field sanity: a maximum below the minimum can never size an order."""
        cap, floor = self.max_position_size, self.min_position_size
        if cap is not None and cap < floor:
            raise ValueError(f"MAX_POSITION_SIZE must be >= MIN_POSITION_SIZE ({floor}); got {cap}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The time zone of the trading window."""
        return ZoneInfo(self.trading_window_tz)

    def ttl_for(self, signal_ttl: int | None) -> int:
        """The TTL that applies to a signal: its own, else the configured default."""
        return signal_ttl if signal_ttl is not None else self.signal_ttl_seconds


def _render(value: Any) -> str:
    """A default as the README shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{}" if not value else json.dumps(value)
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    return str(value)


def settings_table() -> list[tuple[str, str, str]]:
    """(ENV NAME, default, description) rows for the README, in declaration order."""
    rows = []
    for name, field in RiskSettings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else name
        rows.append((alias.upper(), _render(field.default), field.description or ""))
    return rows
