"""Paper first, live only on purpose: the account's kind is checked when the worker starts
(IB paper accounts start with "D"); a live account needs LIVE_TRADING_ACCOUNT naming it to
start, and then trades only on an admin's signed go-live decision (the `rollout` topic), at
that decision's ramp (size factor and notional cap), stepped up by further signed decisions."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.decisions.rollout import (
    LiveGrant,
    PaperFigures,
    RolloutThresholds,
    go_live,
    ramp,
    rollout_report,
    unsigned_body,
)
from agents.decisions.signatures import sign
from jax_exec.keys import signing_key
from schemas.events import RolloutDecision
from schemas.ids import signal_event_id
from tests.integration.harness import (
    KEYS_HOME,
    SimulatorProcess,
    WorkerProcess,
    approval_for,
    events,
    publish,
    signal_with,
    wait_for,
    wait_sql,
)

pytestmark = pytest.mark.integration
LIVE = "U7654321"
ADMIN = "carol"  # one of the harness's approvers, with a key in the test keyring
T = RolloutThresholds(min_days_traded=1, min_orders=1, admins=frozenset({ADMIN}))


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


def passing_period() -> PaperFigures:
    now = datetime.now(UTC)
    return PaperFigures(since=now - timedelta(days=30), until=now, days_traded=25, orders=120,
                        filled_orders=100, rejections={}, avg_slippage_bps=1.0,
                        ack_latency_p95_ms=300.0, reconciliation_alerts=0, kill_switch_trips=0,
                        daily_pnl=((now.date(), Decimal(100)),))


def signed(decision: RolloutDecision) -> dict[str, Any]:
    """As `jax-exec rollout go-live|ramp` publishes it: signed with the admin's key."""
    key = signing_key(KEYS_HOME, ADMIN)
    return sign(unsigned_body(decision), key.private_key, key.key_id)


def wait_log(worker: WorkerProcess, text: str, within: float = 30.0) -> None:
    """The worker logs each grant it applies (agents.rollout_reader)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if text in worker.log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"not in the worker's log within {within}s: {text}\n{worker.tail()}")


async def outcome(worker: WorkerProcess, within: float = 45.0) -> tuple[str, dict[str, Any]]:
    """Publish a signal and its approval; the order intent or the rejection it became."""
    prefix = worker.prefix
    sig = signal_with()
    corr = str(signal_event_id(sig["id"]))
    await publish(f"{prefix}signals", sig)
    await publish(f"{prefix}approvals", approval_for(sig))
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for topic in ("order-intents", "rejections"):
            mine = [r for r in await events(f"{prefix}{topic}") if r["correlation_id"] == corr]
            if mine:
                return topic, mine[0]
        await asyncio.sleep(0.5)
    raise AssertionError(f"signal {sig['id']}: no intent and no rejection in {within}s")


async def test_live_trades_only_on_a_signed_go_live_at_its_ramp(
        live_sim: SimulatorProcess, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    # LIVE_RAMP_FACTOR / LIVE_MAX_ORDER_NOTIONAL of the settings are not what sizes: the grant is
    worker = WorkerProcess(tmp_path / "w", prefix, env=ib_env(
        live_sim, LIVE_TRADING_ACCOUNT=LIVE, LIVE_RAMP_FACTOR="1", ROLLOUT_ADMINS=ADMIN,
        LIVE_MAX_ORDER_NOTIONAL="1000000", ALLOW_SAME_SYMBOL_POSITION="true")).start()
    try:
        # 1. no signed go-live decision: refused with LIVE_NOT_GRANTED, on record in ClickHouse
        topic, refused = await outcome(worker)
        print(f"without a grant: {refused.get('reason_code')}: {refused.get('message')}")
        assert topic == "rejections", refused
        assert refused["reason_code"] == "LIVE_NOT_GRANTED"
        assert refused["stage"] == "live_guard"
        assert f"live account {LIVE} has no signed go-live decision" in refused["message"]
        stored = wait_sql(worker, "SELECT toString(correlation_id) AS corr, reason_code, message "
                          "FROM rejections FINAL",
                          lambda rs: refused["correlation_id"] in {r["corr"] for r in rs})
        row = {r["corr"]: r for r in stored}[refused["correlation_id"]]
        assert row["reason_code"] == "LIVE_NOT_GRANTED"

        # 2. the admin's signed GO_LIVE (initial ramp x0.1, cap 1,000): the order is placed
        decision = go_live(rollout_report(passing_period(), T), LIVE, ADMIN,
                           datetime.now(UTC), T)
        assert isinstance(decision, RolloutDecision)
        await publish(f"{prefix}rollout", signed(decision), key=decision.kafka_key)
        wait_log(worker, f"live grant {LIVE}: factor 0.1, cap 1000")
        topic, intent = await outcome(worker)
        assert topic == "order-intents", intent
        # 133 on paper; x0.1 = 13; the grant's 1,000 cap at 150.00 allows 6
        assert Decimal(intent["quantity"]) == 6
        assert intent["sizing"]["bound_by"] == "live_notional_cap"
        assert intent["account_id"] == LIVE
        orders = await wait_for(f"{prefix}orders", lambda rs: any(
            r["client_order_id"] == intent["client_order_id"]
            and r["status"] in ("accepted", "filled")
            for r in rs))
        print(f"after go-live: intent {intent['quantity']}, "
              f"{len([r for r in orders if r['client_order_id'] == intent['client_order_id']])}"
              " order events")

        # 3. a signed RAMP (x0.2, cap 2,000) from the grant in force changes the size
        grant = LiveGrant(LIVE, decision.ramp_factor, decision.max_order_notional, ADMIN,
                          decision.event_id)
        step = ramp(grant, LIVE, Decimal("0.2"), Decimal(2000), ADMIN,
                    datetime.now(UTC) + timedelta(seconds=1), T)
        assert isinstance(step, RolloutDecision)
        await publish(f"{prefix}rollout", signed(step), key=step.kafka_key)
        wait_log(worker, f"live grant {LIVE}: factor 0.2, cap 2000")
        topic, ramped = await outcome(worker)
        assert topic == "order-intents", ramped
        assert Decimal(ramped["quantity"]) == 13  # x0.2 = 26; the 2,000 cap allows 13
        print(f"after the ramp: intent {ramped['quantity']}")
        audited = wait_sql(worker, "SELECT toString(event_id) AS id FROM events "
                           "WHERE event_type = 'rollout'", lambda rs: len(rs) >= 2)
        assert {str(decision.event_id), str(step.event_id)} <= {r["id"] for r in audited}
        print(json.dumps({"rollout decisions audited": len(audited)}))
    finally:
        worker.stop()
