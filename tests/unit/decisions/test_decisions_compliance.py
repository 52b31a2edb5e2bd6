"""Every compliance check and reason code, for BUY and SELL, on an order decide() produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from agents.decisions import decide
from agents.decisions.compliance import (
    check_compliance,
    day_trades,
    market_closed,
    pdt_sessions,
    pdt_window_start,
    trade_day,
)
from agents.decisions.instruments import AssetClass
from agents.decisions.reasons import COMPLIANCE_CODES, ReasonCode, Refusal
from brokers.port import FillReport, InstrumentRules, OrderReport
from schemas.events import OrderIntent, OrderLeg, OrderStatus, OrderType, Side
from tests.unit.decisions.decisions_factory import T0, Factory

R = ReasonCode
BUY, SELL = Side.BUY, Side.SELL
NY_ZONE = "America/New_York"
CHRISTMAS = datetime(2026, 12, 25, 15, 0, tzinfo=UTC)
AFTER_CLOSE = T0.replace(hour=22)  # 17:00 New York
EARLY_CLOSE = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)  # 13:30 NY, the day after Thanksgiving
LONDON_SHUT = T0.replace(hour=17)  # 17:00 London (closed), 12:00 New York (open)
SYDNEY_MORNING = T0 - timedelta(hours=15, minutes=30)  # Thu 23:30 UTC = Fri 10:30 Sydney
NYSE = {"market_calendar": "XNYS"}


def other(side: Side) -> Side:
    return SELL if side is BUY else BUY


def fill(symbol: str, side: Side, at: datetime, n: int, account: str = "DU1234567") -> FillReport:
    return FillReport(execution_id=f"e{n}", client_order_id=f"c{n}", venue_order_id=f"v{n}",
                      account_id=account, symbol=symbol, side=side, quantity=Decimal(10),
                      price=Decimal(100), executed_at=at)


def three_day_trades() -> list[FillReport]:
    """One day trade on each of Tue, Wed, Thu before T0 (Fri 2026-02-06), one a week earlier."""
    days = [T0 - timedelta(days=d) for d in (3, 2, 1)]
    fills = []
    for i, (day, symbol) in enumerate(zip(days, ("MSFT", "TSLA", "NVDA"), strict=True)):
        fills += [fill(symbol, BUY, day, 2 * i), fill(symbol, SELL, day + timedelta(hours=1),
                                                     2 * i + 1)]
    old = T0 - timedelta(days=7)
    return [*fills, fill("AMD", BUY, old, 90), fill("AMD", SELL, old + timedelta(hours=1), 91)]


def opened_today(side: Side) -> list[FillReport]:
    """This morning's AAPL fill on the other side: the order would close it, a day trade."""
    return [fill("AAPL", other(side), T0 - timedelta(minutes=30), 50)]


@dataclass
class Case:
    code: R | None
    settings: dict[str, Any] = field(default_factory=dict)
    account: dict[str, Any] = field(default_factory=dict)
    positions: list[tuple[str, str, str]] = field(default_factory=list)
    resting: list[dict[str, Any]] = field(default_factory=list)
    fills: list[FillReport] = field(default_factory=list)
    rules: dict[str, Any] | None = None
    now: datetime = T0
    asset_class: AssetClass = AssetClass.EQUITY


def only(side: Side, when: Side, code: R) -> R | None:
    return code if side is when else None


