"""Reconciliation against the simulator over the IB wire, on the real Kafka broker: an order
placed behind the pipeline's back, a fill that happened while the worker was down, and a
commission reported late are each found and recorded on `alerts` / `fills` / `orders`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ib_async
import pytest

from agents.reconciliation_seed import read_seed
from schemas.ids import client_order_id
from tests.integration.harness import (
    BOOTSTRAP,
    SimulatorProcess,
    WorkerProcess,
    events,
    wait_for,
)
from tests.polling import until

pytestmark = pytest.mark.integration

ACCOUNT = "DU0000001"


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:10]}-"
        self.tmp = tmp
        self.sim = SimulatorProcess(tmp / "sim")
        self.sim.wait_ready()
        self.worker: WorkerProcess | None = None
        self.ib = ib_async.IB()

    def start_worker(self) -> None:
        self.worker = WorkerProcess(self.tmp / "worker", self.prefix, env={
            "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(self.sim.port),
            "IB_CLIENT_ID": "7"}, args=["--stage", "reconciliation"]).start()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    async def place(self, symbol: str, order: Any) -> Any:
        """An order sent by another API client (clientId 31), not by the pipeline."""
        contract = ib_async.Stock(symbol, "SMART", "USD")
        await self.ib.qualifyContractsAsync(contract)
        order.account = ACCOUNT
        trade = self.ib.placeOrder(contract, order)
        await until(lambda: trade.orderStatus.status in ("Submitted", "Filled"))
        return trade

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(tmp_path)
    try:
        await s.ib.connectAsync("127.0.0.1", s.sim.port, clientId=31, timeout=5)
        yield s
    finally:
        s.ib.disconnect()
        s.stop_worker()
        s.sim.stop()


def ours() -> str:
    return client_order_id(uuid.uuid4())


def alerts_of(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["kind"] == kind]


async def test_external_order_and_a_fill_while_the_worker_was_down(stack: Stack) -> None:
    stack.sim.admin("/price", {"symbol": "AAPL", "price": "150.00"})
    stack.start_worker()
    await stack.place("MSFT", ib_async.LimitOrder("BUY", 1, 1.0))  # no orderRef: not ours
    alerts = await wait_for(stack.topic("alerts"),
                            lambda rows: bool(alerts_of(rows, "external_order")))
    (external,) = alerts_of(alerts, "external_order")
    print("external order alert:", external["message"])
    assert external["symbol"] == "MSFT"

    stack.stop_worker()
    coid = ours()
    await stack.place("AAPL", ib_async.LimitOrder("BUY", 10, 150.0, orderRef=coid))
    stack.start_worker()
    fills = await wait_for(stack.topic("fills"),
                           lambda rows: any(r["client_order_id"] == coid for r in rows))
    (fill,) = [r for r in fills if r["client_order_id"] == coid]
    assert (Decimal(fill["quantity"]), Decimal(fill["price"])) == (10, Decimal(150))
    await wait_for(stack.topic("orders"), lambda rows: any(
        r["client_order_id"] == coid and r["status"] == "filled" for r in rows))
    seed = await read_seed(BOOTSTRAP, stack.topic, "ib")  # what a restart reads back
    assert uuid.UUID(external["event_id"]) in seed.alerts
    assert fill["execution_id"] in seed.executions
    assert seed.positions[(ACCOUNT, "AAPL")] == 10
    # The restart raised nothing twice: one alert for the external order, one fill.
    alerts = await events(stack.topic("alerts"))
    assert len(alerts_of(alerts, "external_order")) == 1
    assert len([r for r in await events(stack.topic("fills"))
                if r["client_order_id"] == coid]) == 1


async def test_a_late_commission_is_waited_for(stack: Stack) -> None:
    stack.sim.admin("/price", {"symbol": "AAPL", "price": "150.00"})
    stack.sim.admin("/faults", {"commission_delay_ms": 4000})
    stack.start_worker()
    coid = ours()
    await stack.place("AAPL", ib_async.LimitOrder("BUY", 10, 150.0, orderRef=coid))
    fills = await wait_for(stack.topic("fills"),
                           lambda rows: any(r["client_order_id"] == coid for r in rows))
    (fill,) = [r for r in fills if r["client_order_id"] == coid]
    print("fill recorded with commission", fill["commission"])
    assert Decimal(fill["commission"]) == Decimal("1.00")  # 10 x 0.005, at least 1.00
    assert alerts_of(await events(stack.topic("alerts")), "late_commission") == []
