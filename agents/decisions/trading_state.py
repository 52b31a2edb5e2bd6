"""The kill switch's decisions, pure: how a command changes a scope's trading state, which
state applies to an order, whether the order may go, and when an automatic trip fires.

Scopes are the whole account (`account`), one symbol (`symbol:AAPL`) or one strategy
(`strategy:ma_crossover_v1`). Each scope has its own latched state; a command changes only
its own scope. An order is subject to three scopes at once (the account, its symbol, its
strategy) and the MOST RESTRICTIVE state among them wins (HALTED / FLATTENING > REDUCE_ONLY >
ACTIVE): a narrower RESUME never lifts a wider HALT, so lifting a halt always takes a RESUME
of the very scope that was halted (`jax-exec state` lists them all).

REDUCE_ONLY lets through only an order that makes an existing position smaller without
flipping it: a SELL of at most the long quantity, a BUY of at most the short quantity.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from agents.decisions.reasons import GATE_CODES, ReasonCode, Refusal, Stage
from brokers.port import AccountSnapshot
from schemas.events import (
    AlertKind,
    ControlAction,
    ControlCommand,
    ScopeKind,
    Side,
    TradingMode,
    TradingStateChanged,
    scope_key,
)

ZERO = Decimal(0)
ACCOUNT = scope_key(ScopeKind.ACCOUNT)

# How restrictive a mode is: the largest among an order's scopes applies.
RANK = {TradingMode.ACTIVE: 0, TradingMode.REDUCE_ONLY: 1, TradingMode.FLATTENING: 2,
        TradingMode.HALTED: 3}
MODE_OF = {ControlAction.HALT: TradingMode.HALTED, ControlAction.REDUCE_ONLY:
           TradingMode.REDUCE_ONLY, ControlAction.RESUME: TradingMode.ACTIVE,
           ControlAction.FLATTEN: TradingMode.FLATTENING}


def scopes_of(symbol: str, strategy_id: str | None) -> list[str]:
    """The scopes an order of this symbol and strategy is subject to."""
    out = [ACCOUNT, scope_key(ScopeKind.SYMBOL, symbol)]
    if strategy_id:
        out.append(scope_key(ScopeKind.STRATEGY, strategy_id))
    return out


@dataclass
class TradingTable:
    """Each scope's latest state event (what the compacted `trading-state` topic holds)."""

    states: dict[str, TradingStateChanged] = field(default_factory=dict)

    def observe(self, event: TradingStateChanged) -> bool:
        """Take a state event (read back, tailed, or just published); a state from an earlier
        command never replaces a later one's (commands are ordered by their `control`
        offset). True when the table changed."""
        current = self.states.get(event.scope)
        if current is not None and event.command_offset < current.command_offset:
            return False
        self.states[event.scope] = event
        return current != event

    def state_of(self, scope: str) -> TradingStateChanged | None:
        return self.states.get(scope)

    def mode_of(self, scope: str) -> TradingMode:
        state = self.states.get(scope)
        return state.mode if state is not None else TradingMode.ACTIVE

    def effective(self, symbol: str, strategy_id: str | None) -> TradingStateChanged | None:
        """The most restrictive state among the order's scopes; None when all are ACTIVE
        (ties go to the wider scope, listed first)."""
        chosen: TradingStateChanged | None = None
        for scope in scopes_of(symbol, strategy_id):
            state = self.states.get(scope)
            if state is None or state.mode is TradingMode.ACTIVE:
                continue
            if chosen is None or RANK[state.mode] > RANK[chosen.mode]:
                chosen = state
        return chosen

    def rows(self) -> list[TradingStateChanged]:
        """Every scope's state, the account first, then by scope."""
        return sorted(self.states.values(), key=lambda s: (s.scope != ACCOUNT, s.scope))


# ---------------------------------------------------------------- commands -> states


def state_event(command: ControlCommand, offset: int, mode: TradingMode,
                previous: TradingMode, now: datetime, account_id: str | None = None,
                details: dict[str, str] | None = None) -> TradingStateChanged:
    """The state a command leaves its scope in; its id derives from the command and the mode,
    so a redelivered command yields the same event."""
    return TradingStateChanged(
        event_id=TradingStateChanged.derive_event_id(command.event_id, mode),
        correlation_id=command.event_id, causation_id=command.event_id,
        occurred_at=now, recorded_at=now,
        scope=command.scope, scope_kind=command.scope_kind, symbol=command.symbol,
        strategy_id=command.strategy_id, mode=mode, previous_mode=previous,
        command=command.command, command_offset=offset, issued_by=command.issued_by,
        reason=command.reason, account_id=account_id,
        details={**command.details, **(details or {})},
    )


@dataclass(frozen=True)
class Applied:
    """What applying a command does now: the state to publish, and whether a flatten runs."""

    state: TradingStateChanged | None  # None: superseded by a later command, nothing to do
    flatten: bool = False