def cases(side: Side) -> dict[str, Case]:
    short = only(side, SELL, R.SHORT_NOT_SHORTABLE)
    pdt = {"equity": Decimal(20000)}
    crossing = 149 if side is BUY else 151  # the other side's limit the order's 150 reaches
    away = 160 if side is BUY else 140
    return {
        "passes": Case(None, rules={"symbol": "AAPL", "shortable": True}),
        "restricted": Case(R.SYMBOL_RESTRICTED, settings={"restricted_symbols": "GME,AAPL"}),
        "restricted_other_symbol": Case(None, settings={"restricted_symbols": "GME"}),
        "holiday": Case(R.MARKET_CLOSED, settings={"market_calendar": "XNYS"}, now=CHRISTMAS),
        "after_close": Case(R.MARKET_CLOSED, settings={"market_calendar": "XNYS"},
                            now=AFTER_CLOSE),
        "early_close": Case(R.MARKET_CLOSED, settings={"market_calendar": "XNYS"},
                            now=EARLY_CLOSE),
        "in_session": Case(None, settings={"market_calendar": "XNYS"}),
        "extra_closure": Case(R.MARKET_CLOSED, settings={
            **NYSE, "market_extra_closures": "2026-02-06"}),
        "extra_closure_of_the_calendar": Case(R.MARKET_CLOSED, settings={
            **NYSE, "market_extra_closures": "2026-01-09,XNYS:2026-02-06"}),
        "extra_closure_by_alias": Case(R.MARKET_CLOSED, settings={
            **NYSE, "market_extra_closures": "NYSE:2026-02-06"}),
        "extra_closure_other_calendar": Case(None, settings={
            **NYSE, "market_extra_closures": "XLON:2026-02-06"}),
        "extra_closure_other_day": Case(None, settings={
            **NYSE, "market_extra_closures": "2026-02-05,2026-02-07"}),
        "extra_closure_no_calendar": Case(None, settings={
            "market_extra_closures": "2026-02-06"}),
        "extra_closure_local_date": Case(R.MARKET_CLOSED, settings={
            "market_calendar": "XASX", "market_extra_closures": "2026-02-06"},
            now=SYDNEY_MORNING),
        "extra_closure_local_date_not_utc": Case(None, settings={
            "market_calendar": "XASX", "market_extra_closures": "2026-02-05"},
            now=SYDNEY_MORNING),
        "no_calendar_no_check": Case(None, now=CHRISTMAS),
        "venue_calendar": Case(R.MARKET_CLOSED, settings={
            "market_calendar": "XNYS", "venue_calendars": "sim:XLON"}, now=LONDON_SHUT),
        "symbol_calendar_wins": Case(None, settings={
            "venue_calendars": "sim:XLON", "symbol_calendars": "AAPL:XNYS"}, now=LONDON_SHUT),
        "not_shortable": Case(short, rules={"symbol": "AAPL", "shortable": False}),
        "not_shortable_but_long": Case(None, rules={"symbol": "AAPL", "shortable": False},
                                       positions=[("AAPL", "1000", "150")]),
        "shortable_unknown": Case(None, rules={"symbol": "AAPL"}),
        "shortable_unknown_required": Case(short, rules={"symbol": "AAPL"},
                                           settings={"shortable_required": True}),
        "short_check_off": Case(None, rules={"symbol": "AAPL", "shortable": False},
                                settings={"short_sale_check": False}),
        "hard_to_borrow": Case(only(side, SELL, R.SHORT_HARD_TO_BORROW),
                               settings={"hard_to_borrow_symbols": "AAPL"}),
        "ssr_today": Case(only(side, SELL, R.SHORT_SALE_RESTRICTED),
                          settings={"ssr_symbols": "AAPL@2026-02-06"}),
        "ssr_every_day": Case(only(side, SELL, R.SHORT_SALE_RESTRICTED),
                              settings={"ssr_symbols": "AAPL"}),
        "ssr_other_day": Case(None, settings={"ssr_symbols": "AAPL@2026-02-05"}),
        "self_cross": Case(R.SELF_CROSS, resting=[{"side": other(side), "price": crossing}]),
        "self_cross_market": Case(R.SELF_CROSS, resting=[{"side": other(side), "price": None}]),
        "no_cross_away": Case(None, resting=[{"side": other(side), "price": away}]),
        "no_cross_same_side": Case(None, resting=[{"side": side, "price": crossing}]),
        "no_cross_stop": Case(None, resting=[{"side": other(side), "price": None,
                                              "order_type": OrderType.STP}]),
        "no_cross_done": Case(None, resting=[{"side": other(side), "price": crossing,
                                              "status": OrderStatus.FILLED}]),
        "self_cross_off": Case(None, resting=[{"side": other(side), "price": crossing}],
                               settings={"self_cross_check": False}),
        "pattern_day_trader": Case(R.PATTERN_DAY_TRADER, account=pdt,
                                   fills=three_day_trades() + opened_today(side)),
        "pdt_equity_at_threshold": Case(None, account={"equity": Decimal(25000)},
                                        fills=three_day_trades() + opened_today(side)),
        "pdt_two_before": Case(None, account=pdt,
                               fills=three_day_trades()[2:] + opened_today(side)),
        "pdt_not_a_day_trade": Case(None, account=pdt, fills=three_day_trades()),
        "pdt_adds_to_today": Case(None, account=pdt,
                                  fills=[*three_day_trades(),
                                         fill("AAPL", side, T0 - timedelta(minutes=30), 60)]),
        "pdt_fx_exempt": Case(None, account=pdt, asset_class=AssetClass.FX,
                              fills=three_day_trades() + opened_today(side)),
        "pdt_off": Case(None, account=pdt, settings={"pdt_check": False},
                        fills=three_day_trades() + opened_today(side)),
        # Mon 02-02 closed: the window reaches back to Fri 01-30, AMD's day trade counts
        "pdt_window_skips_extra_closure": Case(
            R.PATTERN_DAY_TRADER, account=pdt, settings={"market_extra_closures": "2026-02-02"},
            fills=three_day_trades()[2:] + opened_today(side)),
        "pdt_closure_of_another_calendar": Case(
            None, account=pdt, settings={"market_extra_closures": "XLON:2026-02-02"},
            fills=three_day_trades()[2:] + opened_today(side)),
    }


