"""Run a worker process in the foreground, and `run`: Kafka + simulator + worker in one.

Stopping always works. The first SIGINT/SIGTERM starts faust's graceful stop and arms a
deadline (`HardStop`); a second signal, or the deadline passing while something (a wedged
venue call, a slow close) still holds the process, stops the Kafka broker this process started
and ends the process with os._exit(1), committing nothing: the messages in flight are
redelivered at the next start, which at-least-once processing with derived ids makes safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, NoReturn

import faust
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel

from agents import gc_pauses, metrics
from agents.decisions.config import RiskSettings
from brokers import registry
from brokers.registry import VenuePlugin
from jax_exec.kafka_security import credentials_dir, local_kafka, secure_topics
from jax_exec.logging_setup import reinstall as reinstall_logging
from jax_exec.settings import Settings
from jax_exec.wiring import build_worker

console = Console(stderr=True)

HARD_STOP_SECONDS = 8.0  # within the 10 s an operator or a supervisor waits before SIGKILL
KAFKA_KILL_SECONDS = 1.0  # on the hard path the broker gets SIGTERM, then SIGKILL after this
DRAIN_SECONDS = 3.0  # of HARD_STOP_SECONDS: finished work is committed before faust stops
DRAIN_POLL_SECONDS = 0.1


class HardStop:
    """The deadline behind the graceful stop; see the module docstring.

    `install(interrupt=True)` before faust runs: a signal also raises KeyboardInterrupt in the
    main thread, unwinding start-up. Faust's worker then puts its loop handlers in place and
    `install(interrupt=False)` goes back on top of them as the Python-level handler: the loop
    still hears of the signal through its wakeup fd, and the deadline is armed even when the
    loop itself is stuck. `hooks` run on the hard path, before the exit (stop the broker)."""

    def __init__(self, seconds: float = HARD_STOP_SECONDS) -> None:
        self.seconds = seconds
        self.hooks: list[Callable[[], Any]] = []
        self.signals = 0
        self.interrupt = False
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def install(self, interrupt: bool) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread (an embedding test, say)
        self.interrupt = interrupt
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signalled(signum)
        if self.interrupt:
            raise KeyboardInterrupt

    def signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        self.signals += 1
        if self.signals > 1:
            self.exit_now(f"second {name}")
            return  # (exit_now does not return; a test may stub os._exit)
        _say(f"{name}: stopping; exits by force in {self.seconds:g}s, at once on a second "
             "signal")
        self._timer = threading.Timer(self.seconds, self.exit_now,
                                      args=(f"still stopping {self.seconds:g}s after {name}",))
        self._timer.daemon = True
        self._timer.start()

    def exit_now(self, why: str) -> NoReturn:
        """The hard path: run the hooks, then leave without committing anything."""
        with self._lock:  # the timer thread and a second signal may race here
            _say(f"{why}: exiting now; messages in flight are redone at the next start")
            for hook in self.hooks:
                try:
                    hook()
                except Exception as exc:  # a failing hook must not keep the process alive
                    _say(f"stop hook failed: {exc!r}")
            os._exit(1)


def _in_flight(consumer: Any) -> int:
    """Messages a stream took and nobody acked yet (faust keeps them in a private set)."""
    return sum(1 for m in list(getattr(consumer, "_unacked_messages", ())) if not m.acked)


def _say(text: str) -> None:
    """Straight to stderr: called from signal handlers and a timer thread, never via rich."""
    with contextlib.suppress(OSError):
        os.write(2, f"{text}\n".encode())


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
    hard_stop: HardStop | None = None
    freeze_gc: bool = False
    gc_young_threshold: int = 0  # >0: objects made between young collections
    gc_thaw_seconds: float = 0.0  # >0: freeze each full collection's survivors too

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        if self.hard_stop is not None:
            self.hard_stop.install(interrupt=False)

    async def _stop_on_signal(self, signal: signal.Signals) -> None:
        await self._drain()
        await super()._stop_on_signal(signal)

    async def _drain(self) -> None:
        """Before faust stops: let finished work be acked (the audit sink's batch) and commit
        it, for at most DRAIN_SECONDS. Faust's own stop, with stream_wait_empty=False, does
        not wait for that, and what it misses is redone at the next start. A message stuck
        in a handler is never acked, so it is not committed: it is redone too. (Not faust's
        Consumer.wait_empty: it swallows cancellation, so no timeout can bound it.)"""
        if not metrics.faust_consumes(self.app):  # the audit sink commits what it stored
            return
        consumer = self.app.consumer
        loop = asyncio.get_running_loop()
        end = loop.time() + DRAIN_SECONDS
        try:
            await consumer.commit()
            while _in_flight(consumer) and loop.time() < end:
                await asyncio.sleep(DRAIN_POLL_SECONDS)
                await consumer.commit()
        except Exception as exc:  # draining is a courtesy: stopping goes on regardless
            _say(f"draining before the stop failed: {exc!r}")
            return
        if _in_flight(consumer):
            _say(f"{_in_flight(consumer)} message(s) still in flight after {DRAIN_SECONDS:g}s:"
                 " not committed, redone at the next start")

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        gc_pauses.young_threshold(self.gc_young_threshold)
        if self.freeze_gc:
            frozen = gc_pauses.freeze_long_lived()
            logging.getLogger(__name__).info("gc: %d objects alive at start frozen", frozen)
            if self.gc_thaw_seconds > 0:
                gc_pauses.freeze_survivors(self.gc_thaw_seconds)
        console.print(Panel("\n".join(self.banner), title="Jax Execution ready", expand=False))
        print("ready", flush=True)  # machine-readable marker for scripts and tests
        metrics.mark_ready("worker")

    def on_setup_root_logger(self, logger: Any, level: int) -> None:
        reinstall_logging()  # faust replaced the root handler: JSON/text lines as configured


def switch_interval(settings: Settings, stages: Iterable[str]) -> float | None:
    """The GIL switch interval a worker of these stages sets, or None for Python's (5 ms):
    GIL_SWITCH_SECONDS when set; otherwise the writer's for a process of the audit stage
    alone (store.writer.WRITER_SWITCH_SECONDS says why and what it measured). Not in a
    trading process: its two event loops (faust's consumer thread and the stages) hand
    messages over, and at 0.5 ms the pipeline benchmark used more CPU per approval."""
    if settings.gil_switch_seconds is not None:
        return settings.gil_switch_seconds
    if set(stages) == {"audit"}:
        from store.writer import WRITER_SWITCH_SECONDS

        return WRITER_SWITCH_SECONDS
    return None


def run_worker(settings: Settings, stages: Iterable[str], web_port: int | None = None,
               banner: list[str] | None = None, loop: asyncio.AbstractEventLoop | None = None,
               closers: list[Callable[[], Any]] | None = None,
               hard_stop: HardStop | None = None, venue_settings: Any = None,
               api: bool = False) -> None:
    """Build the worker in its loop, then hand the loop to faust until SIGINT/SIGTERM.
    `venue_settings`: the venue plugin's settings (default: read from the environment)."""
    stages = list(stages)
    interval = switch_interval(settings, stages)
    if interval is not None:
        sys.setswitchinterval(interval)
    if hard_stop is None:
        hard_stop = HardStop()
        hard_stop.install(interrupt=True)
    risk = load_risk()
    if loop is None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    built = loop.run_until_complete(
        build_worker(settings, stages, risk=risk, web_port=web_port, closers=closers,
                     venue_settings=venue_settings))
    venue = (f"{settings.venue} {built.venue.description}" if built.venue
             else "none (no stage here trades)")
    lines = [*(banner or []),
             f"worker      stages: {', '.join(sorted(set(stages)))}",
             f"venue       {venue}",
             f"clickhouse  {settings.clickhouse_dsn}",
             f"topics      prefix '{settings.topic_prefix}' on {settings.kafka_bootstrap}"]
    if web_port is not None:
        lines.append(f"web         http://127.0.0.1:{web_port}/health  /sql?q=...")
    services: list[Any] = [built.resources]
    if api and built.pipeline.writer is not None:
        services.append(_embedded_api(settings, risk, built, lines))
    if api:
        from agents.notify import build_notify

        notify = build_notify(settings)  # None unless NOTIFY_* names a receiver
        if notify is not None:
            services.append(notify)
            lines.append("notify      order, fill, kill-switch and alert notifications on")
    # The API comes after the resources: it stops before ClickHouse and the venue close.
    worker = AnnouncingWorker(built.app, *services, loop=loop, loglevel=settings.log_level,
                              redirect_stdouts=False)
    worker.banner = lines
    worker.hard_stop = hard_stop
    worker.freeze_gc = settings.gc_freeze
    worker.gc_thaw_seconds = settings.gc_thaw_seconds
    worker.gc_young_threshold = settings.gc_young_threshold
    worker.execute_from_commandline()


def run_all(settings: Settings, web_port: int = 6066, simulator: bool = True,
            secure: bool = False) -> None:
    """Kafka (when local and not running), the simulator (the chosen venue's front door and
    the admin API in this process, reached by the venue's adapter over a real socket; none
    for a venue without one, e.g. the in-process sim) and every stage. Ctrl-C stops all of
    it, including the broker this command started."""
    from agents.app import STAGES

    hard_stop = HardStop()
    hard_stop.install(interrupt=True)
    kafka = local_kafka(settings.jax_home, settings.kafka_bootstrap, secure)
    started = kafka.pid() is None
    if started:  # ours to stop, on every path out
        hard_stop.hooks.append(lambda: kafka.stop(timeout=KAFKA_KILL_SECONDS))
    try:
        with console.status(f"starting Kafka {kafka.version} on {kafka.bootstrap} ..."):
            kafka.start(tied=started)
            acls = asyncio.run(secure_topics(settings))[1] if secure else 0
    except BaseException:
        if started:
            kafka.stop(timeout=KAFKA_KILL_SECONDS)
        raise
    banner = [f"kafka       {kafka.bootstrap} {'started' if started else 'already running'}"
              f" (data {kafka.data_dir}, logs {kafka.logs_dir})", _approval_keys(settings)]
    if secure:
        banner.append(f"kafka auth  SASL/SCRAM-SHA-512, {acls} ACLs; worker runs as `worker`; "
                      f"credentials {credentials_dir(settings.jax_home)}")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    closers: list[Callable[[], Any]] = []
    plugin = registry.plugin(settings.venue)
    venue_settings = None
    try:
        if simulator and plugin.simulator_door is not None:
            venue_settings, sim = _embedded_simulator(settings, plugin, loop)
            closers.append(sim.close)
            banner += [f"simulator   {line}" for line in sim.describe()]
        run_worker(settings, STAGES, web_port=web_port, banner=banner, loop=loop,
                   closers=closers, hard_stop=hard_stop, venue_settings=venue_settings,
                   api=True)
    finally:
        hard_stop.install(interrupt=False)  # closing the loop put the default handlers back
        if started:
            console.print("stopping Kafka ...")
            kafka.stop()


def _embedded_simulator(
    settings: Settings, plugin: VenuePlugin, loop: asyncio.AbstractEventLoop
) -> tuple[Any, Any]:
    """Start the simulator with the chosen venue's front door (on SIM_PORT) in the worker's
    loop; the venue's settings pointed at that door."""
    from brokers.sim.runner import Simulator, SimulatorSettings

    assert plugin.simulator_door is not None
    assert plugin.simulated is not None
    sim = Simulator(SimulatorSettings(jax_home=settings.jax_home), door=plugin.simulator_door,
                    door_name=f"{plugin.name} API")
    loop.run_until_complete(sim.start())
    return plugin.simulated(plugin.settings(), "127.0.0.1", sim.door_port), sim


def _approval_keys(settings: Settings) -> str:
    """Development signing keys for alice and bob, unless a keyring is configured (never add
    development keys to a production keyring); where the keys are."""
    from jax_exec.keys import describe, generate_dev_keys

    if settings.approval_keyring is None:
        generate_dev_keys(settings.jax_home)
    return f"keys        {describe(settings.jax_home, settings.approval_keyring)}"


def _embedded_api(settings: Settings, risk: RiskSettings, built: Any, lines: list[str]) -> Any:
    """The HTTP API in the process that owns ClickHouse (embedded chdb: one process per path),
    sharing its ClickHouse client, venue and trading gate."""
    from api.server import ApiService, embedded
    from api.settings import ApiSettings

    api_settings = ApiSettings()
    ctx = built.pipeline.ctx
    server = embedded(settings, risk, clickhouse=built.pipeline.writer.ch,
                      venue=built.venue.service if built.venue else None,
                      gate=ctx.gate if ctx is not None else None, writer=built.pipeline.writer,
                      api=api_settings, grants=ctx.grants if ctx is not None else None)
    lines.append(f"api         http://{api_settings.host}:{api_settings.port}/ (web page), "
                 "/docs (API)")
    from api.live import attach_live
    from api.slack import attach_slack

    # Pending signals are posted to Slack (when SLACK_* is configured) by this process: it
    # owns the store the poster reads pending signals from.
    return attach_slack(attach_live(ApiService(server), settings), settings)