def apply_command(table: TradingTable, command: ControlCommand, offset: int, now: datetime,
                  account_id: str | None = None) -> Applied:
    """HALT -> HALTED, REDUCE_ONLY -> REDUCE_ONLY, RESUME -> ACTIVE, FLATTEN -> FLATTENING (and
    HALTED once the flatten has run: `flattened`). A command older than the scope's current
    state (a redelivery after a later command was applied) changes nothing; a FLATTEN whose
    flatten already completed is not run again."""
    current = table.state_of(command.scope)
    if current is not None and offset < current.command_offset:
        return Applied(None)
    previous = current.mode if current is not None else TradingMode.ACTIVE
    if (command.command is ControlAction.FLATTEN and current is not None
            and current.command_offset == offset and current.mode is TradingMode.HALTED):
        return Applied(None)  # this very FLATTEN finished already (redelivered)
    if current is not None and current.command_offset == offset:
        previous = current.previous_mode  # redelivered: the same event again
    mode = MODE_OF[command.command]
    state = state_event(command, offset, mode, previous, now, account_id)
    return Applied(state, flatten=command.command is ControlAction.FLATTEN)


def flattened(command: ControlCommand, offset: int, now: datetime, account_id: str | None,
              details: dict[str, str]) -> TradingStateChanged:
    """The end of a FLATTEN: the scope is HALTED, with what the flatten did."""
    return state_event(command, offset, TradingMode.HALTED, TradingMode.FLATTENING, now,
                       account_id, details)


# ---------------------------------------------------------------- the gate's decision


def signed(side: Side, quantity: Decimal) -> Decimal:
    return quantity if side is Side.BUY else -quantity


def reduces(side: Side, quantity: Decimal, position: Decimal) -> bool:
    """Whether the order shrinks the position without flipping it (nothing to reduce when
    flat)."""
    if position == ZERO or quantity <= ZERO:
        return False
    after = position + signed(side, quantity)
    return abs(after) < abs(position) and (after == ZERO or (after > 0) == (position > 0))


def _who(state: TradingStateChanged) -> dict[str, object]:
    return {"scope": state.scope, "mode": state.mode.value, "issued_by": state.issued_by,
            "reason": state.reason, "since": state.occurred_at.isoformat(),
            "command_event_id": state.causation_id}


def halted_refusal(state: TradingStateChanged, stage: Stage) -> Refusal:
    what = "being flattened" if state.mode is TradingMode.FLATTENING else "halted"
    return Refusal.of(
        ReasonCode.HALTED,
        f"trading is {what} for {state.scope} since {state.occurred_at:%Y-%m-%d %H:%M:%S}Z "
        f"by {state.issued_by} ({state.reason or 'no reason given'}); nothing was placed",
        stage, **_who(state))


def admit(state: TradingStateChanged | None, side: Side, quantity: Decimal,
          position: Decimal | None, stage: Stage) -> Refusal | None:
    """The gate's answer for one order under the state that applies to it (None: it may go).
    `position` is the signed quantity held in the order's symbol (None: unknown, which
    REDUCE_ONLY refuses)."""
    if state is None or state.mode is TradingMode.ACTIVE:
        return None
    if state.mode is not TradingMode.REDUCE_ONLY:
        return halted_refusal(state, stage)
    if position is not None and reduces(side, quantity, position):
        return None
    held = "unknown" if position is None else format(position, "f")
    after = None if position is None else position + signed(side, quantity)
    return Refusal.of(
        ReasonCode.REDUCE_ONLY,
        f"{state.scope} is reduce-only (by {state.issued_by}: {state.reason or 'no reason'}): "
        f"{side.value} {quantity} against a position of {held} would "
        f"{'open' if position in (None, ZERO) else 'add to or flip'} a position; refused",
        stage, side=side.value, quantity=quantity, position=held, position_after=after,
        **_who(state))


def unknown_refusal(stage: Stage, why: str) -> Refusal:
    return Refusal.of(
        ReasonCode.TRADING_STATE_UNKNOWN,
        f"the trading state (kill switch) cannot be confirmed: {why}; nothing is placed "
        "until it can", stage, why=why)


def check(table: TradingTable, symbol: str, strategy_id: str | None, side: Side,
          quantity: Decimal, position: Decimal | None, stage: Stage) -> Refusal | None:
    """The whole gate decision over a table."""
    return admit(table.effective(symbol, strategy_id), side, quantity, position, stage)


# ---------------------------------------------------------------- automatic trips


@dataclass(frozen=True)
class Trip:
    """An automatic trip: which trigger, what to do, why (with its figures)."""

    trigger: str
    action: ControlAction
    reason: str
    details: dict[str, str]
    symbol: str | None = None

    def command(self, now: datetime) -> ControlCommand:
        return ControlCommand.model_validate({
            "command": self.action, "issued_by": f"auto:{self.trigger}", "reason": self.reason,
            "occurred_at": now.isoformat(), "symbol": self.symbol,
            "details": {"trigger": self.trigger, **self.details}})


