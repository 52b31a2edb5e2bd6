"""Limits across processes: three workers of the trading stages in one consumer group, and a
burst of approvals that breaches the open-positions limit. Approvals are keyed by account
(schemas.events.Approval.kafka_key), so one account's decisions are sized on one partition,
by one worker at a time, in order: the burst yields exactly what the limit allows, as it
does with one worker (test_order_path), not up to three times that."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.integration.harness import SimulatorProcess, WorkerProcess, free_port
from tests.integration.order_path import approval_id, approvals, publish_all
from tests.integration.test_order_path import SYMBOLS, assert_exactly_once, settle
from tests.integration.test_scale_out import TRADING, assigned

pytestmark = pytest.mark.integration

# Orders of 10% of equity, so only the open-positions limit binds (test_order_path says why).
LIMITS = {"MAX_OPEN_POSITIONS": "5", "MAX_GROSS_EXPOSURE_PCT": "1", "MAX_POSITION_PCT": "0.1",
          "MAX_SYMBOL_EXPOSURE_PCT": "1", "MAX_GROUP_EXPOSURE_PCT": "1",
          "MAX_ORDERS_PER_MINUTE": "1000"}


async def test_a_limit_holds_across_three_sizing_workers(tmp_path: Path, procs: list) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    sim = SimulatorProcess(tmp_path / "sim")
    procs.append(sim)
    sim.wait_ready()
    ports = [free_port() for _ in range(3)]
    workers = [WorkerProcess(tmp_path / f"trading-{i}", prefix, args=TRADING, env={
        **LIMITS, "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim.port),
        "IB_CLIENT_ID": str(40 + i), "METRICS_PORT": str(ports[i]), "LOG_LEVEL": "warning"})
        for i in range(3)]
    procs.extend(workers)
    for w in workers:
        w.start(timeout=120)
    for _ in range(120):  # the group settles: every approvals partition held by someone
        if sum(assigned(p, "approvals") for p in ports) == 3:
            break
        await asyncio.sleep(0.5)
    held = [assigned(p, "approvals") for p in ports]
    assert sum(1 for n in held if n) >= 2, f"one worker holds every partition: {held}"
    burst = approvals(20, SYMBOLS[:20])
    ids = {approval_id(a) for a in burst}
    await publish_all(f"{prefix}approvals", burst)
    book = await settle(prefix, sim, ids, within=180, worker=workers[0])
    assert_exactly_once(book, ids)
    placed = sum(book.venue_orders.values())
    print(f"\nlimit across 3 workers (approvals partitions {held}): 20 approvals at once, "
          f"MAX_OPEN_POSITIONS 5: {placed} orders at the venue; outcomes "
          f"{dict(book.reason_counts())}")
    assert placed == 5
    assert book.reason_counts() == {"intent": 5, "MAX_OPEN_POSITIONS": 15}
