"""Paper first, live only on purpose: the account's kind is checked when the worker starts
(IB paper accounts start with "D"); a live account needs LIVE_TRADING_ACCOUNT naming it, and
then every size is ramped down and capped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.ids import signal_event_id
from tests.integration.harness import (
    SimulatorProcess,
    WorkerProcess,
    approval_for,
    publish,
    signal_with,
    wait_for,
)

pytestmark = pytest.mark.integration
LIVE = "U7654321"


@pytest.fixture
def live_sim(tmp_path: Path) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(tmp_path / "sim", env={"SIM_ACCOUNT": LIVE})
    sim.wait_ready()
    yield sim
    sim.stop()


def ib_env(sim: SimulatorProcess, **extra: str) -> dict[str, str]:
    return {"VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim.port),
            "IB_CLIENT_ID": "9", "IB_ACCOUNT": LIVE, **extra}


def test_a_live_account_refuses_to_start_unless_named(
        live_sim: SimulatorProcess, tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path / "w", f"t{uuid.uuid4().hex[:10]}-", env=ib_env(live_sim))
    with pytest.raises(RuntimeError, match="LIVE_TRADING_ACCOUNT") as failed:
        worker.start(timeout=60)
    assert LIVE in str(failed.value)
    assert worker.proc is not None
    assert worker.proc.returncode != 0


async def test_an_enabled_live_account_trades_ramped_down_and_capped(
        live_sim: SimulatorProcess, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    worker = WorkerProcess(tmp_path / "w", prefix, env=ib_env(
        live_sim, LIVE_TRADING_ACCOUNT=LIVE, LIVE_RAMP_FACTOR="0.1",
        LIVE_MAX_ORDER_NOTIONAL="1000")).start()
    try:
        sig = signal_with()
        corr = signal_event_id(sig["id"])
        await publish(f"{prefix}signals", sig)
        await publish(f"{prefix}approvals", approval_for(sig))
        intents = await wait_for(f"{prefix}order-intents", lambda rows: any(
            r["correlation_id"] == str(corr) for r in rows))
        intent = next(r for r in intents if r["correlation_id"] == str(corr))
        # 133 on paper; x0.1 ramp = 13; the 1,000 live notional cap at 150.00 allows 6.
        assert Decimal(intent["quantity"]) == 6
        assert intent["sizing"]["bound_by"] == "live_notional_cap"
        assert intent["account_id"] == LIVE
    finally:
        worker.stop()
