"""`jax-exec rollout report | go-live | ramp | status`: the paper-to-live gate.

`report` judges the paper period from ClickHouse against ROLLOUT_* thresholds. `go-live`
re-runs the report and, only when it passes, publishes an admin's signed GO_LIVE decision
naming the live account on `rollout`; `ramp` publishes a signed step of the live size factor
and notional cap from the grant in force. The decisions are audited (ClickHouse `events`).
With embedded chdb the store is one process's: run the report with the audit worker stopped,
or point CLICKHOUSE_URL at a server.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agents.decisions.rollout import (
    PaperFigures,
    RolloutBook,
    RolloutReport,
    RolloutThresholds,
    go_live,
    ramp,
    rollout_report,
    unsigned_body,
)
from jax_exec.kafka_security import client_auth
from jax_exec.settings import Settings
from schemas.events import RolloutDecision

console = Console()
rollout_app = typer.Typer(no_args_is_help=True,
                          help="The paper-to-live rollout gate: report, go-live, ramp.")

Since = Annotated[datetime | None, typer.Option(help="Paper period start (UTC ISO 8601)")]
Until = Annotated[datetime | None, typer.Option(help="Paper period end (default now)")]
By = Annotated[str, typer.Option("--by", help="The admin who decides (their key signs)")]
Account = Annotated[str, typer.Option("--account", help="The live account id (U...)")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why (recorded)")]
TIMEOUT = 30.0


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def read_report(settings: Settings, since: datetime | None, until: datetime | None,
                      account: str | None, thresholds: RolloutThresholds,
                      database: str | None = None) -> RolloutReport:
    """The paper period's figures from the store, judged."""
    from store.client import ClickHouse
    from store.queries import paper_period

    async with asyncio.timeout(120):
        async with ClickHouse(settings.clickhouse_dsn, database) as ch:
            period = await paper_period(ch, since, until, account)
    return rollout_report(PaperFigures(**asdict(period)), thresholds)


def print_report(report: RolloutReport) -> None:
    table = Table(title="rollout report: " + ("PASS" if report.passed else "FAIL"))
    for column in ("check", "value", "threshold", ""):
        table.add_column(column)
    for c in report.checks:
        table.add_row(c.name, c.value, c.threshold, "[green]ok" if c.passed else "[red]FAIL")
    console.print(table)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.figures.rejections.items()))
    console.print(f"rejections by reason: {reasons or 'none'}")


async def _publish(settings: Settings, raw: bytes, key: bytes) -> tuple[int, int]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True, request_timeout_ms=15000,
                                **client_auth(settings, "operator").aiokafka_kwargs())
    await asyncio.wait_for(producer.start(), TIMEOUT)
    try:
        meta = await asyncio.wait_for(producer.send_and_wait(
            settings.topic("rollout"), value=raw, key=key), TIMEOUT)
        return meta.partition, meta.offset
    finally:
        await producer.stop()


async def read_book(settings: Settings, thresholds: RolloutThresholds,
                    now: datetime) -> RolloutBook:
    """Every signed decision on `rollout`, folded into the grants in force."""
    from agents.readback import read_all
    from jax_exec.keys import keyring_path, load_keyring

    book = RolloutBook(load_keyring(keyring_path(settings.jax_home, settings.approval_keyring)),
                       thresholds)
    raws: list[bytes] = []
    await asyncio.wait_for(read_all(settings.kafka_bootstrap, settings.topic("rollout"),
                                    lambda obj: raws.append(json.dumps(obj).encode()),
                                    client_auth(settings, "operator")), 120)
    for raw in raws:
        book.on_record(raw, now)
    return book


def sign_and_publish(settings: Settings, decision: RolloutDecision, by: str) -> None:
    """Sign with the admin's key under JAX_HOME/keys and publish on `rollout`."""
    from agents.decisions.signatures import sign
    from jax_exec.keys import KeyringError, signing_key

    try:
        key = signing_key(settings.jax_home, by, settings.approval_keyring)
    except KeyringError as exc:
        _fail(f"{exc}; make an admin key with `jax-exec keys add {by}`")
        return
    published = sign(unsigned_body(decision), key.private_key, key.key_id)
    RolloutDecision.model_validate(published)
    raw = json.dumps(published).encode()
    part, off = asyncio.run(_publish(settings, raw, decision.kafka_key))
    console.print(f"{decision.action.value} {decision.account_id}: factor "
                  f"{decision.ramp_factor}, cap {decision.max_order_notional}, signed by {by} "
                  f"(key {key.key_id}) -> {settings.topic('rollout')}[{part}]@{off}")


def report(since: Since = None, until: Until = None,
           account: Annotated[str | None, typer.Option(help="Only this account's orders")] = None,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Judge the paper period (exit 1 when it fails a threshold)."""
    result = asyncio.run(read_report(Settings(), _utc(since), _utc(until), account,
                                     RolloutThresholds()))
    if as_json:
        console.print_json(json.dumps({**result.as_dict(), "sha256": result.sha256()}))
    else:
        print_report(result)
    if not result.passed:
        raise typer.Exit(1)


def go_live_command(account: Account, by: By, since: Since = None, reason: Reason = None,
                    paper_account: Annotated[str | None, typer.Option(
                        help="The paper account whose period is judged")] = None) -> None:
    """Publish the signed GO_LIVE decision for ACCOUNT, only on a passing report."""
    settings, thresholds, now = Settings(), RolloutThresholds(), datetime.now(UTC)
    result = asyncio.run(read_report(settings, _utc(since), now, paper_account, thresholds))
    print_report(result)
    decision = go_live(result, account, by, now, thresholds, reason)
    if not isinstance(decision, RolloutDecision):
        _fail(f"{decision.code}: {decision.message}")
        return
    sign_and_publish(settings, decision, by)


def ramp_command(account: Account, by: By,
                 factor: Annotated[Decimal, typer.Option(help="New live size factor, (0, 1]")],
                 notional: Annotated[Decimal, typer.Option(help="New live order value cap")],
                 reason: Reason = None) -> None:
    """Publish a signed step of ACCOUNT's live ramp from the grant in force."""
    settings, thresholds, now = Settings(), RolloutThresholds(), datetime.now(UTC)
    book = asyncio.run(read_book(settings, thresholds, now))
    decision = ramp(book.grant(account), account, factor, notional, by, now, thresholds, reason)
    if not isinstance(decision, RolloutDecision):
        _fail(f"{decision.code}: {decision.message}")
        return
    sign_and_publish(settings, decision, by)


def status() -> None:
    """The live grants in force, from the signed decisions on `rollout`."""
    book = asyncio.run(read_book(Settings(), RolloutThresholds(), datetime.now(UTC)))
    rows: list[dict[str, Any]] = [
        {"account": g.account_id, "ramp_factor": str(g.ramp_factor),
         "max_order_notional": str(g.max_order_notional), "decided_by": g.decided_by}
        for g in book.grants.values()]
    console.print_json(json.dumps({"grants": rows, "refused": len(book.refused)}))


def register(app: typer.Typer) -> None:
    rollout_app.command("report")(report)
    rollout_app.command("go-live")(go_live_command)
    rollout_app.command("ramp")(ramp_command)
    rollout_app.command("status")(status)
    app.add_typer(rollout_app, name="rollout")
