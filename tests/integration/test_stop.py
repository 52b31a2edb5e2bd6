"""Stopping always works: SIGTERM or Ctrl-C ends a process within 10 s even while a venue call
hangs, and the Kafka broker `jax-exec run` started never outlives it, even after SIGKILL.

Each test prints its figure (seconds from the signal to the exit, or to the broker's end).
The `run` tests start their own broker (own JAX_HOME, own port): the shared one is not touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jax_exec.runner import HARD_STOP_SECONDS, HardStop
from tests.integration.harness import (
    ROOT,
    SimulatorProcess,
    WorkerProcess,
    approval_for,
    events,
    free_port,
    publish,
    signal_with,
)

pytestmark = pytest.mark.integration

STOP_WITHIN = 10.0  # what an operator or a supervisor (docker, systemd: SIGKILL later) allows
VENUE_ENV = ("VENUE", "IB_HOST", "IB_PORT", "IB_CLIENT_ID")


def _wait_exit(proc: subprocess.Popen[bytes], within: float = STOP_WITHIN) -> tuple[int, float]:
    """(exit code, seconds to exit); killed and failed when it outlives `within`."""
    began = time.monotonic()
    try:
        code = proc.wait(within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"still running {within:g}s after the signal")
    return code, time.monotonic() - began


async def _first_decision(prefix: str, signal_id: str, within: float = 45.0) -> str:
    """The topic where sizing's outcome for this signal appeared (intent or rejection)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while loop.time() < end:
        for topic in ("order-intents", "rejections"):
            if _decided(await events(f"{prefix}{topic}"), signal_id):
                return topic
        await asyncio.sleep(0.5)
    raise AssertionError(f"no decision on signal {signal_id} within {within:g}s")


def _until(check: Any, within: float, what: str) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < within, f"{what}: not within {within:g}s"
        time.sleep(0.1)
    return time.monotonic() - began


# ---------------------------------------------------------------------------- the deadline


def test_second_signal_and_deadline_exit_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """HardStop in-process: hooks run, then os._exit(1) (recorded instead of exiting)."""
    exits: list[int] = []
    hooks: list[str] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    stop = HardStop(seconds=0.05)
    stop.hooks.append(lambda: hooks.append("kafka"))
    stop.signalled(signal.SIGTERM)
    _until(lambda: exits, 5, "the deadline")
    assert (exits, hooks) == ([1], ["kafka"])
    stop.signalled(signal.SIGINT)  # a second signal: at once
    assert (exits, hooks) == ([1, 1], ["kafka", "kafka"])


# ---------------------------------------------------------------------------- a worker


@pytest.fixture
def stalled_worker(tmp_path: Path) -> Iterator[tuple[WorkerProcess, SimulatorProcess]]:
    sim = SimulatorProcess(tmp_path / "sim")
    worker: WorkerProcess | None = None
    try:
        sim.wait_ready()
        prefix = f"t-stop-{uuid.uuid4().hex[:8]}-"
        venue = dict(zip(VENUE_ENV, ("ib", "127.0.0.1", str(sim.port), "21"), strict=True))
        worker = WorkerProcess(tmp_path / "worker", prefix, env=venue,
                               args=["--stage", "validation", "--stage", "sizing"])
        worker.start()
        yield worker, sim
    finally:
        if worker is not None and worker.proc is not None and worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)
        sim.stop()


def _hang(worker: WorkerProcess, sim: SimulatorProcess) -> str:
    """A signal, then (venue stalled) its signed approval: sizing asks the venue for the
    account and the wedged door swallows the request (counted by the simulator)."""
    signal_ = signal_with()
    asyncio.run(publish(f"{worker.prefix}signals", signal_))
    _until(lambda: asyncio.run(_recorded(worker.prefix, str(signal_["id"]))), 30,
           "the signal in the ledger")
    sim.admin("/faults", {"stall": True})
    before = sim.admin("/faults")["stalled_requests"]
    asyncio.run(publish(f"{worker.prefix}approvals", approval_for(signal_)))
    _until(lambda: sim.admin("/faults")["stalled_requests"] > before, 60, "a stalled call")
    return str(signal_["id"])


async def _recorded(prefix: str, signal_id: str) -> bool:
    return any(signal_id in json.dumps(e) for e in await events(f"{prefix}signal-ledger"))


def _decided(events: list[dict[str, Any]], signal_id: str) -> bool:
    return any(e.get("correlation_id") == signal_id for e in events)


