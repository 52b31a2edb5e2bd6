"""What the pipeline benchmark starts: a Kafka broker of its own (or the running one), the
simulator (`jax-exec sim`), a worker with the trading stages over the IB adapter, and a worker
with the audit stage; plus /proc readings of their CPU and resident memory."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from jax_exec.kafka_local import LocalKafka  # noqa: E402
from jax_exec.ports import free_port_block  # noqa: E402
from tests.integration.harness import SimulatorProcess, WorkerProcess  # noqa: E402

PROBE = ROOT / "bench" / "probe"  # its sitecustomize counts the worker's TWS API messages
TRADING_STAGES = ("validation", "sizing", "submission", "reconciliation")

# Orders pass: many symbols, a deep account, tiny orders (~5,000 USD on 100 M: BKNG at 3,720
# fits), limits far away.
RISK = {
    "MAX_OPEN_POSITIONS": "100000", "ALLOW_SAME_SYMBOL_POSITION": "true",
    "MAX_ORDERS_PER_MINUTE": "100000", "MAX_POSITION_PCT": "0.00005",
    "MAX_SYMBOL_EXPOSURE_PCT": "1", "MAX_GROUP_EXPOSURE_PCT": "1", "MAX_GROSS_EXPOSURE_PCT": "1",
}
SIM = {"SIM_STARTING_CASH": "100000000", "SIM_TICK_SECONDS": "0"}
# The production defaults, not the integration tests' faster ones.
CADENCE = {"RECONCILE_INTERVAL_SECONDS": "0.5", "AUDIT_BATCH_SECONDS": "0.5"}


def own_broker(home: Path) -> LocalKafka:
    """A broker on free ports under `home`, sharing the project's jar cache when there is one
    (a clean clone downloads the jars once, as `make run` does)."""
    kafka = LocalKafka(home=home / "kafka-home", port=free_port_block(2))
    kafka.home.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("JAX_HOME", ROOT / ".local")) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    link = kafka.home / "cache"
    if not link.exists():
        link.symlink_to(cache.resolve())
    kafka.start(timeout=180)
    return kafka


def broker(home: Path, bootstrap: str | None, say: Any = print) -> tuple[str, LocalKafka | None]:
    """The broker a benchmark uses: `bootstrap` when given, else one of its own under `home`
    (returned, to be stopped)."""
    if bootstrap:
        return bootstrap, None
    say("starting a Kafka broker of the benchmark's own ...")
    kafka = own_broker(home)
    return kafka.bootstrap, kafka


@dataclass
class Stack:
    home: Path
    bootstrap: str
    prefix: str
    sim: SimulatorProcess | None = None
    trading: WorkerProcess | None = None
    audit: WorkerProcess | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    with_audit: bool = True
    metrics_port: int = field(default_factory=lambda: free_port_block(1))
    venue: str = "ib"  # "sim": the in-process simulator (no TWS wire, no IB pacing)

    def start(self) -> None:
        self.sim = SimulatorProcess(self.home / "sim", env=SIM)
        self.sim.wait_ready(60)
        common = {"KAFKA_BOOTSTRAP": self.bootstrap, "LOG_LEVEL": "warning", **CADENCE,
                  **self.extra_env}
        trading_args = [a for s in TRADING_STAGES for a in ("--stage", s)]
        probe = os.pathsep.join(p for p in (str(PROBE), os.environ.get("PYTHONPATH", "")) if p)
        venue = {"VENUE": "ib"} if self.venue == "ib" else {"VENUE": "sim", **SIM}
        self.trading = WorkerProcess(self.home / "trading", self.prefix, args=trading_args, env={
            **common, **RISK, **venue, "IB_HOST": "127.0.0.1",
            "IB_PORT": str(self.sim.port), "IB_CLIENT_ID": "9",
            "METRICS_PORT": str(self.metrics_port),
            "PYTHONPATH": probe, "BENCH_IB_COUNTS": str(self.ib_counts_file),
            "BENCH_PROFILE": str(self.profile_file),
            "BENCH_FORWARD": os.environ.get("BENCH_FORWARD", "")})
        self.trading.start(180)
        if self.with_audit:
            self.audit = WorkerProcess(self.home / "audit", self.prefix,
                                       args=["--stage", "audit"], env=common)
            self.audit.start(180)

    @property
    def profile_file(self) -> Path:
        """The trading worker's samples (bench/probe): taken while `<this>.on` exists."""
        return self.home / "trading-profile.txt"

    @property
    def ib_counts_file(self) -> Path:
        return self.home / "ib-messages.json"

    def ib_messages(self) -> dict[str, int]:
        """TWS API messages the trading worker sent so far, by request (bench/probe)."""
        try:
            counts: dict[str, int] = json.loads(self.ib_counts_file.read_text())
        except (OSError, ValueError):
            return {}
        return counts

    def timings(self) -> dict[str, tuple[float, int]]:
        """The trading worker's timing histograms as (sum of seconds, count) by series: each
        stage's handler (`handler:<stage>`), input queueing included (`end_to_end:<stage>`),
        each venue call (`venue:<operation>`) and the garbage collector's pauses by generation
        (`gc:<generation>`); {} when /metrics does not answer."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                text = answer.read().decode()
        except OSError:
            return {}
        names = {"jax_stage_decision_seconds": ("handler", "stage"),
                 "jax_stage_end_to_end_seconds": ("end_to_end", "stage"),
                 "jax_venue_call_seconds": ("venue", "operation"),
                 "jax_gc_pause_seconds": ("gc", "generation")}
        out: dict[str, tuple[float, int]] = {}
        for family in text_string_to_metric_families(text):
            kind = names.get(family.name)
            if kind is None:
                continue
            for sample in family.samples:
                key = f"{kind[0]}:{sample.labels.get(kind[1], '')}"
                total, count = out.get(key, (0.0, 0))
                if sample.name.endswith("_sum"):
                    out[key] = (total + sample.value, count)
                elif sample.name.endswith("_count"):
                    out[key] = (total, count + int(sample.value))
        return out

    def stop(self) -> None:
        for proc in (self.audit, self.trading):
            if proc is not None:
                proc.stop(30)
        if self.sim is not None:
            self.sim.stop()

    def pids(self) -> dict[str, int]:
        procs = {"trading worker": self.trading, "audit worker": self.audit}
        out = {name: p.proc.pid for name, p in procs.items() if p and p.proc}
        if self.sim is not None:
            out["simulator"] = self.sim.proc.pid
        return out


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Usage:
    """CPU share and peak RSS of each process over a window."""

    pids: dict[str, int]
    started: float = 0.0
    cpu0: dict[str, float] = field(default_factory=dict)
    peak: dict[str, float] = field(default_factory=dict)

    def begin(self) -> None:
        self.started = time.monotonic()
        self.cpu0 = {n: cpu_seconds(p) for n, p in self.pids.items()}
        self.peak = {n: rss_mib(p) for n, p in self.pids.items()}

    def sample(self) -> None:
        for n, p in self.pids.items():
            self.peak[n] = max(self.peak.get(n, 0.0), rss_mib(p))

    def end(self) -> dict[str, dict[str, float]]:
        self.sample()
        wall = max(time.monotonic() - self.started, 1e-6)
        used = {n: cpu_seconds(p) - self.cpu0[n] for n, p in self.pids.items()}
        return {n: {"cpu_pct": round(100 * used[n] / wall, 1), "cpu_s": round(used[n], 3),
                    "rss_mib": round(self.peak[n], 1)} for n in self.pids}
