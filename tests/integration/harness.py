"""Run the real worker as a user does (a subprocess) against the real Kafka broker, isolated by
a topic prefix and its own JAX_HOME; publish with a plain aiokafka producer; read topics back;
query the worker's ClickHouse through its /sql endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from agents.decisions.signatures import sign
from agents.readback import read_all
from jax_exec.keys import generate_dev_keys, keyring_path, signing_key
from schemas.events import APPROVAL_KEY
from schemas.examples import SEED_SIGNAL

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signal_with(**changes: Any) -> dict[str, Any]:
    return {**SEED_SIGNAL, "id": str(uuid.uuid4()), **changes}


# Approvers' signing keys for the tests, and the keyring every test worker verifies with.
KEYS_HOME = Path(tempfile.gettempdir()) / "jax-test-keys"
TEST_APPROVERS = ("alice", "bob", "carol")
generate_dev_keys(KEYS_HOME, TEST_APPROVERS)
KEYRING = keyring_path(KEYS_HOME)


def approval_for(signal: dict[str, Any], decision: str = "approved", by: str = "alice",
                 **extra: Any) -> dict[str, Any]:
    """An approval as an approver publishes it: signed with the approver's key."""
    body = {"signal": signal, "decision": decision, "approved_by": by,
            "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}
    key = signing_key(KEYS_HOME, by)
    return sign(body, key.private_key, key.key_id)


class WorkerProcess:
    """`jax-exec worker` in a subprocess; start() returns once it printed `ready`."""

    def __init__(self, home: Path, prefix: str, env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.home = home
        self.prefix = prefix
        self.web_port = free_port()
        self.env = {**os.environ, "JAX_HOME": str(home), "TOPIC_PREFIX": prefix,
                    "KAFKA_BOOTSTRAP": BOOTSTRAP, "SIM_TICK_SECONDS": "0", "VENUE": "sim",
                    "APP_ID": f"jax-test-{prefix.rstrip('-')}", "LOG_LEVEL": "info",
                    "RECONCILE_INTERVAL_SECONDS": "0.3", "AUDIT_BATCH_SECONDS": "0.3",
                    "APPROVAL_KEYRING": str(KEYRING),
                    **(env or {})}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"worker-{int(time.time() * 1000)}.log"

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "jax_exec", "worker", "--web-port", str(self.web_port),
               *self.args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            if any(line.strip() == "ready" for line in self.log.read_text(errors="replace")
                   .splitlines()):
                return self
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, as an operator or a supervisor stops it; faust commits and leaves."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def sql(self, query: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.web_port}/sql?{urllib.parse.urlencode({'q': query})}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.loads(resp.read())
        return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


PUBLISH_SECONDS = 20.0  # one attempt of publish(): start, send with acks=all
PUBLISH_ATTEMPTS = 3


async def publish(topic: str, value: bytes | dict[str, Any], key: bytes | None = None) -> None:
    """Produce one record (acks=all), each attempt within PUBLISH_SECONDS.

    aiokafka can wait forever on a send and on a producer's stop (aio-libs/aiokafka#1101); a
    CI run once hung on this call. A stalled producer is dropped (its stop given 5 s) and the
    record sent again by a fresh one: a test then fails with an error, it never hangs the run.
    A record whose acknowledgement was lost may be stored twice, as by any producer's retry."""
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    if key is None and topic.endswith("approvals"):
        key = APPROVAL_KEY  # as every approver publishes them
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all",
                                    enable_idempotence=True)
        try:
            await asyncio.wait_for(_start_and_send(producer, topic, raw, key), PUBLISH_SECONDS)
            return
        except TimeoutError:
            if attempt == PUBLISH_ATTEMPTS:
                raise AssertionError(f"publish to {topic}: no acknowledgement in "
                                     f"{PUBLISH_ATTEMPTS} x {PUBLISH_SECONDS}s") from None
            print(f"publish to {topic}: attempt {attempt} stalled; again with a new producer")
        finally:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except TimeoutError:
                print(f"publish to {topic}: a producer did not stop in 5 s; left behind")


async def _start_and_send(producer: AIOKafkaProducer, topic: str, raw: bytes,
                          key: bytes | None) -> None:
    await producer.start()
    await producer.send_and_wait(topic, raw, key=key)


async def events(topic: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    await read_all(BOOTSTRAP, topic, rows.append)
    return rows


async def wait_for(topic: str, accept: Callable[[list[dict[str, Any]]], bool],
                   within: float = 45.0) -> list[dict[str, Any]]:
    """Poll a topic until accept(all events) holds; fail with what was seen."""
    deadline = time.monotonic() + within
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = await events(topic)
        if accept(seen):
            return seen
        await asyncio.sleep(0.5)
    raise AssertionError(f"{topic}: condition not met in {within}s; saw {json.dumps(seen)[:3000]}")


def wait_sql(worker: WorkerProcess, query: str, accept: Callable[[list[dict[str, Any]]], bool],
             within: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = worker.sql(query)
        if accept(rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"SQL condition not met in {within}s: {query}\n{rows}")


class SimulatorProcess:
    """`jax-exec sim` in a subprocess, driven through its admin API."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.env = {**os.environ, "JAX_HOME": str(home), "SIM_PORT": str(self.port),
                    "SIM_ADMIN_PORT": str(self.admin_port), "SIM_TICK_SECONDS": "0",
                    **(env or {})}
        self.log = home / "sim.log"
        home.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "jax_exec", "sim"], cwd=ROOT,
                                     env=self.env, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready" in self.log.read_text().split():
                return
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise TimeoutError(self.log.read_text())

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data,
                                     method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
