"""The kill switch's pure decisions: command x scope x mode, the gate, the trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from agents.decisions import trading_state as ts
from agents.decisions.reasons import ReasonCode
from brokers.port import AccountKind, AccountSnapshot
from schemas.events import (
    AlertKind,
    ControlAction,
    ControlCommand,
    ScopeKind,
    Side,
    TradingMode,
)

T0 = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
A, H, R, F = TradingMode.ACTIVE, TradingMode.HALTED, TradingMode.REDUCE_ONLY, TradingMode.FLATTENING
D = Decimal
BUY, SELL = Side.BUY, Side.SELL

SCOPES: dict[str, dict[str, Any]] = {
    "account": {},
    "symbol": {"symbol": "AAPL"},
    "strategy": {"strategy_id": "ma_crossover_v1"},
}


def cmd(action: ControlAction, scope: str = "account", by: str = "alice",
        at: datetime = T0, **extra: Any) -> ControlCommand:
    return ControlCommand.model_validate({
        "command": action, "issued_by": by, "reason": f"{action} for a test",
        "occurred_at": at.isoformat(), **SCOPES[scope], **extra})


def table_with(*steps: tuple[ControlAction, str]) -> ts.TradingTable:
    table = ts.TradingTable()
    for offset, (action, scope) in enumerate(steps):
        applied = ts.apply_command(table, cmd(action, scope, at=T0 + timedelta(seconds=offset)),
                                   offset, T0)
        assert applied.state is not None
        table.observe(applied.state)
        if applied.flatten:
            table.observe(ts.flattened(cmd(action, scope, at=T0 + timedelta(seconds=offset)),
                                       offset, T0, None, {"complete": "true"}))
    return table


# ---------------------------------------------------------------- the state machine

EXPECTED = {ControlAction.HALT: H, ControlAction.REDUCE_ONLY: R, ControlAction.RESUME: A,
            ControlAction.FLATTEN: F}
PRIOR = {A: [], H: [(ControlAction.HALT,)], R: [(ControlAction.REDUCE_ONLY,)],
         F: [(ControlAction.FLATTEN,)]}


@pytest.mark.parametrize("scope", sorted(SCOPES))
@pytest.mark.parametrize("prior", [A, H, R])
@pytest.mark.parametrize("action", list(ControlAction))
def test_every_command_in_every_scope_from_every_mode(
        action: ControlAction, prior: TradingMode, scope: str) -> None:
    if action is ControlAction.FLATTEN and scope == "strategy":
        pytest.skip("FLATTEN has no strategy scope (see the model test)")
    table = table_with(*[(a, scope) for (a,) in PRIOR[prior]])
    key = cmd(action, scope).scope
    assert table.mode_of(key) is prior
    applied = ts.apply_command(table, cmd(action, scope, by="bob", at=T0 + timedelta(hours=1)),
                               10, T0)
    state = applied.state
    assert state is not None
    assert state.mode is EXPECTED[action]
    assert state.previous_mode is prior
    assert state.scope == key
    assert state.scope_kind is ScopeKind(scope)
    assert state.issued_by == "bob"
    assert state.command_offset == 10
    assert applied.flatten is (action is ControlAction.FLATTEN)
    assert state.kafka_key == key.encode()
    table.observe(state)
    # other scopes are untouched
    for other in set(SCOPES) - {scope}:
        assert table.mode_of(cmd(ControlAction.HALT, other).scope) is A


def test_flatten_ends_halted() -> None:
    table = ts.TradingTable()
    command = cmd(ControlAction.FLATTEN)
    applied = ts.apply_command(table, command, 3, T0)
    assert applied.state is not None
    assert applied.state.mode is F
    table.observe(applied.state)
    final = ts.flattened(command, 3, T0, "DU1", {"complete": "true"})
    assert final.mode is H
    assert final.previous_mode is F
    assert final.event_id != applied.state.event_id
    table.observe(final)
    assert table.mode_of("account") is H


def test_a_redelivered_command_yields_the_same_event_and_a_done_flatten_is_not_rerun() -> None:
    table = ts.TradingTable()
    command = cmd(ControlAction.FLATTEN, "symbol")
    first = ts.apply_command(table, command, 5, T0).state
    assert first is not None
    table.observe(first)
    again = ts.apply_command(table, command, 5, T0).state
    assert again is not None
    assert again.event_id == first.event_id
    assert again.previous_mode is first.previous_mode is A
    table.observe(ts.flattened(command, 5, T0, None, {}))
    assert ts.apply_command(table, command, 5, T0).state is None


def test_a_command_superseded_by_a_later_one_changes_nothing() -> None:
    table = table_with((ControlAction.HALT, "account"), (ControlAction.RESUME, "account"))
    replay = ts.apply_command(table, cmd(ControlAction.HALT), 0, T0)
    assert replay.state is None
    assert table.mode_of("account") is A


def test_an_older_state_never_replaces_a_newer_one() -> None:
    table = ts.TradingTable()
    halt = ts.state_event(cmd(ControlAction.HALT), 7, H, A, T0)
    resume = ts.state_event(cmd(ControlAction.RESUME), 4, A, H, T0)
    assert table.observe(halt)
    assert not table.observe(resume)
    assert table.mode_of("account") is H


def test_command_model_rules() -> None:
    with pytest.raises(ValueError, match="one scope"):
        cmd(ControlAction.HALT, "symbol", strategy_id="x")
    with pytest.raises(ValueError, match="FLATTEN applies to the account or a symbol"):
        cmd(ControlAction.FLATTEN, "strategy")
    a, b = cmd(ControlAction.HALT, "symbol"), cmd(ControlAction.HALT, "account")
    assert a.event_id != b.event_id  # the scope is part of the derived id
    assert a.event_id == cmd(ControlAction.HALT, "symbol").event_id


# ---------------------------------------------------------------- precedence and the gate


@pytest.mark.parametrize(("steps", "symbol", "strategy", "mode"), [
    ([], "AAPL", "s1", None),
    ([(ControlAction.HALT, "account")], "MSFT", None, H),
    ([(ControlAction.HALT, "symbol")], "AAPL", None, H),
    ([(ControlAction.HALT, "symbol")], "MSFT", None, None),
    ([(ControlAction.HALT, "strategy")], "MSFT", "ma_crossover_v1", H),
    ([(ControlAction.HALT, "strategy")], "MSFT", "other", None),
    # the most restrictive wins, whatever the scope's width
    ([(ControlAction.REDUCE_ONLY, "account"), (ControlAction.HALT, "symbol")], "AAPL", None, H),
    ([(ControlAction.HALT, "account"), (ControlAction.RESUME, "symbol")], "AAPL", None, H),
    ([(ControlAction.HALT, "account"), (ControlAction.REDUCE_ONLY, "symbol")], "AAPL", None, H),
    ([(ControlAction.REDUCE_ONLY, "strategy")], "AAPL", "ma_crossover_v1", R),
    ([(ControlAction.HALT, "account"), (ControlAction.RESUME, "account")], "AAPL", None, None),
    ([(ControlAction.FLATTEN, "symbol")], "AAPL", None, H),
])
def test_effective_state(steps: list[tuple[ControlAction, str]], symbol: str,
                         strategy: str | None, mode: TradingMode | None) -> None:
    state = table_with(*steps).effective(symbol, strategy)
    assert (state.mode if state else None) is mode


# (side, quantity, position) -> admitted under REDUCE_ONLY?
REDUCE_CASES = [
    (SELL, "50", "100", True),  # reduces a long
    (SELL, "100", "100", True),  # closes a long exactly
    (SELL, "101", "100", False),  # flips a long to short
    (BUY, "10", "100", False),  # adds to a long
    (BUY, "30", "-50", True),  # reduces a short
    (BUY, "50", "-50", True),  # closes a short
    (BUY, "80", "-50", False),  # flips a short
    (SELL, "10", "-50", False),  # adds to a short
    (BUY, "10", "0", False),  # opens
    (SELL, "10", "0", False),  # opens a short
]


@pytest.mark.parametrize(("side", "qty", "pos", "ok"), REDUCE_CASES)
def test_reduce_only(side: Side, qty: str, pos: str, ok: bool) -> None:
    table = table_with((ControlAction.REDUCE_ONLY, "symbol"))
    refusal = ts.check(table, "AAPL", "s", side, D(qty), D(pos), "sizing")
    assert (refusal is None) is ok
    if refusal is not None:
        assert refusal.code is ReasonCode.REDUCE_ONLY
        assert refusal.details["position"] == pos
        assert refusal.details["scope"] == "symbol:AAPL"
        assert refusal.details["issued_by"] == "alice"
        print(refusal.message)


def test_reduce_only_with_an_unknown_position_refuses() -> None:
    table = table_with((ControlAction.REDUCE_ONLY, "account"))
    refusal = ts.check(table, "AAPL", None, SELL, D(1), None, "submission")
    assert refusal is not None
    assert refusal.code is ReasonCode.REDUCE_ONLY
    assert refusal.stage == "submission"


@pytest.mark.parametrize(("side", "qty", "pos"), [(s, q, p) for s, q, p, _ in REDUCE_CASES])
@pytest.mark.parametrize("action", [ControlAction.HALT, ControlAction.FLATTEN])
def test_halted_refuses_every_order(action: ControlAction, side: Side, qty: str,
                                    pos: str) -> None:
    table = table_with((action, "account"))
    refusal = ts.check(table, "AAPL", "s", side, D(qty), D(pos), "sizing")
    assert refusal is not None
    assert refusal.code is ReasonCode.HALTED
    assert refusal.details["issued_by"] == "alice"
    assert "halted" in refusal.message


@pytest.mark.parametrize(("side", "qty", "pos"), [(s, q, p) for s, q, p, _ in REDUCE_CASES])
def test_active_admits_every_order(side: Side, qty: str, pos: str) -> None:
    assert ts.check(ts.TradingTable(), "AAPL", "s", side, D(qty), D(pos), "sizing") is None


def test_a_flattening_scope_refuses_with_halted() -> None:
    table = ts.TradingTable()
    state = ts.apply_command(table, cmd(ControlAction.FLATTEN), 0, T0).state
    assert state is not None
    table.observe(state)
    refusal = ts.check(table, "AAPL", None, SELL, D(1), D(5), "submission")
    assert refusal is not None
    assert refusal.code is ReasonCode.HALTED
    assert "flattened" in refusal.message


# ---------------------------------------------------------------- trips


def account(realized: str, unrealized: str) -> AccountSnapshot:
    return AccountSnapshot(account_id="DU1", kind=AccountKind.PAPER, equity=D(100000),
                           cash=D(100000), buying_power=D(200000), realized_pnl_today=D(realized),
                           unrealized_pnl=D(unrealized), as_of=T0)


@pytest.mark.parametrize(("realized", "unrealized", "fires"), [
    ("-600", "-400", True), ("-1000", "0", True), ("-600", "-399.99", False),
    ("500", "-1500", True), ("0", "0", False), ("2000", "-2500", False),
])
def test_daily_loss(realized: str, unrealized: str, fires: bool) -> None:
    trip = ts.daily_loss(account(realized, unrealized), D(1000), ControlAction.FLATTEN)
    assert (trip is not None) is fires
    if trip is not None:
        assert trip.action is ControlAction.FLATTEN
        assert trip.details["limit"] == "1000"
        assert trip.details["realized_pnl_today"] == realized
        command = trip.command(T0)
        assert command.issued_by == "auto:daily_loss"
        assert command.details["trigger"] == "daily_loss"
        assert realized in (command.reason or "")
        print(command.reason)


def test_consecutive_venue_failures() -> None:
    run = ts.VenueFailures(3)
    at = [T0 + timedelta(seconds=i) for i in range(10)]
    assert run.on_rejection("VENUE_UNAVAILABLE", at[0]) is None
    assert run.on_rejection("VENUE_UNAVAILABLE", at[1]) is None
    assert run.on_rejection("HALTED", at[2]) is None  # the gate's own: neither counts nor breaks
    trip = run.on_rejection("VENUE_UNAVAILABLE", at[3])
    assert trip is not None
    assert trip.trigger == "venue_failures"
    assert trip.details["consecutive"] == "3"
    print(trip.reason)
    # broken by another outcome
    run.on_rejection("VENUE_UNAVAILABLE", at[4])
    run.on_rejection("VENUE_UNAVAILABLE", at[5])
    assert run.on_rejection("MAX_GROSS_EXPOSURE", at[6]) is None
    assert run.on_rejection("VENUE_UNAVAILABLE", at[7]) is None
    # broken by a long gap
    gap = ts.VenueFailures(2, gap=timedelta(seconds=10))
    gap.on_rejection("VENUE_UNAVAILABLE", T0)
    assert gap.on_rejection("VENUE_UNAVAILABLE", T0 + timedelta(seconds=11)) is None
    assert gap.on_rejection("VENUE_UNAVAILABLE", T0 + timedelta(seconds=12)) is not None


def test_rejection_burst() -> None:
    burst = ts.RejectionBurst(4, timedelta(seconds=10))
    assert burst.on_rejection("MAX_DAILY_LOSS", T0) is None
    assert burst.on_rejection("INVALID_SYMBOL", T0 + timedelta(seconds=11)) is None  # T0 aged out
    assert burst.on_rejection("HALTED", T0 + timedelta(seconds=12)) is None  # quiet
    assert burst.on_rejection("SIGNAL_REJECTED_BY_HUMAN", T0 + timedelta(seconds=12)) is None
    assert burst.on_rejection("INVALID_SYMBOL", T0 + timedelta(seconds=12)) is None
    assert burst.on_rejection("INVALID_SYMBOL", T0 + timedelta(seconds=13)) is None
    trip = burst.on_rejection("STOP_WRONG_SIDE", T0 + timedelta(seconds=14))
    assert trip is not None
    assert trip.trigger == "rejection_burst"
    assert trip.details == {"rejections": "4", "seconds": "3.000", "window_seconds": "10",
                            "last_code": "STOP_WRONG_SIDE"}
    print(trip.reason)
    assert burst.on_rejection("INVALID_SYMBOL", T0 + timedelta(seconds=15)) is None  # reset


@pytest.mark.parametrize("kind", list(AlertKind))
def test_mismatch(kind: AlertKind) -> None:
    trip = ts.mismatch(kind, "DU1 AAPL: the venue holds 10, the fills add up to 0",
                       {"venue_quantity": "10", "fills_quantity": "0", "noise": "x"}, "AAPL")
    assert (trip is not None) is (kind in ts.MISMATCH_KINDS)
    if trip is not None:
        assert trip.action is ControlAction.HALT
        assert trip.details["alert_kind"] == kind.value
        assert trip.details["venue_quantity"] == "10"
        assert "noise" not in trip.details
        assert trip.command(T0).symbol is None  # the account halts, not the symbol


def test_positions_in_scope() -> None:
    held = [("AAPL", D(10)), ("MSFT", D(-5)), ("AAPL", D(-10)), ("GOOG", D(0))]
    assert ts.positions_in_scope(held, None) == {"MSFT": D(-5)}
    assert ts.positions_in_scope(held, "MSFT") == {"MSFT": D(-5)}
    assert ts.positions_in_scope(held, "AAPL") == {}