def intent_for(f: Factory, side: Side) -> OrderIntent:
    outcome = decide(f.approval(f.signal_dict(side)), f.account(), [], [], 0, T0, f.settings(),
                     "sim")
    assert isinstance(outcome, OrderIntent), outcome
    return outcome


def resting(f: Factory, spec: dict[str, Any]) -> OrderReport:
    price = spec["price"]
    order = f.order("AAPL", "10", None if price is None else str(price), side=spec["side"],
                    leg=OrderLeg.TAKE_PROFIT, status=spec.get("status", OrderStatus.ACCEPTED))
    if "order_type" in spec:
        order = order.model_copy(update={"order_type": spec["order_type"],
                                         "stop_price": Decimal(145)})
    return order


PARAMS = [pytest.param(side, name, id=f"{name}-{side}")
          for name in cases(BUY) for side in (BUY, SELL)]


@pytest.mark.parametrize(("side", "name"), PARAMS)
def test_compliance(f: Factory, side: Side, name: str) -> None:
    case = cases(side)[name]
    refusal = check(f, side, case)
    if case.code is None:
        assert refusal is None, refusal
        return
    assert refusal is not None, f"expected {case.code}"
    print(f"{name}-{side}: {refusal.code}: {refusal.message}")
    assert refusal.code is case.code, refusal
    assert refusal.stage == "compliance"
    assert refusal.message
    assert refusal.details


def check(f: Factory, side: Side, case: Case) -> Refusal | None:
    return check_compliance(
        intent_for(f, side),
        f.account(**case.account),
        [f.position(*p) for p in case.positions],
        [resting(f, r) for r in case.resting],
        case.fills,
        None if case.rules is None else InstrumentRules(**case.rules),
        case.now,
        f.settings(**case.settings),
        case.asset_class,
    )


def test_every_compliance_code_has_a_case() -> None:
    covered = {c.code for side in (BUY, SELL) for c in cases(side).values() if c.code}
    assert covered == set(COMPLIANCE_CODES)


@pytest.mark.parametrize(
    ("sides", "expected"),
    [
        ([BUY, SELL], 1),
        ([BUY, SELL, BUY, SELL], 2),
        ([BUY, BUY, SELL, SELL], 1),
        ([SELL, BUY], 1),
        ([BUY, BUY], 0),
    ],
)
def test_day_trade_counting(sides: list[Side], expected: int) -> None:
    fills = [fill("AAPL", s, T0 + timedelta(minutes=i), i) for i, s in enumerate(sides)]
    counts = day_trades(fills, __import__("zoneinfo").ZoneInfo(NY_ZONE))
    assert sum(counts.values()) == expected


def test_pdt_window_is_five_sessions_skipping_holidays(f: Factory) -> None:
    # Wed 2026-12-02: Thanksgiving (Thu 11-26) is not a business day.
    now = datetime(2026, 12, 2, 15, tzinfo=UTC)
    days = [d.isoformat() for d in pdt_sessions(now, f.settings())]
    assert days == ["2026-11-25", "2026-11-27", "2026-11-30", "2026-12-01", "2026-12-02"]
    assert pdt_window_start(now, f.settings()) == datetime(2026, 11, 25, 5, tzinfo=UTC)


