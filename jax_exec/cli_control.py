"""`jax-exec halt | reduce-only | flatten | resume` and `jax-exec state`: the kill switch.

A command is published on `control`; the control stage applies it and publishes the scope's
new state on `trading-state`, which this command waits for (`--wait`) and prints.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from jax_exec.kafka_security import client_auth
from jax_exec.settings import Settings
from schemas.events import ControlAction, ControlCommand, TradingStateChanged

console = Console()

By = Annotated[str, typer.Option("--by", help="Who gives the command (recorded)")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded)")]
Symbol = Annotated[str | None, typer.Option("--symbol", help="Only this symbol")]
Strategy = Annotated[str | None, typer.Option("--strategy", help="Only this strategy")]
Wait = Annotated[float, typer.Option(
    "--wait", help="Seconds to wait for the control stage to apply it (0: do not wait)")]


async def _publish(settings: Settings, command: ControlCommand) -> tuple[int, int]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True, request_timeout_ms=15000,
                                **client_auth(settings, "operator").aiokafka_kwargs())
    await asyncio.wait_for(producer.start(), 30)
    try:
        meta = await asyncio.wait_for(producer.send_and_wait(
            settings.topic("control"), value=command.model_dump_json().encode(),
            key=command.kafka_key), 30)
        return meta.partition, meta.offset
    finally:
        await producer.stop()


async def read_states(settings: Settings) -> list[TradingStateChanged]:
    """Every record on `trading-state` now, oldest first (compaction keeps the latest per
    scope; older ones may still be there until the log is cleaned)."""
    from agents.readback import read_all

    rows: list[TradingStateChanged] = []

    def visit(obj: dict[str, Any]) -> None:
        try:
            rows.append(TradingStateChanged.model_validate(obj))
        except ValueError:
            return

    await asyncio.wait_for(read_all(settings.kafka_bootstrap, settings.topic("trading-state"),
                                    visit, client_auth(settings, "operator")), 60)
    return rows


def current(states: list[TradingStateChanged]) -> list[TradingStateChanged]:
    from agents.decisions.trading_state import TradingTable

    table = TradingTable()
    for state in states:
        table.observe(state)
    return table.rows()


async def _await_state(settings: Settings, command: ControlCommand, wait: float
                       ) -> TradingStateChanged | None:
    """The command's last state event (for FLATTEN: its HALTED), within `wait` seconds."""
    deadline = time.monotonic() + wait
    final = command.command is not ControlAction.FLATTEN
    last = None
    while time.monotonic() < deadline:
        mine = [s for s in await read_states(settings) if s.causation_id == command.event_id]
        last = mine[-1] if mine else last
        if last is not None and (final or last.mode.value == "halted"):
            return last
        await asyncio.sleep(0.5)
    return last


def _issue(action: ControlAction, by: str, reason: str, symbol: str | None,
           strategy: str | None, wait: float) -> None:
    if symbol and strategy:
        console.print("[red]error:[/red] give --symbol or --strategy, not both")
        raise typer.Exit(2)
    try:
        command = ControlCommand.model_validate({
            "command": action, "issued_by": by, "reason": reason, "symbol": symbol,
            "strategy_id": strategy, "occurred_at": datetime.now(UTC).isoformat()})
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    settings = Settings()
    part, off = asyncio.run(_publish(settings, command))
    console.print(f"{action.value.upper()} {command.scope} by {by} ({reason}) -> "
                  f"{settings.topic('control')}[{part}]@{off}  command {command.event_id}")
    if wait <= 0:
        return
    state = asyncio.run(_await_state(settings, command, wait))
    if state is None:
        console.print(f"[yellow]not applied within {wait:g}s[/yellow]: is a worker running the "
                      "control stage? The command waits on `control` and applies when one runs.")
        raise typer.Exit(3)
    console.print(f"{state.scope}: [bold]{state.mode.value}[/bold]"
                  + (f"  {_details(state)}" if state.details else ""))
    if state.details.get("complete") == "false":
        console.print("[red]the flatten did not finish[/red]: check the venue (open orders, "
                      "positions) and run `jax-exec flatten` again")
        raise typer.Exit(4)


def _details(state: TradingStateChanged) -> str:
    return ", ".join(f"{k}={v}" for k, v in state.details.items() if v)


def register(app: typer.Typer) -> None:
    """Add the kill-switch commands to the `jax-exec` app."""

    @app.command()
    def halt(by: By, reason: Reason, symbol: Symbol = None, strategy: Strategy = None,
             wait: Wait = 10.0) -> None:
        """Stop new orders (account, --symbol or --strategy); approvals and intents in flight
        are refused with HALTED. Latched until `resume`."""
        _issue(ControlAction.HALT, by, reason, symbol, strategy, wait)

    @app.command("reduce-only")
    def reduce_only(by: By, reason: Reason, symbol: Symbol = None, strategy: Strategy = None,
                    wait: Wait = 10.0) -> None:
        """Only orders that reduce an existing position (never open, add or flip)."""
        _issue(ControlAction.REDUCE_ONLY, by, reason, symbol, strategy, wait)

    @app.command()
    def flatten(by: By, reason: Reason, symbol: Symbol = None,
                yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
                wait: Wait = 90.0) -> None:
        """EMERGENCY: cancel every open order, close every position at market (account, or
        --symbol), then HALTED."""
        scope = f"symbol {symbol}" if symbol else "the WHOLE ACCOUNT"
        if not yes and not typer.confirm(
                f"Cancel every open order and close every position of {scope} at market?"):
            raise typer.Exit(1)
        _issue(ControlAction.FLATTEN, by, reason, symbol, None, wait)

    @app.command()
    def resume(by: By, reason: Reason, symbol: Symbol = None, strategy: Strategy = None,
               wait: Wait = 10.0) -> None:
        """Trade normally again in this scope (a wider scope's halt still applies)."""
        _issue(ControlAction.RESUME, by, reason, symbol, strategy, wait)

    @app.command()
    def state(history: Annotated[bool, typer.Option(
            help="Every state record still on the topic, not only the current ones")] = False
              ) -> None:
        """The trading state of every scope: mode, since when, by whom, why."""
        settings = Settings()
        states = asyncio.run(read_states(settings))
        rows = states if history else current(states)
        table = Table("scope", "mode", "since (UTC)", "by", "reason", "command", "details")
        for s in rows:
            table.add_row(s.scope, s.mode.value, s.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
                          s.issued_by, s.reason or "", s.command.value, _details(s))
        console.print(table if rows else "every scope ACTIVE (no command was ever applied)")
