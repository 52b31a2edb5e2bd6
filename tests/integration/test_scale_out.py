"""Scale-out: three workers of the trading stages (validation, sizing, submission) in one
consumer group and one audit process, over one simulator; one trading worker is killed
(SIGKILL) mid-run; the others take its partitions and every approval still has exactly one
outcome and one venue order. Prints approvals, orders and the time to take over."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import SimulatorProcess, WorkerProcess, free_port
from tests.integration.order_path import ROOMY, approval_id, approvals, publish_all
from tests.integration.test_order_path import SYMBOLS, assert_exactly_once, settle

pytestmark = pytest.mark.integration

TRADING = ["--stage", "validation", "--stage", "sizing", "--stage", "submission"]


def families(port: int) -> list[Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return list(text_string_to_metric_families(resp.read().decode()))


def assigned(port: int, topic: str) -> int:
    """Partitions of `topic` the worker behind this metrics port holds (its lag series)."""
    return sum(1 for f in families(port) if f.name == "jax_consumer_lag"
               for s in f.samples if s.labels.get("topic") == topic)


def frozen(port: int) -> float:
    """Objects the worker exempted from full collections once it served (agents/gc_pauses)."""
    return sum(s.value for f in families(port) if f.name == "jax_gc_frozen_objects"
               for s in f.samples)


async def test_three_trading_workers_one_killed_every_approval_once(
        tmp_path: Path, procs: list) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    sim = SimulatorProcess(tmp_path / "sim")
    procs.append(sim)
    sim.wait_ready()
    common = {**ROOMY, "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim.port),
              "LOG_LEVEL": "warning", "LOG_FORMAT": "json", "KAFKA_SESSION_TIMEOUT_SECONDS": "6"}
    ports = [free_port() for _ in range(3)]
    workers = [WorkerProcess(tmp_path / f"trading-{i}", prefix, args=TRADING, env={
        **common, "IB_CLIENT_ID": str(20 + i), "METRICS_PORT": str(ports[i])})
        for i in range(3)]
    audit = WorkerProcess(tmp_path / "audit", prefix, args=["--stage", "audit"], env=common)
    procs.extend([*workers, audit])
    for w in workers:
        w.start(timeout=120)
    audit.start(timeout=120)
    for _ in range(120):  # the group settles: all approvals partitions held
        if sum(assigned(p, "approvals") for p in ports) == 3:
            break
        await asyncio.sleep(0.5)
    before = [assigned(p, "approvals") for p in ports]
    assert all(frozen(p) > 10_000 for p in ports), [frozen(p) for p in ports]
    flow = approvals(150, SYMBOLS)
    ids = {approval_id(a) for a in flow}
    await publish_all(f"{prefix}approvals", flow[:75])
    await asyncio.sleep(1.5)
    victim = max(range(3), key=lambda i: before[i])  # one that holds an approvals partition
    doomed = workers[victim].proc
    assert doomed is not None
    killed = time.monotonic()
    doomed.send_signal(signal.SIGKILL)
    await publish_all(f"{prefix}approvals", flow[75:])
    survivors = [p for i, p in enumerate(ports) if i != victim]
    took = None
    while time.monotonic() - killed < 90:
        if sum(assigned(p, "approvals") for p in survivors) == 3:
            took = time.monotonic() - killed
            break
        await asyncio.sleep(0.25)
    book = await settle(prefix, sim, ids, within=180, worker=workers[(victim + 1) % 3])
    settled = time.monotonic() - killed
    assert took is not None, "the survivors never took the killed worker's partitions"
    assert_exactly_once(book, ids)
    print(f"\nscale-out: 3 trading workers (approvals partitions {before}), worker {victim} "
          f"SIGKILLed after 75 of 150 approvals; survivors held all 3 partitions after "
          f"{took:.1f}s (session timeout 6s); settled {settled:.1f}s after the kill; outcomes "
          f"{dict(book.reason_counts())}; {sum(book.venue_orders.values())} venue orders for "
          f"{len(book.intents)} intents, none twice")