def test_worker_stops_while_the_venue_hangs(
    stalled_worker: tuple[WorkerProcess, SimulatorProcess],
) -> None:
    worker, sim = stalled_worker
    assert worker.proc is not None
    signal_id = _hang(worker, sim)
    worker.proc.send_signal(signal.SIGTERM)
    code, seconds = _wait_exit(worker.proc)
    print(f"worker with a hung venue call: SIGTERM -> exit {code} in {seconds:.1f}s "
          f"(hard stop at {HARD_STOP_SECONDS:g}s)")

    # The approval in flight was not committed: the next start decides it.
    sim.admin("/faults", {"stall": False})
    again = WorkerProcess(worker.home, worker.prefix, args=worker.args,
                          env={k: worker.env[k] for k in VENUE_ENV})
    try:
        again.start()
        outcome = asyncio.run(_first_decision(worker.prefix, signal_id))
        print(f"after the restart the approval in flight was decided: {outcome}")
    finally:
        again.stop(20)


def test_worker_second_signal_exits_at_once(
    stalled_worker: tuple[WorkerProcess, SimulatorProcess],
) -> None:
    worker, sim = stalled_worker
    assert worker.proc is not None
    _hang(worker, sim)
    worker.proc.send_signal(signal.SIGTERM)
    _until(lambda: "SIGTERM: stopping" in worker.tail(200), 10, "the first signal heard")
    worker.proc.send_signal(signal.SIGINT)
    code, seconds = _wait_exit(worker.proc)
    print(f"worker: SIGTERM then SIGINT -> exit {code} in {seconds:.1f}s")
    assert code == 1, worker.tail()  # the hard path, not faust's graceful stop
    assert "second SIGINT: exiting now" in worker.tail(200)


def test_sim_stops_while_a_client_waits(
    stalled_worker: tuple[WorkerProcess, SimulatorProcess],
) -> None:
    worker, sim = stalled_worker
    _hang(worker, sim)
    sim.proc.send_signal(signal.SIGTERM)
    code, seconds = _wait_exit(sim.proc)
    print(f"jax-exec sim, stalled with a client waiting: SIGTERM -> exit {code} in "
          f"{seconds:.1f}s")
    assert code == 0, sim.log.read_text()


# ---------------------------------------------------------------------------- jax-exec run


def _broker_ports() -> int:
    """A free port whose successor (the controller's) is free too."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def kafka_pids(home: Path) -> list[int]:
    """Kafka brokers whose configuration lives under this JAX_HOME."""
    config = str(home / "kafka" / "server.properties")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes().split(b"\0")
            if b"kafka.Kafka" in args and config.encode() in args:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
    return found


class RunProcess:
    """`jax-exec run` with its own JAX_HOME and its own broker port; started until `ready`."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        shared_jars = ROOT / ".local" / "cache"
        if shared_jars.is_dir() and not (home / "cache").exists():
            (home / "cache").symlink_to(shared_jars)  # the pinned jars, without Maven
        self.home = home
        self.port = _broker_ports()
        self.log = home / "run.log"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIM_")},
               "JAX_HOME": str(home), "KAFKA_BOOTSTRAP": f"127.0.0.1:{self.port}",
               "KAFKA_HEAP": "-Xmx256m", "TOPIC_PREFIX": "", "APP_ID": "jax-stop-test",
               "SIM_PORT": str(free_port()), "SIM_ADMIN_PORT": str(free_port()),
               "SIM_TICK_SECONDS": "0", "LOG_LEVEL": "info", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jax_exec", "run", "--web-port", str(free_port())],
            cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 75.0) -> None:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            assert self.proc.poll() is None, f"run exited {self.proc.returncode}:\n{self.tail()}"
            if any(line.strip() == "ready" for line in self.tail(400).splitlines()):
                print(f"run ready in {time.monotonic() - began:.1f}s (broker port {self.port})")
                return
            time.sleep(0.2)
        raise TimeoutError(f"run not ready after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in kafka_pids(self.home):  # never leave a broker behind, whatever failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[RunProcess]:
    process = RunProcess(tmp_path / "home")
    try:
        process.wait_ready()
        assert kafka_pids(process.home), "run started no broker of its own"
        yield process
    finally:
        process.cleanup()


def test_run_killed_leaves_no_broker(run: RunProcess) -> None:
    run.proc.kill()
    run.proc.wait(10)
    seconds = _until(lambda: not kafka_pids(run.home), 30, "the broker outlived run")
    print(f"run SIGKILLed: its Kafka broker gone {seconds:.1f}s later")


def test_run_ctrl_c_stops_everything(run: RunProcess) -> None:
    run.proc.send_signal(signal.SIGINT)
    code, seconds = _wait_exit(run.proc)
    left = kafka_pids(run.home)
    print(f"run Ctrl-C: exit {code} in {seconds:.1f}s; broker left: {left or 'none'}")
    assert not left, run.tail()
