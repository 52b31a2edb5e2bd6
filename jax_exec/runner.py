"""Run a worker process in the foreground, and `run`: Kafka + simulator + worker in one."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
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
               banner: list[str] | None = None, loop: asyncio.AbstractEventLoop | None = None,
               closers: list[Callable[[], Any]] | None = None) -> None:
    """Build the worker in its loop, then hand the loop to faust until SIGINT/SIGTERM."""
    risk = load_risk()
    if loop is None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    built = loop.run_until_complete(
        build_worker(settings, stages, risk=risk, web_port=web_port, closers=closers))
    venue = built.venue.service.venue if built.venue else "none (no stage here trades)"
    where = {"ib": f"{settings.ib_host}:{settings.ib_port}", "sim": "in-process simulator"}.get(
        venue, "")
    lines = [*(banner or []),
             f"worker      stages: {', '.join(sorted(set(stages)))}",
             f"venue       {venue} {where}",
             f"clickhouse  {settings.clickhouse_dsn}",
             f"topics      prefix '{settings.topic_prefix}' on {settings.kafka_bootstrap}"]
    if web_port is not None:
        lines.append(f"web         http://127.0.0.1:{web_port}/health  /sql?q=...")
    worker = AnnouncingWorker(built.app, built.resources, loop=loop, loglevel=settings.log_level,
                              redirect_stdouts=False)
    worker.banner = lines
    worker.execute_from_commandline()


def run_all(settings: Settings, web_port: int = 6066, simulator: bool = True) -> None:
    """Kafka (when local and not running), the simulator (its TWS API and admin API in this
    process, reached by the IB adapter over a real socket) and every stage. Ctrl-C stops all of
    it, including the broker this command started."""
    from agents.app import STAGES

    kafka = LocalKafka.from_bootstrap(settings.jax_home, settings.kafka_bootstrap)
    started = kafka.pid() is None
    with console.status(f"starting Kafka {kafka.version} on {kafka.bootstrap} ..."):
        kafka.start()
    banner = [f"kafka       {kafka.bootstrap} {'started' if started else 'already running'}"
              f" (data {kafka.data_dir}, logs {kafka.logs_dir})"]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    closers: list[Callable[[], Any]] = []
    try:
        if simulator and settings.venue == "ib":
            settings, sim = _embedded_simulator(settings, loop)
            closers.append(sim.close)
            banner += [f"simulator   {line}" for line in sim.describe()]
        run_worker(settings, STAGES, web_port=web_port, banner=banner, loop=loop,
                   closers=closers)
    finally:
        if started:
            console.print("stopping Kafka ...")
            kafka.stop()


def _embedded_simulator(
    settings: Settings, loop: asyncio.AbstractEventLoop
) -> tuple[Settings, Any]:
    """Start the simulator in the worker's loop and point the IB adapter at its TWS port."""
    from brokers.sim.runner import Simulator, SimulatorSettings

    sim = Simulator(SimulatorSettings(jax_home=settings.jax_home))
    loop.run_until_complete(sim.start())
    return settings.model_copy(update={"ib_host": "127.0.0.1", "ib_port": sim.tws_port}), sim
