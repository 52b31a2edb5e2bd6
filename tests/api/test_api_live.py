"""The seeds' manual test, as written, against the real API: the worker serves it (it owns the
embedded ClickHouse) on the real Kafka broker, trading through the IB adapter with the
simulator in its own process. And /ready names the venue when the simulator stops."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from schemas.ids import signal_event_id
from tests.integration.harness import (
    ROOT,
    SimulatorProcess,
    WorkerProcess,
    free_port,
    publish,
    signal_with,
)

pytestmark = pytest.mark.integration


def call(port: int, path: str, token: str | None = None, body: dict[str, Any] | None = None,
         ) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers,
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def until(check: Any, within: float = 45.0) -> Any:
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"not met in {within}s (last: {last})")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[SimulatorProcess, WorkerProcess, int, str]]:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    api_port = free_port()
    sim = SimulatorProcess(tmp_path / "sim")
    sim.wait_ready()
    worker = WorkerProcess(tmp_path / "worker", prefix, args=["--api"], env={
        "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim.port), "IB_CLIENT_ID": "3",
        "API_PORT": str(api_port), "TRIP_VENUE_FAILURES": "0"})
    worker.home.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "jax_exec", "users", "add", "test_user",
                          "--role", "approver"], cwd=ROOT, env=worker.env, check=True,
                         capture_output=True, text=True).stdout
    token = re.findall(r"^(\S+)\s*$", out, re.MULTILINE)[-1]
    try:
        worker.start()
        yield sim, worker, api_port, token
    finally:
        worker.stop()
        if sim.proc.poll() is None:
            sim.stop()


async def test_the_seeds_manual_test_against_the_api(
        live: tuple[SimulatorProcess, WorkerProcess, int, str]) -> None:
    _, worker, port, token = live
    signal = signal_with()  # the seed's AAPL signal with a fresh id
    corr = signal_event_id(signal["id"])
    await publish(f"{worker.prefix}signals", signal, key=str(corr).encode())

    assert call(port, "/health")[0] == 200
    assert call(port, "/api/v1/signals?status=pending")[0] == 401  # no token
    pending = until(lambda: [s for s in call(port, "/api/v1/signals?status=pending", token)[1]
                             ["items"] if s["signal_id"] == signal["id"]])
    assert Decimal(pending[0]["size_now"]["quantity"]) == 133
    assert pending[0]["size_now"]["binding"] == "max_position_pct"

    status, decided = call(port, f"/api/v1/signals/{signal['id']}/approve", token,
                           {"approved_by": "test_user"})
    assert status == 202, decided

    def trade() -> dict[str, Any] | None:
        items = call(port, "/api/v1/trades", token)[1]["items"]
        return next((t for t in items if t["signal_id"] == signal["id"]), None)

    record = until(trade)
    assert (record["symbol"], record["direction"]) == ("AAPL", "BUY")
    assert Decimal(record["quantity"]) == 133
    assert Decimal(record["risk_amount"]) == Decimal("665.00")
    assert Decimal(record["risk_percent"]) == Decimal("0.00665")
    assert Decimal(record["position_value"]) == Decimal("19950.00")
    assert Decimal(record["rr_ratio"]) == Decimal("2.0")
    assert record["approved_by"] == "test_user"
    status, one = call(port, f"/api/v1/trades/{record['id']}", token)
    assert status == 200
    assert one["order_id"] == record["order_id"]
    print(f"\nseeds' manual test: pending 133 AAPL (max_position_pct), approved by test_user, "
          f"trade {record['id']} status {one['status']}")


def test_ready_names_the_venue_when_the_simulator_stops(
        live: tuple[SimulatorProcess, WorkerProcess, int, str], tmp_path: Path) -> None:
    sim, _, port, _ = live
    until(lambda: call(port, "/ready")[0] == 200)
    sim.stop()
    _, body = until(lambda: (r := call(port, "/ready"))[0] == 503 and r)
    assert "venue" in json.dumps(body)
    again = SimulatorProcess(tmp_path / "sim", env={"SIM_PORT": str(sim.port),
                                                   "SIM_ADMIN_PORT": str(sim.admin_port)})
    again.wait_ready()
    try:
        until(lambda: call(port, "/ready")[0] == 200, within=60)
    finally:
        again.stop()
    print(f"\n/ready: 503 naming the venue while the simulator was down ({body.get('detail')}), "
          "200 again once it was back")