def daily_loss(account: AccountSnapshot, limit: Decimal, action: ControlAction) -> Trip | None:
    """Realized today + unrealized at or below -limit."""
    pnl = account.realized_pnl_today + account.unrealized_pnl
    if -pnl < limit:
        return None
    return Trip("daily_loss", action,
                f"daily loss limit breached: realized {account.realized_pnl_today} + unrealized "
                f"{account.unrealized_pnl} = {pnl} on {account.account_id}, limit -{limit}",
                {"realized_pnl_today": str(account.realized_pnl_today),
                 "unrealized_pnl": str(account.unrealized_pnl), "pnl": str(pnl),
                 "limit": str(limit), "account_id": account.account_id})


# Rejections that say nothing about the venue or the flow: the gate's own (a halt must not
# trip itself again) and a human's "no".
QUIET_CODES = GATE_CODES | {ReasonCode.SIGNAL_REJECTED_BY_HUMAN}


@dataclass
class VenueFailures:
    """N VENUE_UNAVAILABLE rejections in a row (any other rejection from a stage that reached
    the venue, or a gap longer than `gap`, breaks the run)."""

    limit: int
    gap: timedelta = timedelta(minutes=5)
    run: list[datetime] = field(default_factory=list)

    def on_rejection(self, code: str, at: datetime) -> Trip | None:
        if code in QUIET_CODES:
            return None
        if code != ReasonCode.VENUE_UNAVAILABLE:
            self.run.clear()
            return None
        if self.run and at - self.run[-1] > self.gap:
            self.run.clear()
        self.run.append(at)
        if len(self.run) < self.limit:
            return None
        first, last = self.run[0], self.run[-1]
        self.run.clear()
        return Trip("venue_failures", ControlAction.HALT,
                    f"{self.limit} consecutive VENUE_UNAVAILABLE rejections between "
                    f"{first:%H:%M:%S} and {last:%H:%M:%S}Z",
                    {"consecutive": str(self.limit), "first_at": first.isoformat(),
                     "last_at": last.isoformat()})


@dataclass
class RejectionBurst:
    """M rejections within T seconds (the gate's own refusals and human rejections aside)."""

    limit: int
    window: timedelta
    times: deque[datetime] = field(default_factory=deque)

    def on_rejection(self, code: str, at: datetime) -> Trip | None:
        if code in QUIET_CODES:
            return None
        self.times.append(at)
        while self.times and at - self.times[0] > self.window:
            self.times.popleft()
        if len(self.times) < self.limit:
            return None
        # events from several partitions arrive slightly out of time order
        seconds = (max(self.times) - min(self.times)).total_seconds()
        self.times.clear()
        return Trip("rejection_burst", ControlAction.HALT,
                    f"rejection burst: {self.limit} rejections in {seconds:.1f}s (limit "
                    f"{self.limit} in {self.window.total_seconds():g}s), the last {code}",
                    {"rejections": str(self.limit), "seconds": f"{seconds:.3f}",
                     "window_seconds": f"{self.window.total_seconds():g}", "last_code": code})


MISMATCH_KINDS = frozenset({AlertKind.EXTERNAL_ORDER, AlertKind.POSITION_MISMATCH})


def mismatch(kind: AlertKind, message: str, details: dict[str, str],
             symbol: str | None) -> Trip | None:
    """A reconciliation mismatch (an order the pipeline never placed, a position that differs
    from our fills): the account's exposure is not what the pipeline believes."""
    if kind not in MISMATCH_KINDS:
        return None
    return Trip("reconciliation_mismatch", ControlAction.HALT,
                f"reconciliation mismatch ({kind.value}): {message}",
                {"alert_kind": kind.value, **({"symbol": symbol} if symbol else {}),
                 **{k: v for k, v in details.items() if k in _FIGURES}})


_FIGURES = frozenset({"venue_quantity", "fills_quantity", "difference", "client_order_id",
                      "venue_order_id", "side", "quantity", "price", "execution_id"})


def fresh(at: datetime, now: datetime, max_age: timedelta) -> bool:
    """Old events (a first start reading history) never trip."""
    return now - at <= max_age


def positions_in_scope(positions: Iterable[tuple[str, Decimal]], symbol: str | None
                       ) -> dict[str, Decimal]:
    """Net quantity per symbol held, within a FLATTEN's scope (a symbol, or all)."""
    out: dict[str, Decimal] = {}
    for sym, qty in positions:
        if symbol is None or sym == symbol:
            out[sym] = out.get(sym, ZERO) + qty
    return {s: q for s, q in out.items() if q != ZERO}
