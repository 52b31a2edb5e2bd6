"""Run a worker process in the foreground, and `run`: Kafka + simulator + worker in one."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any

import faust
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel

from agents.decisions.config import RiskSettings
from jax_exec.kafka_local import LocalKafka
from jax_exec.settings import Settings
from jax_exec.wiring import build_worker

console = Console(stderr=True)


def load_risk() -> RiskSettings:
    """Impossible risk settings stop the process here, naming the setting."""
    try:
        return RiskSettings()
    except (ValidationError, ValueError) as exc:
        console.print(f"[red]invalid risk settings:[/red]\n{exc}")
        sys.exit(2)


class AnnouncingWorker(faust.Worker):
    """Prints where everything is once the worker really processes (partitions assigned)."""

    banner: list[str]

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        console.print(Panel("\n".join(self.banner), title="Jax Execution ready", expand=False))
        print("ready", flush=True)  # machine-readable marker for scripts and tests


def run_worker(settings: Settings, stages: Iterable[str], web_port: int | None = None,
               exchange: Any = None, banner: list[str] | None = None) -> None:
    """Build the worker in its own loop, then hand the loop to faust until SIGINT/SIGTERM."""
    risk = load_risk()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    built = loop.run_until_complete(
        build_worker(settings, stages, risk=risk, exchange=exchange, web_port=web_port))
    lines = [*(banner or []),
             f"worker      stages: {', '.join(sorted(set(stages)))}",
             f"venue       {built.venue.service.venue}"
             + (f" (account {settings.sim_account}, state {settings.sim_state_path})"
                if settings.venue == "sim" else f" {settings.ib_host}:{settings.ib_port}"),
             f"clickhouse  {settings.clickhouse_dsn}",
             f"topics      prefix '{settings.topic_prefix}' on {settings.kafka_bootstrap}"]
    if web_port is not None:
        lines.append(f"web         http://127.0.0.1:{web_port}/health  /sql?q=...")

    worker = AnnouncingWorker(built.app, built.resources, loop=loop, loglevel=settings.log_level,
                              redirect_stdouts=False)
    worker.banner = lines
    worker.execute_from_commandline()


def run_all(settings: Settings, web_port: int = 6066) -> None:
    """Kafka (when local and not running), the simulated venue and every stage; Ctrl-C stops
    all of it, including the broker this command started."""
    from agents.app import STAGES

    kafka = LocalKafka.from_bootstrap(settings.jax_home, settings.kafka_bootstrap)
    started = kafka.pid() is None
    with console.status(f"starting Kafka {kafka.version} on {kafka.bootstrap} ..."):
        kafka.start()
    banner = [f"kafka       {kafka.bootstrap} {'started' if started else 'already running'}"
              f" (data {kafka.data_dir}, logs {kafka.logs_dir})"]
    try:
        run_worker(settings, STAGES, web_port=web_port, banner=banner)
    finally:
        if started:
            console.print("stopping Kafka ...")
            kafka.stop()
