"""Run the exchange simulator as a service: the core, a front door (the TWS API unless another
venue's door is given), its admin API, a clock.

Embeddable: `Simulator` / `run_simulator` only need a running event loop (no asyncio.run, no
signal handlers), so `jax-exec run` can run the simulator inside the faust worker's loop.
`main_standalone` is the process entry point (`jax-exec sim`, `python -m brokers.sim.runner`):
it prints where it listens, then runs until SIGINT/SIGTERM and stops cleanly (a second signal,
or a clean stop still running HARD_STOP_SECONDS later, exits at once).

Settings come from the environment (prefix SIM_, see `SimulatorSettings`). The state lives in
one SQLite file, written before any client hears of a change, so a killed simulator restarted
on the same file still has its accounts, orders, executions, positions and prices.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from brokers.sim import metrics
from brokers.sim.admin import AdminServer, run_admin_server
from brokers.sim.core import Exchange
from brokers.sim.faults import FaultConfig, OutageWindow
from brokers.sim.models import DEFAULT_ACCOUNT_ID, SimConfig
from brokers.sim.store import SimStore
from brokers.sim.tws import TwsServer, run_tws_server

__all__ = [
    "ADMIN_HOST",
    "Simulator",
    "SimulatorSettings",
    "build_exchange",
    "main_standalone",
    "run_simulator",
]

log = logging.getLogger(__name__)

ADMIN_HOST = "127.0.0.1"  # the admin API has no authentication: never on another interface
HARD_STOP_SECONDS = 8.0  # after a signal, a clean stop that takes longer is abandoned

# a venue plugin's simulator_door: (exchange, host, port) -> a door with .port and close()
DoorFactory = Callable[[Exchange, str, int], Awaitable[Any]]


class SimulatorSettings(BaseSettings):
    """How the standalone or embedded simulator runs; env names are SIM_<FIELD> (JAX_HOME)."""

    model_config = SettingsConfigDict(
        env_prefix="SIM_",
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    host: str = Field("127.0.0.1", description="SIM_HOST: interface of the TWS API port")
    port: int = Field(7497, ge=0, le=65535, description="SIM_PORT: TWS API port (0: any free)")
    admin_port: int = Field(
        7498, ge=0, le=65535, description="SIM_ADMIN_PORT: admin HTTP API on 127.0.0.1; 0 disables"
    )
    seed: int = Field(42, description="SIM_SEED: seed of the price paths")
    tick_seconds: float = Field(
        1.0, ge=0, description="SIM_TICK_SECONDS: seconds per price step; 0 freezes prices"
    )
    state: Path | None = Field(
        None, description="SIM_STATE: SQLite state file; default <JAX_HOME>/sim/sim.sqlite"
    )
    jax_home: Path = Field(
        Path(".local"),
        validation_alias=AliasChoices("JAX_HOME", "jax_home"),
        description="JAX_HOME: runtime data directory (holds the default state file)",
    )
    account: str = Field(DEFAULT_ACCOUNT_ID, description="SIM_ACCOUNT: the default account")
    starting_cash: Decimal = Field(
        Decimal(100000), gt=0, description="SIM_STARTING_CASH: cash of a newly opened account"
    )
    replay_csv: Path | None = Field(
        None, description="SIM_REPLAY_CSV: replay these bars instead of random paths"
    )
    eod_utc: time | None = Field(
        None, description="SIM_EOD_UTC: roll the day over (DAY orders expire) at HH:MM UTC"
    )
    latency_ms: int = Field(0, ge=0, description="SIM_LATENCY_MS: delay of every TWS message")
    drop_probability: float = Field(
        0.0, ge=0, le=1, description="SIM_DROP_PROBABILITY: chance a connection is cut"
    )
    transient_error_rate: float = Field(
        0.0, ge=0, le=1, description="SIM_TRANSIENT_ERROR_RATE: chance a placement gets 100"
    )
    reject_symbols: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(), description="SIM_REJECT_SYMBOLS: comma list of symbols refused with 201"
    )
    shorting_enabled: bool = Field(
        True, description="SIM_SHORTING_ENABLED: false refuses every short sale (not shortable)"
    )
    not_shortable: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(), description="SIM_NOT_SHORTABLE: comma list of symbols with no shares to borrow"
    )
    enforce_tick: bool = Field(
        True, description="SIM_ENFORCE_TICK: refuse off-tick prices with 110"
    )
    stall: bool = Field(
        False, description="SIM_STALL: the TWS door reads requests and answers nothing"
    )
    commission_delay_ms: int = Field(
        0, ge=0, description="SIM_COMMISSION_DELAY_MS: commissionReport this long after a fill"
    )
    outage: str | None = Field(
        None,
        description='SIM_OUTAGE: "SECONDS@AFTER", an outage of SECONDS starting AFTER seconds '
        'after start ("30@60"); "SECONDS" alone starts at once',
    )

    @field_validator("reject_symbols", "not_shortable", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(str(s).strip().upper() for s in value if str(s).strip())
        return value

    @field_validator("outage")
    @classmethod
    def _outage(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_outage(value)
        return value

    @field_validator("jax_home")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def state_path(self) -> Path:
        """Where the simulator keeps its state."""
        return self.state if self.state is not None else self.jax_home / "sim" / "sim.sqlite"

    def outage_window(self, started: datetime) -> OutageWindow | None:
        """The scheduled outage as wall-clock times, for a simulator started at `started`."""
        if self.outage is None:
            return None
        seconds, after = _parse_outage(self.outage)
        start = started + timedelta(seconds=after)
        return OutageWindow(start=start, end=start + timedelta(seconds=seconds))

    def fault_config(self, started: datetime) -> FaultConfig:
        window = self.outage_window(started)
        return FaultConfig(
            seed=self.seed,
            latency_ms=self.latency_ms,
            drop_probability=self.drop_probability,
            transient_error_rate=self.transient_error_rate,
            rejected_symbols=self.reject_symbols,
            enforce_tick=self.enforce_tick,
            stall=self.stall,
            commission_delay_ms=self.commission_delay_ms,
            outage_windows=(window,) if window else (),
        )

    def sim_config(self, started: datetime) -> SimConfig:
        return SimConfig(
            seed=self.seed,
            starting_cash=self.starting_cash,
            default_account_id=self.account,
            replay_csv=self.replay_csv,
            shorting_enabled=self.shorting_enabled,
            not_shortable=self.not_shortable,
            faults=self.fault_config(started),
        )


def _parse_outage(text: str) -> tuple[float, float]:
    """ "30@60" -> (30.0, 60.0); "30" -> (30.0, 0.0)."""
    seconds_text, _, after_text = text.strip().partition("@")
    try:
        seconds, after = float(seconds_text), float(after_text or 0)
    except ValueError:
        raise ValueError(f'outage must look like "30@60" (SECONDS@AFTER), not {text!r}') from None
    if not seconds > 0 or not after >= 0:
        raise ValueError("outage needs SECONDS > 0 and AFTER >= 0")
    return seconds, after


def _open(
    settings: SimulatorSettings, started: datetime | None = None
) -> tuple[Exchange, SimStore]:
    store = SimStore(settings.state_path)
    try:
        exchange = Exchange(settings.sim_config(started or datetime.now(UTC)), store=store)
    except BaseException:
        store.close()
        raise
    return exchange, store


def build_exchange(settings: SimulatorSettings, started: datetime | None = None) -> Exchange:
    """The core over the SQLite state file: restored when it exists, the default account opened
    when missing. `started` anchors the SIM_OUTAGE schedule (default: now)."""
    return _open(settings, started)[0]


def _next_eod(now: datetime, at: time) -> datetime:
    candidate = datetime.combine(now.date(), at, tzinfo=UTC)
    return candidate if candidate > now else candidate + timedelta(days=1)


class Simulator:
    """The exchange + a front door + the admin API + the price clock, as one unit.

    `async with Simulator(settings) as sim:` (or `await sim.start()` ... `await sim.close()`).
    The exchange is built (state restored) on construction, so an embedding process can wire
    in-process front doors to `sim.exchange` before starting; pass `exchange=` to run over one
    built elsewhere (its store is then not closed here). The front door on SIM_HOST:SIM_PORT is
    the TWS API unless `door` (a venue plugin's simulator_door, named `door_name`) is given.
    """

    def __init__(
        self, settings: SimulatorSettings | None = None, exchange: Exchange | None = None,
        door: DoorFactory | None = None, door_name: str = "TWS API",
    ) -> None:  # fmt: skip
        self.settings = settings or SimulatorSettings()
        self._door_factory = door
        self.door_name = door_name
        self.door: Any = None
        self._store: SimStore | None = None
        if exchange is None:
            exchange, self._store = _open(self.settings)
        self.exchange = exchange
        self.tws: TwsServer | None = None
        self.admin: AdminServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen (TWS API, then admin API) and start the clock."""
        if self._started:
            return
        self._started = True
        s = self.settings
        try:
            if self._door_factory is None:
                faults = self.exchange.faults
                self.door = await run_tws_server(self.exchange, s.host, s.port, faults)
            else:
                self.door = await self._door_factory(self.exchange, s.host, s.port)
            if isinstance(self.door, TwsServer):
                self.tws = self.door
            metrics.watch(self)  # counted from here on; ready (METRICS_PORT /ready) from here
            if s.admin_port:
                info: dict[str, Any] = {"door": self.door_name, "door_port": self.door_port,
                                        "state": str(s.state_path)}
                if self.tws is not None:
                    info.update(tws_host=s.host, tws_port=self.tws.port)
                self.admin = await run_admin_server(self.exchange, ADMIN_HOST, s.admin_port, info)
            if s.tick_seconds > 0:
                self._spawn(self._ticker(s.tick_seconds))
            if s.eod_utc is not None:
                self._spawn(self._day_roller(s.eod_utc))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop the clock and both servers, then close the state file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        metrics.unwatch(self)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.admin is not None:
            await self.admin.close()
        if self.door is not None:
            await self.door.close()
        if self._store is not None:
            self._store.close()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def door_port(self) -> int:
        """The front door's bound port."""
        assert self.door is not None, "simulator not started"
        return int(self.door.port)

    @property
    def tws_port(self) -> int:
        assert self.tws is not None, "simulator not started"
        return self.tws.port

    @property
    def admin_port(self) -> int | None:
        """The admin API port, None when disabled (SIM_ADMIN_PORT=0)."""
        return self.admin.port if self.admin is not None else None

    @property
    def admin_url(self) -> str | None:
        return self.admin.url if self.admin is not None else None

    def describe(self) -> list[str]:
        """Human-readable lines saying where the simulator listens."""
        s = self.settings
        clock = f"every {s.tick_seconds:g} s" if s.tick_seconds > 0 else "frozen (advance/set)"
        door = "TWS API" if self.tws is not None else self.door_name
        lines = [
            f"{door:<9} {s.host}:{self.door_port} (account {s.account})",
            f"admin     {self.admin_url}/state" if self.admin else "admin     disabled",
            f"state     {s.state_path}",
            f"prices    {clock}, seed {s.seed}, step {self.exchange.step}",
        ]
        if s.eod_utc is not None:
            lines.append(f"day roll  {s.eod_utc.strftime('%H:%M')} UTC")
        if not s.shorting_enabled:
            lines.append("shorting  disabled (every short sale refused)")
        elif s.not_shortable:
            lines.append(f"shorting  not shortable: {', '.join(sorted(s.not_shortable))}")
        return lines

    # ------------------------------------------------------------ clock

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _ticker(self, seconds: float) -> None:
        """One price step every `seconds`, on a fixed schedule (no drift from work done)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += seconds
            try:
                self.exchange.advance()
            except Exception:  # one failed step must not stop the clock
                log.exception("sim: price step failed")

    async def _day_roller(self, at: time) -> None:
        """The close at `at` UTC every day: DAY orders expire, the day's P&L restarts."""
        while True:
            now = datetime.now(UTC)
            await asyncio.sleep((_next_eod(now, at) - now).total_seconds())
            try:
                self.exchange.end_of_day()
            except Exception:
                log.exception("sim: end of day failed")


async def run_simulator(
    settings: SimulatorSettings | None = None,
    ready: Callable[[Simulator], Any] | None = None,
) -> None:
    """Run the simulator until cancelled, then close it cleanly. `ready(sim)` (sync or async)
    is called once it listens."""
    async with Simulator(settings) as sim:
        if ready is not None:
            result = ready(sim)
            if inspect.isawaitable(result):
                await result
        await asyncio.Event().wait()


def _announce(sim: Simulator) -> None:
    print("Jax simulator listening", flush=True)
    for line in sim.describe():
        print(f"  {line}", flush=True)
    print("ready", flush=True)  # machine-readable marker for scripts and tests
    # What is alive now is the simulator's own machinery: exempt from later full collections,
    # which then walk only what trading made since (agents/gc_pauses.py measured why).
    gc.collect()
    gc.freeze()


def _exit_now(why: str) -> None:
    """The hard stop: no more cleaning up (the state file is written before every answer)."""
    print(f"simulator: {why}; exiting now", file=sys.stderr, flush=True)
    os._exit(1)


class _Deadline:
    """The first signal asks for a clean stop and arms a timer; the second one, or the timer
    running out, ends the process at once, so a wedged close never keeps it alive."""

    def __init__(self, stop: asyncio.Event, seconds: float = HARD_STOP_SECONDS) -> None:
        self.stop = stop
        self.seconds = seconds
        self.timer: threading.Timer | None = None

    def signalled(self) -> None:
        if self.stop.is_set():
            _exit_now("second signal")
            return
        self.stop.set()
        self.timer = threading.Timer(self.seconds, _exit_now,
                                     args=(f"not stopped {self.seconds:g}s after the signal",))
        self.timer.daemon = True
        self.timer.start()

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


async def _until_signalled(settings: SimulatorSettings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    deadline = _Deadline(stop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, deadline.signalled)
    runner = asyncio.ensure_future(run_simulator(settings, _announce))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (runner, stopper):
            task.cancel()
        await asyncio.gather(runner, stopper, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        deadline.disarm()
    if not runner.cancelled() and runner.exception() is not None:
        raise runner.exception()  # type: ignore[misc]


def main_standalone(settings: SimulatorSettings | None = None) -> int:
    """Process entry point: run until SIGINT/SIGTERM, stop cleanly; returns an exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        chosen = settings or SimulatorSettings()
    except ValidationError as exc:
        print(f"invalid simulator settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_until_signalled(chosen))
    except OSError as exc:  # port in use, state directory not writable
        print(f"simulator could not start: {exc}", file=sys.stderr)
        return 1
    print("simulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main_standalone())