FRI = datetime(2026, 2, 6, 15, tzinfo=UTC)  # T0
WED_AFTER_THANKSGIVING = datetime(2026, 12, 2, 15, tzinfo=UTC)
# (now, MARKET_EXTRA_CLOSURES) -> the five business days of the day-trade count (MM-DD)
PDT_WINDOWS = {
    "no_closure": (FRI, "", ["02-02", "02-03", "02-04", "02-05", "02-06"]),
    "midweek_closure": (FRI, "2026-02-04", ["01-30", "02-02", "02-03", "02-05", "02-06"]),
    "closure_of_the_calendar": (FRI, "XNYS:2026-02-04",
                                ["01-30", "02-02", "02-03", "02-05", "02-06"]),
    "closure_by_alias": (FRI, "NYSE:2026-02-04", ["01-30", "02-02", "02-03", "02-05", "02-06"]),
    "closure_of_another_calendar": (FRI, "XLON:2026-02-04",
                                    ["02-02", "02-03", "02-04", "02-05", "02-06"]),
    "closure_on_a_weekend": (FRI, "2026-02-07,2026-01-31",
                             ["02-02", "02-03", "02-04", "02-05", "02-06"]),
    # a day without a session counts to the next one, where an order decided on it trades
    "today_closed": (FRI, "2026-02-06", ["02-02", "02-03", "02-04", "02-05", "02-09"]),
    "saturday": (FRI + timedelta(days=1), "", ["02-03", "02-04", "02-05", "02-06", "02-09"]),
    "saturday_before_a_closure": (FRI + timedelta(days=1), "2026-02-09",
                                  ["02-03", "02-04", "02-05", "02-06", "02-10"]),
    "two_closures": (FRI, "2026-02-03,XNYS:2026-02-04",
                     ["01-29", "01-30", "02-02", "02-05", "02-06"]),
    "closure_beside_thanksgiving": (WED_AFTER_THANKSGIVING, "2026-11-27",
                                    ["11-24", "11-25", "11-30", "12-01", "12-02"]),
}


@pytest.mark.parametrize("name", sorted(PDT_WINDOWS))
def test_pdt_window_skips_extra_closures(f: Factory, name: str) -> None:
    now, closures, expected = PDT_WINDOWS[name]
    settings = f.settings(market_extra_closures=closures)
    days = [d.strftime("%m-%d") for d in pdt_sessions(now, settings)]
    print(f"{name}: {days}")
    assert days == expected


# now -> since when fills are read: the day after the last open session before the window's
# first, since a fill made in between (a weekend's) dates to that first session
PDT_STARTS = {
    "monday_first": (FRI, "", datetime(2026, 1, 31, 5, tzinfo=UTC)),
    "tuesday_first": (FRI + timedelta(days=1), "", datetime(2026, 2, 3, 5, tzinfo=UTC)),
    "closure_before_first": (FRI, "2026-01-30", datetime(2026, 1, 30, 5, tzinfo=UTC)),
}


@pytest.mark.parametrize("name", sorted(PDT_STARTS))
def test_pdt_window_start_takes_in_what_dates_to_its_first_day(f: Factory, name: str) -> None:
    now, closures, expected = PDT_STARTS[name]
    assert pdt_window_start(now, f.settings(market_extra_closures=closures)) == expected


SAT = FRI + timedelta(days=1)  # Sat 2026-02-07 10:00 New York


def weekend_day_trades(start: datetime) -> list[FillReport]:
    """Three round trips made from `start` on, a minute apart, as a paper venue fills them."""
    fills = []
    for i, symbol in enumerate(("MSFT", "NVDA", "AMD")):
        at = start + timedelta(minutes=2 * i)
        fills += [fill(symbol, BUY, at, 2 * i), fill(symbol, SELL, at + timedelta(minutes=1),
                                                     2 * i + 1)]
    return fills


