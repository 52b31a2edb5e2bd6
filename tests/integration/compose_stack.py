"""docker-compose.yml run without Docker: each service built from this repository becomes a
local process with its exact command and environment, service names resolved to 127.0.0.1,
listening ports moved to free ones, Kafka the test broker, ClickHouse the embedded engine."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import BOOTSTRAP, KEYRING, ROOT, free_port

COMPOSE = ROOT / "docker-compose.yml"
LOOPBACK_URL = re.compile(r"127\.0\.0\.1:(\d+)")


def load() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def ours(services: dict[str, Any]) -> list[str]:
    """Long-running services built from this repository, dependencies first (the simulator).
    The one-shot kafka-setup (topics and ACLs on the SASL broker) is not run: the test broker
    is PLAINTEXT, and the workers create their topics themselves."""
    names = [n for n, s in services.items() if "build" in s and s.get("restart") != "no"]
    return sorted(names, key=lambda n: n != "simulator")


@dataclass
class Ports:
    """(service, port inside its container) -> a free port on this machine."""

    taken: dict[tuple[str, int], int] = field(default_factory=dict)

    def of(self, service: str, port: int) -> int:
        return self.taken.setdefault((service, port), free_port())


def environment(name: str, service: dict[str, Any], services: dict[str, Any], ports: Ports,
                home: Path, prefix: str) -> dict[str, str]:
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    for key, value in list(env.items()):
        if key.endswith("_HOST") and value in services:
            env[key] = "127.0.0.1"
            port_key = key.removesuffix("_HOST") + "_PORT"
            if port_key in env:
                env[port_key] = str(ports.of(value, int(env[port_key])))
    for key, value in list(env.items()):
        if key.endswith("_PORT") and value.isdigit() and not _referenced(key, env, services):
            env[key] = str(ports.of(name, int(value)))
    env.pop("CLICKHOUSE_URL", None)  # the embedded engine under JAX_HOME
    # the test broker is PLAINTEXT; tests/unit/test_compose_kafka.py checks the SASL side
    env.pop("KAFKA_CREDENTIALS_FILE", None)
    env.pop("KAFKA_CREDENTIALS_DIR", None)
    env.update(JAX_HOME=str(home / name), KAFKA_BOOTSTRAP=BOOTSTRAP, TOPIC_PREFIX=prefix,
               APP_ID=f"jax-compose-{prefix.rstrip('-')}", APPROVAL_KEYRING=str(KEYRING),
               SIM_TICK_SECONDS="0", RECONCILE_INTERVAL_SECONDS="0.5",
               AUDIT_BATCH_SECONDS="0.3")
    return env


def _referenced(key: str, env: dict[str, str], services: dict[str, Any]) -> bool:
    host = key.removesuffix("_PORT") + "_HOST"
    return host in env and env[host] == "127.0.0.1" and key != "SIM_PORT"


def command(name: str, service: dict[str, Any], ports: Ports) -> list[str]:
    cmd = [str(a) for a in service["command"]]
    for i, arg in enumerate(cmd[:-1]):
        if arg == "--web-port":
            cmd[i + 1] = str(ports.of(name, int(cmd[i + 1])))
    exe = Path(sys.executable).parent / cmd[0]
    return [str(exe) if exe.exists() else cmd[0], *cmd[1:]]


def healthcheck(name: str, service: dict[str, Any], ports: Ports) -> list[str]:
    test = [str(a) for a in service["healthcheck"]["test"]]
    assert test[0] == "CMD", test
    assert test[1] == "python", test
    return [sys.executable, *(LOOPBACK_URL.sub(lambda m: f"127.0.0.1:{ports.of(name, int(m[1]))}",
                                               a) for a in test[2:])]


@dataclass
class ServiceProcess:
    name: str
    cmd: list[str]
    env: dict[str, str]
    check: list[str]
    metrics_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        Path(self.env["JAX_HOME"]).mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env={**os.environ, **self.env},
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")
        return subprocess.run(self.check, capture_output=True, timeout=10,
                              check=False).returncode == 0

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics as name{labels} -> value."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as resp:
            text = resp.read().decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
        return out

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def processes(home: Path, prefix: str) -> list[ServiceProcess]:
    services, ports = load(), Ports()
    out = []
    for name in ours(services):
        svc = services[name]
        env = environment(name, svc, services, ports, home, prefix)
        out.append(ServiceProcess(name, command(name, svc, ports), env,
                                  healthcheck(name, svc, ports), int(env["METRICS_PORT"]),
                                  home / f"{name}.log"))
    return out


def wait_healthy(procs: list[ServiceProcess], within: float) -> dict[str, float]:
    """Seconds each process took to pass its compose healthcheck."""
    started, took = time.monotonic(), {}
    while time.monotonic() - started < within:
        for p in procs:
            if p.name not in took and p.healthy():
                took[p.name] = time.monotonic() - started
        if len(took) == len(procs):
            return took
        time.sleep(0.5)
    late = [p for p in procs if p.name not in took]
    raise AssertionError("not healthy in time: " + "; ".join(f"{p.name}:\n{p.tail()}"
                                                             for p in late))


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    want = [f"{k}={v}" for k, v in labels.items()]
    return sum(v for k, v in samples.items()
               if k.split("{")[0] == name and all(w in k for w in want))
