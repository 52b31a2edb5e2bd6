"""A smoke run of the approval-to-order benchmark: seconds of load through the real stack on
the running broker; it checks the artifacts, never the speed (the figures are printed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import BOOTSTRAP, ROOT

pytestmark = pytest.mark.integration


def test_the_benchmark_runs_and_writes_its_three_artifacts(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_pipeline.py"), "--smoke",
         "--bootstrap", BOOTSTRAP, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    print(done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0
    result = json.loads((out / "latest.json").read_text())
    (step,) = result["rates"]
    assert step["approvals"] == 10
    assert step["acked"] + sum(step["rejected"].values()) + step["lost"] == 10
    assert {"p50", "p95", "p99", "max"} <= set(step["ack"])
    assert set(result["floors"]) == {"kafka", "ib_single", "ib_bracket"}
    # where the time goes: the trading worker's stage and venue timings over the step
    assert {"handler:sizing", "handler:submission", "venue:place"} <= set(
        step["usage"]["mean_ms"])
    assert "| offered /s |" in (out / "latest.md").read_text()
    assert (out / "latest.png").stat().st_size > 0
    each = json.loads((out / "latencies.json").read_text())  # every approval, in send order
    assert len(each[f"{step['rate']:g}"]["ack"]) == step["acked"]


def test_the_audit_drain_benchmark_stores_every_event_of_its_backlog(tmp_path: Path) -> None:
    """The audit stage over a backlog on the real broker: every event produced is a row (the
    benchmark exits 1 otherwise); the figures are printed, not checked."""
    out = tmp_path / "audit_drain.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_audit_drain.py"), "--events", "3000",
         "--batch-rows", "1000", "--bootstrap", BOOTSTRAP, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    print(done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["rows"] == run["events"] == 3000
    assert run["batch_rows"] == 1000


def test_the_ib_reads_benchmark_writes_its_figures(tmp_path: Path) -> None:
    """The IB adapter's reads with finished orders in its session (bench/bench_ib_reads.py),
    a small run: every read timed at every size; the figures are printed, not checked."""
    out = tmp_path / "ib_reads.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_ib_reads.py"), "--sizes", "0", "300",
         "--reps", "2", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    print(done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0
    rows = json.loads(out.read_text())["finished_orders"]
    assert set(rows) == {"0", "300"}
    assert {"snapshot read (orders_and_open_orders)", "open_orders",
            "fills_since (reconciliation)", "status of an order"} <= set(rows["300"])