@pytest.mark.parametrize("side", [BUY, SELL])
def test_day_trades_made_on_a_weekend_count_on_it(f: Factory, side: Side) -> None:
    # The CI run of 2d163d9 on Sat 2026-12-05 00:25 New York: the paper venue's fills of that
    # Saturday fell outside a window that ended on Friday, and the fourth day trade passed.
    fills = [*weekend_day_trades(SAT), fill("AAPL", other(side), SAT + timedelta(minutes=9), 50)]
    refusal = check(f, side, Case(R.PATTERN_DAY_TRADER, account={"equity": Decimal(20000)},
                                  fills=fills, now=SAT + timedelta(minutes=10)))
    assert refusal is not None
    assert refusal.code is R.PATTERN_DAY_TRADER
    assert refusal.details["day_trades"] == "3"
    assert refusal.details["since"] == "2026-02-03"


def test_a_weekend_fill_and_the_next_sessions_close_it(f: Factory) -> None:
    # Sunday's buy and Monday's sell share Monday's trade date: one day trade.
    sunday = SAT + timedelta(days=1)
    fills = [fill("AAPL", BUY, sunday, 1), fill("AAPL", SELL, sunday + timedelta(days=1), 2)]
    zone = __import__("zoneinfo").ZoneInfo(NY_ZONE)
    counts = day_trades(fills, zone, to_trade_day=lambda d: trade_day(d, f.settings()))
    assert counts == {(date(2026, 2, 9), "AAPL"): 1}
    assert day_trades(fills, zone) == {}  # by calendar date alone, no round trip


def test_settings_validate_calendars(f: Factory) -> None:
    with pytest.raises(ValueError, match="unknown exchange calendar"):
        f.settings(market_calendar="XNOPE")
    with pytest.raises(ValueError, match="must be KEY:VALUE"):
        f.settings(venue_calendars="ib")
    s = f.settings(restricted_symbols="gme, amc", ssr_symbols='["xyz@2026-02-06"]')
    assert s.restricted_symbols == {"GME", "AMC"}
    assert s.ssr_symbols == {"XYZ@2026-02-06"}


# (calendar, moment, MARKET_EXTRA_CLOSURES) -> the holiday the refusal names (None: open)
HOLIDAYS = {
    "christmas_scheduled": ("XNYS", CHRISTMAS, "", "Christmas"),
    "unscheduled_closure": ("XNYS", T0, "2026-02-06", "unscheduled closure"),
    "unscheduled_over_a_session_end": ("XNYS", AFTER_CLOSE, "XNYS:2026-02-06",
                                       "unscheduled closure"),
    "ordinary_session": ("XNYS", T0, "", None),
}


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize("name", sorted(HOLIDAYS))
def test_holiday_named_in_the_refusal(f: Factory, side: Side, name: str) -> None:
    cal, now, closures, holiday = HOLIDAYS[name]
    settings = f.settings(market_calendar=cal, market_extra_closures=closures)
    refusal = check_compliance(intent_for(f, side), f.account(), [], [], [], None, now, settings)
    if holiday is None:
        assert refusal is None, refusal
        return
    assert refusal is not None
    print(f"{name}-{side}: {refusal.message}")
    assert refusal.code is R.MARKET_CLOSED
    assert holiday in refusal.details["holiday"]
    assert holiday in refusal.message


def test_a_scheduled_holiday_is_closed_all_day() -> None:
    for hour in (0, 14, 15, 18, 23):  # NY 19:00 the day before .. 18:00 Christmas Day
        why = market_closed("XNYS", CHRISTMAS.replace(hour=hour))
        assert why is not None
    assert "holiday on XNYS (Christmas)" in str(market_closed("XNYS", CHRISTMAS))
    assert market_closed("XNYS", datetime(2026, 12, 24, 15, tzinfo=UTC)) is None  # 10:00 NY


def test_extra_closures_setting(f: Factory) -> None:
    s = f.settings(market_extra_closures=" 2025-01-09, XNYS:2025-01-10 ,us_futures:2025-01-09")
    assert s.market_extra_closures == {"2025-01-09", "XNYS:2025-01-10", "us_futures:2025-01-09"}
    assert f.settings(market_extra_closures='["2025-01-09"]').market_extra_closures == {
        "2025-01-09"}
    with pytest.raises(ValueError, match="must be YYYY-MM-DD or CALENDAR:YYYY-MM-DD"):
        f.settings(market_extra_closures="2025-13-09")
    with pytest.raises(ValueError, match="unknown exchange calendar"):
        f.settings(market_extra_closures="XNOPE:2025-01-09")
