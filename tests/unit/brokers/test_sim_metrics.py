"""The simulator's metrics and readiness (brokers/sim/metrics.py): counted placements and fills,
door up and connections read at scrape time, and the /ready a `jax-exec sim` process serves."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from agents import metrics as process_metrics
from brokers.sim import metrics
from brokers.sim.runner import Simulator, SimulatorSettings
from tests.polling import until
from tests.unit.brokers.conftest import ACCOUNT, req


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(state=tmp_path / "s.sqlite", port=0, admin_port=0,
                                 tick_seconds=0, account=ACCOUNT)
    async with Simulator(settings) as running:
        yield running


async def test_a_listening_simulator_is_ready_and_up(sim: Simulator) -> None:
    found = metrics.checks()
    assert found["door tws"]["ok"] is True
    assert found["door tws"]["port"] == sim.tws_port
    assert found["state file"]["ok"] is True
    assert sample("jax_sim_door_up", door="tws") == 1


async def test_placements_are_counted_by_outcome_and_kept_in_the_log(sim: Simulator) -> None:
    before = (sample("jax_sim_orders_received_total", door="tws"),
              sample("jax_sim_orders_rejected_total", door="tws", code="201"))
    log = sim.exchange.placements
    log.attempted("r-1")
    log.accepted("r-1")
    log.attempted("r-2")
    log.refused("r-2", "201")
    assert sample("jax_sim_orders_received_total", door="tws") == before[0] + 2
    assert sample("jax_sim_orders_rejected_total", door="tws", code="201") == before[1] + 1
    assert log.view()["r-2"]["codes"] == ["201"]  # the admin API's /placements still sees it


async def test_a_fill_counts_an_execution_and_a_filled_order(sim: Simulator) -> None:
    before = (sample("jax_sim_executions_total", door="tws"),
              sample("jax_sim_orders_filled_total", door="tws"))
    sim.exchange.place(ACCOUNT, req("m-1", qty=5))
    assert sample("jax_sim_executions_total", door="tws") == before[0] + 1
    assert sample("jax_sim_orders_filled_total", door="tws") == before[1] + 1


async def test_connections_are_read_at_scrape_time(sim: Simulator) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", sim.tws_port)
    try:
        await until(lambda: sample("jax_sim_connections", door="tws") == 1)
    finally:
        writer.close()
    await until(lambda: sample("jax_sim_connections", door="tws") == 0)


async def test_a_closed_simulator_is_not_ready(tmp_path: Path) -> None:
    settings = SimulatorSettings(state=tmp_path / "s.sqlite", port=0, admin_port=0,
                                 tick_seconds=0)
    async with Simulator(settings):
        pass
    assert metrics.checks() == {"door": {"ok": False, "detail": "not started"}}


async def test_the_process_endpoint_answers_ready_only_while_the_door_listens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_metrics, "_HEALTH", {"status": "ok", "ready": False})
    monkeypatch.setattr(process_metrics, "_CHECKS", [])
    server = process_metrics.serve(0, component="sim")
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            await asyncio.to_thread(urllib.request.urlopen, f"{url}/ready", timeout=5)
        assert refused.value.code == 503
        settings = SimulatorSettings(state=tmp_path / "s.sqlite", port=0, admin_port=0,
                                     tick_seconds=0)
        async with Simulator(settings):
            with await asyncio.to_thread(urllib.request.urlopen, f"{url}/ready",
                                         timeout=5) as resp:
                body = json.loads(resp.read())
            assert body["ready"] is True
            assert body["checks"]["door tws"]["ok"] is True
    finally:
        server.shutdown()
        server.server_close()
