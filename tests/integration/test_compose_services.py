"""docker-compose.yml, each service run as the local process it describes (see compose_stack),
healthy by its own healthcheck; then the seed signal, approved and signed, moves the counters
of every stage's /metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jax_exec.cli_status import collect
from tests.integration.compose_stack import ServiceProcess, processes, total, wait_healthy
from tests.integration.harness import approval_for, signal_with
from tests.integration.order_path import publish_all

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    procs = processes(tmp_path, f"t{uuid.uuid4().hex[:10]}-")
    yield procs
    for p in reversed(procs):
        p.stop()


async def test_every_compose_service_runs_and_counts_the_seed_signal(
        stack: list[ServiceProcess]) -> None:
    sim, rest = stack[0], stack[1:]
    assert sim.name == "simulator"
    sim.start()
    wait_healthy([sim], within=60)
    for p in rest:
        p.start()
    took = wait_healthy(rest, within=150)
    by = {p.name: p for p in stack}
    prefix = stack[1].env["TOPIC_PREFIX"]
    signal = signal_with()
    await publish_all(f"{prefix}approvals", [approval_for(signal)])
    deadline, seen = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        seen = {p.name: p.metrics() for p in stack}
        if (total(seen["trading"], "jax_stage_messages_out_total", stage="sizing") >= 1
                and total(seen["audit"], "jax_audit_rows_written") >= 3
                and total(seen["simulator"], "jax_sim_executions_total") >= 1):
            break
        await asyncio.sleep(1.0)
    for name, samples in seen.items():
        assert total(samples, "jax_process_info") >= 1, name
    assert total(seen["validation"], "jax_stage_messages_in_total", stage="validation") >= 1
    assert total(seen["trading"], "jax_stage_messages_in_total", stage="sizing") >= 1
    assert total(seen["trading"], "jax_stage_messages_out_total", stage="sizing") >= 1
    assert total(seen["trading"], "jax_venue_calls_total") >= 1
    assert total(seen["reconciliation"], "jax_venue_calls_total") >= 1
    assert total(seen["audit"], "jax_audit_rows_written") >= 3
    assert total(seen["trading"], "jax_ready") == 1
    # the simulator's own counters moved for the seed signal's order, on its TWS door
    sim_seen = {k.split("{")[0].removeprefix("jax_sim_"): v for k, v in seen["simulator"].items()
                if k.startswith("jax_sim_") and "door=tws" in k and "_created{" not in k}
    print(f"\nsimulator: {sim_seen}")
    assert total(seen["simulator"], "jax_sim_orders_received_total", door="tws") >= 1
    assert total(seen["simulator"], "jax_sim_orders_accepted_total", door="tws") >= 1
    assert total(seen["simulator"], "jax_sim_executions_total", door="tws") >= 1
    assert total(seen["simulator"], "jax_sim_door_up", door="tws") == 1
    assert total(seen["simulator"], "jax_sim_connections", door="tws") >= 2  # trading, recon
    out = {k.split("topic=")[1].rstrip("}"): v for k, v in seen["trading"].items()
           if k.startswith("jax_stage_messages_out_total") and "stage=sizing" in k}
    print(f"\ncompose: {len(stack)} services healthy (s): "
          f"{ {n: round(t, 1) for n, t in took.items()} }; seed signal {signal['id']}: sizing "
          f"out {out}; submission in "
          f"{total(seen['trading'], 'jax_stage_messages_in_total', stage='submission'):g}; "
          f"venue calls trading {total(seen['trading'], 'jax_venue_calls_total'):g}; audit rows "
          f"{total(seen['audit'], 'jax_audit_rows_written'):g}")
    assert by["api"].healthy()
    api_port = by["api"].env["API_PORT"]
    rows = collect([(p.name, f"http://127.0.0.1:{p.metrics_port}/ready") for p in stack]
                   + [("api /ready", f"http://127.0.0.1:{api_port}/ready")])
    print("status: " + "; ".join(f"{r.name} {'up' if r.ok else 'DOWN'} ({r.detail[:60]})"
                                 for r in rows))
    assert all(r.ok for r in rows[:-1]), rows
    # JSON log lines carry the signal's correlation id: one signal followed across processes
    tagged = [p.name for p in stack if f'"correlation_id": "{signal["id"]}"' in
              p.log.read_text(errors="replace")]
    print(f"log lines with the seed's correlation id in: {tagged}")
    assert "trading" in tagged
