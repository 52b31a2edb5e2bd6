"""The seed's AAPL signal through approval to a bracket order at the simulator, over the real
IB wire protocol (ib_async in the worker, the simulator in its own process), on the real Kafka
broker: the entry fills, the price path reaches the take-profit, the stop leg is cancelled;
every fact is an event and a row in ClickHouse."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from schemas.ids import client_order_id, signal_event_id
from tests.integration.harness import (
    SEED_SIGNAL,
    SimulatorProcess,
    WorkerProcess,
    approval_for,
    publish,
    wait_for,
    wait_sql,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[SimulatorProcess, WorkerProcess, str]]:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    sim = SimulatorProcess(tmp_path / "sim")
    sim.wait_ready()
    worker = WorkerProcess(tmp_path / "worker", prefix, env={
        "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim.port), "IB_CLIENT_ID": "7",
    })
    try:
        worker.start()
        yield sim, worker, prefix
    finally:
        worker.stop()
        sim.stop()


def for_signal(rows: list[dict[str, Any]], corr: uuid.UUID) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("correlation_id") == str(corr)]


async def test_bracket_entry_then_take_profit_exit_and_cancelled_stop(
        stack: tuple[SimulatorProcess, WorkerProcess, str]) -> None:
    sim, worker, prefix = stack
    corr = signal_event_id(SEED_SIGNAL["id"])
    coid = client_order_id(corr)
    await publish(f"{prefix}signals", SEED_SIGNAL, key=str(corr).encode())
    await publish(f"{prefix}approvals", approval_for(SEED_SIGNAL), key=str(corr).encode())

    # AAPL starts at its reference 150.00 with the clock frozen: the LMT 150.00 entry fills.
    await wait_for(f"{prefix}fills", lambda rows: any(
        r["client_order_id"] == coid for r in for_signal(rows, corr)))
    await wait_for(f"{prefix}orders", lambda rows: {"submitted", "accepted"} & {
        r["status"] for r in rows if r["client_order_id"] == f"{coid}-tp"} != set())

    sim.admin("/price", {"symbol": "AAPL", "price": "160.00"})  # the path reaches the target

    fills = await wait_for(f"{prefix}fills", lambda rows: len(for_signal(rows, corr)) == 2)
    by_leg = {r["leg"]: r for r in for_signal(fills, corr)}
    assert set(by_leg) == {"entry", "take_profit"}
    assert (by_leg["entry"]["side"], Decimal(by_leg["entry"]["price"])) == ("BUY", Decimal(150))
    assert (by_leg["take_profit"]["side"], Decimal(by_leg["take_profit"]["price"])) == \
        ("SELL", Decimal(160))
    assert Decimal(by_leg["entry"]["quantity"]) == Decimal(by_leg["take_profit"]["quantity"]) \
        == 133
    assert all(r["venue"] == "ib" for r in by_leg.values())
    orders = await wait_for(f"{prefix}orders", lambda rows: any(
        r["client_order_id"] == f"{coid}-sl" and r["status"] == "cancelled"
        for r in rows))
    finals = {r["client_order_id"]: r["status"] for r in for_signal(orders, corr)}
    assert finals[f"{coid}-tp"] == "filled"

    rows = wait_sql(worker, (
        "SELECT topic, JSONExtractString(payload, 'client_order_id') AS coid, "
        "JSONExtractString(payload, 'status') AS status FROM events "
        f"WHERE correlation_id = '{corr}' AND topic IN ('orders', 'fills')"),
        lambda rows: sum(r["topic"] == "fills" for r in rows) == 2 and any(
            r["coid"] == f"{coid}-sl" and r["status"] == "cancelled" for r in rows))
    assert {r["coid"] for r in rows if r["topic"] == "fills"} == {coid, f"{coid}-tp"}

    state = sim.admin("/state")
    account = next(iter(state["accounts"].values()))
    assert account["positions"] == [] or all(
        Decimal(p["quantity"]) == 0 for p in account["positions"])
