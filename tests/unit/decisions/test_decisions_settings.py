"""Settings: documented defaults, env parsing, and impossible values named in the error."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest

from agents.decisions import RiskSettings, settings_table
from schemas.events import OrderType, TimeInForce


def test_defaults_match_the_seed() -> None:
    s = RiskSettings()
    assert s.risk_per_trade == Decimal("0.01")
    assert s.max_position_pct == Decimal("0.20")
    assert s.order_type is OrderType.LMT
    assert s.min_position_size == Decimal(1)
    assert s.time_in_force is TimeInForce.DAY
    assert s.live_trading_account == ""
    assert s.live_ramp_factor == Decimal("0.1")
    assert s.signal_ttl_seconds == 3600


def test_reads_env_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "RISK_PER_TRADE": "0.02",
        "MAX_POSITION_PCT": "0.5",
        "ORDER_TYPE": "MKT",
        "SYMBOL_ALLOWLIST": "aapl, msft",
        "SYMBOL_GROUPS": "AAPL:tech,msft:tech",
        "TRADING_WINDOW": "09:30-16:00",
        "MAX_ORDER_NOTIONAL": "",
        "INSTRUMENTS": '{"brk.a": {"lot_size": "1", "group": "fin"}}',
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = RiskSettings()
    assert s.risk_per_trade == Decimal("0.02")
    assert s.max_position_pct == Decimal("0.5")
    assert s.order_type is OrderType.MKT
    assert s.symbol_allowlist == frozenset({"AAPL", "MSFT"})
    assert s.symbol_groups == {"AAPL": "tech", "MSFT": "tech"}
    assert s.trading_window is not None
    assert (s.trading_window.start, s.trading_window.end) == (time(9, 30), time(16, 0))
    assert s.max_order_notional is None
    assert s.instruments["BRK.A"].group == "fin"


def test_symbol_groups_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBOL_GROUPS", '{"aapl": "tech"}')
    assert RiskSettings().symbol_groups == {"AAPL": "tech"}


def test_frozen() -> None:
    s = RiskSettings()
    with pytest.raises(ValueError, match="frozen"):
        s.risk_per_trade = Decimal("0.5")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"risk_per_trade": 5}, r"RISK_PER_TRADE must be in \(0, 0\.1\]; got 5", id="risk-5"
        ),
        pytest.param(
            {"risk_per_trade": 0}, r"RISK_PER_TRADE must be in \(0, 0\.1\]; got 0", id="risk-0"
        ),
        pytest.param({"risk_per_trade": "-0.01"}, r"RISK_PER_TRADE .*got -0\.01", id="risk-neg"),
        pytest.param(
            {"max_position_pct": "1.5"}, r"MAX_POSITION_PCT must be in \(0, 1\]", id="pct>1"
        ),
        pytest.param(
            {"max_position_pct": "0"}, r"MAX_POSITION_PCT must be in \(0, 1\]", id="pct-0"
        ),
        pytest.param({"max_gross_exposure_pct": "2"}, "MAX_GROSS_EXPOSURE_PCT", id="gross>1"),
        pytest.param({"max_symbol_exposure_pct": "-1"}, "MAX_SYMBOL_EXPOSURE_PCT", id="sym<0"),
        pytest.param({"max_group_exposure_pct": "1.01"}, "MAX_GROUP_EXPOSURE_PCT", id="group>1"),
        pytest.param(
            {"live_ramp_factor": "0"}, r"LIVE_RAMP_FACTOR must be in \(0, 1\]", id="ramp-0"
        ),
        pytest.param({"live_ramp_factor": "1.1"}, "LIVE_RAMP_FACTOR", id="ramp>1"),
        pytest.param(
            {"live_max_order_notional": "0"}, "LIVE_MAX_ORDER_NOTIONAL must be > 0", id="live-0"
        ),
        pytest.param(
            {"max_order_notional": "-1"}, "MAX_ORDER_NOTIONAL must be > 0; got -1", id="notional<0"
        ),
        pytest.param({"max_position_size": "-3"}, "MAX_POSITION_SIZE must be > 0", id="max-size<0"),
        pytest.param({"min_position_size": "0"}, "MIN_POSITION_SIZE must be > 0", id="min-size-0"),
        pytest.param(
            {"max_position_size": "5", "min_position_size": "10"},
            r"MAX_POSITION_SIZE must be >= MIN_POSITION_SIZE \(10\); got 5",
            id="max<min",
        ),
        pytest.param({"max_daily_loss": "-100"}, "MAX_DAILY_LOSS must be > 0", id="loss<0"),
        pytest.param({"max_price": "0"}, "MAX_PRICE must be > 0", id="max-price-0"),
        pytest.param({"min_confidence": "1.5"}, r"MIN_CONFIDENCE must be in \[0, 1\]", id="conf>1"),
        pytest.param({"min_reward_risk": "0"}, "MIN_REWARD_RISK", id="rr-0"),
        pytest.param({"signal_ttl_seconds": 0}, "SIGNAL_TTL_SECONDS", id="ttl-0"),
        pytest.param(
            {"max_open_positions": 0}, "MAX_OPEN_POSITIONS must be >= 1", id="positions-0"
        ),
        pytest.param(
            {"max_orders_per_minute": 0}, "MAX_ORDERS_PER_MINUTE must be >= 1", id="rate-0"
        ),
        pytest.param({"order_type": "STP"}, "ORDER_TYPE must be LMT or MKT; got STP", id="stp"),
        pytest.param(
            {"trading_window": "9-16"}, "TRADING_WINDOW must look like HH:MM-HH:MM", id="win"
        ),
        pytest.param(
            {"trading_window": "25:00-16:00"}, "TRADING_WINDOW has an impossible", id="25h"
        ),
        pytest.param(
            {"trading_window": "10:00-10:00"}, "TRADING_WINDOW must not be empty", id="empty"
        ),
        pytest.param({"trading_window_tz": "Mars/Olympus"}, "TRADING_WINDOW_TZ", id="tz"),
        pytest.param({"symbol_groups": "AAPL"}, "SYMBOL_GROUPS entry 'AAPL'", id="groups"),
        pytest.param(
            {"symbol_groups": "{bad"}, "SYMBOL_GROUPS is not valid JSON", id="groups-json"
        ),
        pytest.param({"instruments": "{bad"}, "INSTRUMENTS is not valid JSON", id="instr-json"),
    ],
)
def test_impossible_settings_fail_naming_the_setting(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RiskSettings(**values)


@pytest.mark.parametrize(
    ("name", "value"),
    [("RISK_PER_TRADE", "5"), ("MAX_POSITION_PCT", "1.5"), ("LIVE_RAMP_FACTOR", "0")],
)
def test_impossible_env_fails_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name} must be"):
        RiskSettings()


def test_unparseable_env_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_PER_TRADE", "one percent")
    with pytest.raises(ValueError, match="RISK_PER_TRADE"):
        RiskSettings()


def test_settings_table_documents_every_field() -> None:
    rows = settings_table()
    names = [r[0] for r in rows]
    assert len(names) == len(RiskSettings.model_fields)
    assert all(name.isupper() for name in names)
    assert all(description for _, _, description in rows)
    table = {name: (default, description) for name, default, description in rows}
    assert table["RISK_PER_TRADE"][0] == "0.01"
    assert "(0, 0.1]" in table["RISK_PER_TRADE"][1]
    assert table["MAX_POSITION_PCT"][0] == "0.20"
    assert table["ORDER_TYPE"][0] == "LMT"
    assert table["LIVE_TRADING_ACCOUNT"][0] == ""
