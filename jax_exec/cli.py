"""`jax-exec`: run Kafka, the worker, the simulator; publish signals and decisions; look."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agents.kafka_auth import KafkaAuthError
from jax_exec.cli_api import register as register_api_commands
from jax_exec.cli_bench import register as register_bench_command
from jax_exec.cli_control import register as register_control_commands
from jax_exec.cli_keys import register as register_key_commands
from jax_exec.cli_rollout import register as register_rollout_commands
from jax_exec.cli_status import register as register_status
from jax_exec.kafka_local import KafkaControlError, LocalKafka
from jax_exec.kafka_security import client_auth, credentials_dir, local_kafka, secure_topics
from jax_exec.settings import Settings
from schemas.examples import SEED_SIGNAL

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                  help="Jax Execution: approved signals to broker orders, audited.")
kafka_app = typer.Typer(no_args_is_help=True, help="The local Apache Kafka broker (KRaft).")
app.add_typer(kafka_app, name="kafka")
register_control_commands(app)
register_key_commands(app)
register_api_commands(app)
register_status(app)
register_rollout_commands(app)
register_bench_command(app)
console = Console()



def _settings() -> Settings:
    return Settings()


def _local_kafka(settings: Settings) -> LocalKafka:
    return LocalKafka.from_bootstrap(settings.jax_home, settings.kafka_bootstrap)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


# -- kafka ---------------------------------------------------------------------------------


@kafka_app.command("start")
def kafka_start(
    secure: Annotated[bool, typer.Option(
        help="SASL/SCRAM and ACLs: one principal per component, credentials generated under "
             "JAX_HOME/kafka/credentials")] = False,
) -> None:
    """Install (once), format (once) and start the local broker; wait until it serves."""
    settings = _settings()
    acls = 0
    try:
        kafka = local_kafka(settings.jax_home, settings.kafka_bootstrap, secure)
        with console.status(f"starting Kafka {kafka.version} on {kafka.bootstrap} ..."):
            pid = kafka.start()
            if secure:
                created, acls = asyncio.run(secure_topics(settings))
            else:
                created = asyncio.run(_ensure_topics(settings))
    except KafkaControlError as exc:
        _fail(str(exc))
        return
    console.print(f"Kafka {kafka.version} ready on {kafka.bootstrap} (pid {pid}); "
                  f"data {kafka.data_dir}; logs {kafka.logs_dir}")
    if secure:
        console.print(f"SASL/SCRAM-SHA-512, {acls} ACLs; credentials (one file per principal) "
                      f"in {credentials_dir(settings.jax_home)}")
    if created:
        console.print(f"created topics: {', '.join(created)}")


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the local broker (controlled shutdown)."""
    kafka = _local_kafka(_settings())
    console.print("stopped" if kafka.stop() else "not running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Is the local broker running, and which topics exist with how many partitions."""
    settings = _settings()
    kafka = _local_kafka(settings)
    pid = kafka.pid()
    console.print(f"Kafka {kafka.version}: {'running, pid ' + str(pid) if pid else 'not running'};"
                  f" {kafka.bootstrap} {'reachable' if kafka.reachable() else 'unreachable'}")
    if kafka.reachable():
        from jax_exec.topics_admin import describe_topics

        topics = asyncio.run(describe_topics(settings.kafka_bootstrap, settings.topic_prefix,
                                             client_auth(settings, "admin")))
        for name, partitions in sorted(topics.items()):
            console.print(f"  {name}: {partitions} partitions")
    if pid is None:
        raise typer.Exit(3)


async def _ensure_topics(settings: Settings) -> list[str]:
    from jax_exec.topics_admin import ensure_topics

    return await ensure_topics(settings.kafka_bootstrap, settings.topic_prefix,
                               auth=client_auth(settings, "admin"))


@app.command()
def topics() -> None:
    """Create the declared topics (idempotent) and list them."""
    settings = _settings()
    created = asyncio.run(_ensure_topics(settings))
    console.print(f"created: {', '.join(created) or 'none (all present)'}")


# -- worker and run ------------------------------------------------------------------------


@app.command()
def worker(
    stage: Annotated[list[str] | None, typer.Option(
        help="Stage(s) this process runs: validation, sizing, submission, reconciliation, "
             "audit. Default: all.")] = None,
    web_port: Annotated[int | None, typer.Option(
        help="Serve /health and /sql on 127.0.0.1 (the audit process owns ClickHouse)")] = None,
    api: Annotated[bool, typer.Option(
        help="Serve the HTTP API (API_HOST:API_PORT) from this process (needs the audit "
             "stage: it shares its ClickHouse)")] = False,
) -> None:
    """Run the pipeline's faust worker (all stages, or the ones named)."""
    from agents.app import STAGES
    from jax_exec.runner import run_worker

    chosen = stage or list(STAGES)
    port = web_port if web_port is not None else (6066 if "audit" in chosen else None)
    run_worker(_settings(), chosen, web_port=port, api=api)


@app.command()
def run(
    web_port: Annotated[int, typer.Option(help="Port of /health and /sql")] = 6066,
    simulator: Annotated[bool, typer.Option(
        help="Embed the simulator (the venue's front door + admin API); --no-simulator trades "
             "with the venue's own settings (a real paper account)")] = True,
    insecure: Annotated[bool, typer.Option(
        help="Start the local broker PLAINTEXT (no SASL, no ACLs)")] = False,
) -> None:
    """Everything in one foreground command: Kafka, the simulator, the worker. Ctrl-C stops."""
    from jax_exec.runner import run_all

    run_all(_settings(), web_port=web_port, simulator=simulator, secure=not insecure)


@app.command()
def sim() -> None:
    """The exchange simulator alone: TWS API (SIM_PORT, 7497) and admin API (SIM_ADMIN_PORT,
    7498), state in <JAX_HOME>/sim/sim.sqlite. Settings: SIM_* environment variables."""
    from brokers.sim.runner import main_standalone

    raise typer.Exit(main_standalone())


# -- publishing ------------------------------------------------------------------------------


async def _publish(settings: Settings, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True,
                                **client_auth(settings, "upstream").aiokafka_kwargs())
    await producer.start()
    try:
        meta = await producer.send_and_wait(settings.topic(topic), value=value, key=key)
        return meta.partition, meta.offset
    finally:
        await producer.stop()


@app.command("publish-signal")
def publish_signal(
    file: Annotated[Path | None, typer.Option(help="A JSON file with the signal")] = None,
    new_id: Annotated[bool, typer.Option(help="Give the signal a fresh id")] = False,
) -> None:
    """Publish a signal (default: the seed's AAPL example) to `signals`."""
    from schemas.events import Signal

    settings = _settings()
    obj = json.loads(file.read_text()) if file else dict(SEED_SIGNAL)
    if new_id:
        obj["id"] = str(uuid.uuid4())
    signal = Signal.model_validate(obj)
    part, off = asyncio.run(_publish(settings, "signals", signal.kafka_key,
                                     json.dumps(obj).encode()))
    console.print(f"signal {signal.id} ({signal.symbol} {signal.side.value}) -> "
                  f"{settings.topic('signals')}[{part}]@{off}")


async def _find_signal(settings: Settings, signal_id: str) -> dict[str, Any] | None:
    from agents.readback import read_all

    found: list[dict[str, Any]] = []

    def visit(obj: dict[str, Any]) -> None:
        if obj.get("id") == signal_id:
            found.append(obj)

    await read_all(settings.kafka_bootstrap, settings.topic("signals"), visit,
                   client_auth(settings, "upstream"))
    return found[-1] if found else None


def _decide(signal_id: str, decision: str, by: str, reason: str | None,
            expires_in: float | None) -> None:
    """Publish a decision signed with the approver's key under JAX_HOME/keys."""
    from agents.decisions.signatures import sign
    from jax_exec.keys import KeyringError, signing_key
    from schemas.events import Approval

    settings = _settings()
    signal = asyncio.run(_find_signal(settings, signal_id))
    if signal is None:
        _fail(f"no signal with id {signal_id} on {settings.topic('signals')}")
        return
    try:
        key = signing_key(settings.jax_home, by, settings.approval_keyring)
    except KeyringError as exc:
        _fail(f"{exc}; make a key with `jax-exec keys add {by}` (or `make run` for alice/bob)")
        return
    now = datetime.now(UTC)
    body: dict[str, Any] = {"signal": signal, "decision": decision, "approved_by": by,
                            "decided_at": now.isoformat()}
    if reason:
        body["reason"] = reason
    if expires_in:
        body["expires_at"] = (now + timedelta(seconds=expires_in)).isoformat()
    published = sign(body, key.private_key, key.key_id)
    approval = Approval.model_validate(published)
    part, off = asyncio.run(_publish(settings, "approvals", approval.kafka_key,
                                     json.dumps(published).encode()))
    console.print(f"{decision} signal {signal_id} by {by} (key {key.key_id}) -> "
                  f"{settings.topic('approvals')}[{part}]@{off}")


@app.command()
def approve(
    signal_id: str,
    by: Annotated[str, typer.Option("--by", help="Who approves (their key signs)")] = "alice",
    reason: Annotated[str | None, typer.Option(help="Why")] = None,
    expires_in: Annotated[float | None, typer.Option(help="Seconds the approval is valid")] = None,
) -> None:
    """Approve a signal already on `signals`: a signed approval that carries the signal."""
    _decide(signal_id, "approved", by, reason, expires_in)


@app.command()
def reject(
    signal_id: str,
    by: Annotated[str, typer.Option("--by", help="Who rejects (their key signs)")] = "alice",
    reason: Annotated[str | None, typer.Option(help="Why")] = None,
) -> None:
    """Reject a signal: no order; the signed decision is on record."""
    _decide(signal_id, "rejected", by, reason, None)


# -- looking -------------------------------------------------------------------------------


@app.command()
def tail(
    topic: str,
    count: Annotated[int, typer.Option(help="Show the last N events")] = 20,
) -> None:
    """Print the last events of a topic (signals, approvals, order-intents, orders, fills,
    rejections, control, dead-letter)."""
    from agents.readback import read_all

    settings = _settings()
    rows: list[dict[str, Any]] = []
    asyncio.run(read_all(settings.kafka_bootstrap, settings.topic(topic), rows.append,
                         client_auth(settings, "audit")))
    rows.sort(key=lambda obj: str(obj.get("recorded_at", "")))  # partitions interleave
    for obj in rows[-count:]:
        console.print_json(json.dumps(obj))


@app.command()
def sql(
    query: str,
    web_port: Annotated[int, typer.Option(help="The audit worker's port (embedded mode)")] = 6066,
) -> None:
    """Run a read-only SQL query on the audit store (through the worker when embedded)."""
    from jax_exec.web import query_rows

    settings = _settings()
    try:
        columns, rows = query_rows(settings, query, web_port)
    except Exception as exc:
        _fail(str(exc))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    console.print(table)


@app.command()
def trace(
    correlation_id: str,
    web_port: Annotated[int, typer.Option(help="The audit worker's port (embedded mode)")] = 6066,
) -> None:
    """One signal's whole story in causal order: signal, decision (and by whom), intent,
    orders, fills, rejections."""
    from jax_exec.web import fetch_trace

    try:
        steps = fetch_trace(_settings(), correlation_id, web_port)
    except Exception as exc:  # shown to the operator as is
        _fail(str(exc))
        return
    table = Table("when (UTC)", "event", "topic", "what")
    for step in steps:
        indent = "  " * int(step.get("depth", 0))
        table.add_row(str(step["occurred_at"])[:23], indent + str(step["event_type"]),
                      str(step["topic"]), str(step.get("summary", "")))
    console.print(table)


def main() -> None:
    from jax_exec.logging_setup import setup_process

    setup_process(sys.argv[1:])  # JSON or text logs; /metrics on METRICS_PORT
    try:
        app()
    except (KafkaControlError, KafkaAuthError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
