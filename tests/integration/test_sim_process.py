"""The simulator as its own process: ib_async over the TWS API, control over the admin API.

Covers what in-process tests cannot: a kill -9 and a restart on the same state file keep
orders, executions and positions (seen over the wire), and an admin-made outage reaches a
connected client as 1100 then 1102. No fixed sleeps: every wait is bounded polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import ib_async
import pytest

from tests.polling import until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "DU0000001"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Subprocess round trips here are slower than in-process ones.
WAIT = 10.0


class SimProcess:
    """`python -m brokers.sim.runner` on fixed ports and one state file."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = free_port()
        self.admin_port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}
        return {
            **base,
            "SIM_STATE": str(self.state),
            "SIM_PORT": str(self.port),
            "SIM_ADMIN_PORT": str(self.admin_port),
            "SIM_TICK_SECONDS": "0",  # prices move only when the test says so
            "SIM_SEED": "5",
            "PYTHONUNBUFFERED": "1",
        }

    async def start(self) -> None:
        self.output = []
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "brokers.sim.runner",
            cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.ensure_future(self._read(self.proc))
        await until(lambda: "ready" in self.output or self.proc_ended(), START_TIMEOUT)
        assert "ready" in self.output, "\n".join(self.output)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            self.output.append(line.decode().rstrip())

    def proc_ended(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    async def _reap(self) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), 15)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert await self._reap() == -signal.SIGKILL

    async def stop(self) -> int:
        """SIGTERM: the clean stop."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return self.proc.returncode
        self.proc.terminate()
        return await self._reap()

    async def admin(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, json=body, params=params) as resp,
        ):
            answer = await resp.json()
            assert resp.status == 200, answer
            return answer


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimProcess]:
    process = SimProcess(tmp_path / "sim.sqlite")
    await process.start()
    try:
        yield process
    finally:
        if process.proc is not None and process.proc.returncode is None:
            process.proc.kill()
            await process._reap()


@contextlib.asynccontextmanager
async def client(sim: SimProcess, client_id: int) -> AsyncIterator[ib_async.IB]:
    ib = ib_async.IB()
    await ib.connectAsync("127.0.0.1", sim.port, clientId=client_id, timeout=10)
    try:
        yield ib
    finally:
        ib.disconnect()


async def test_fill_survives_kill_9_and_restart(sim: SimProcess) -> None:
    await sim.admin("POST", "/price", {"symbol": "AAPL", "price": "150.00"})
    contract = ib_async.Stock("AAPL", "SMART", "USD")
    async with client(sim, 7) as ib:
        await ib.qualifyContractsAsync(contract)
        buy = ib.placeOrder(contract, ib_async.LimitOrder("BUY", 10, 140.0, orderRef="k9-buy"))
        rest = ib.placeOrder(contract, ib_async.LimitOrder("BUY", 5, 100.0, orderRef="k9-rest"))
        await until(lambda: buy.orderStatus.status == "Submitted", seconds=WAIT)
        await until(lambda: rest.orderStatus.status == "Submitted", seconds=WAIT)
        await sim.admin("POST", "/price", {"symbol": "AAPL", "price": "139.50"})
        await until(lambda: buy.orderStatus.status == "Filled", seconds=WAIT)
        await until(lambda: len(ib.fills()) == 1, seconds=WAIT)
        exec_id = ib.fills()[0].execution.execId
        assert ib.fills()[0].execution.price == 139.5
        await until(lambda: [p.position for p in ib.positions()] == [10], seconds=WAIT)
        rest_id = rest.order.orderId

    await sim.kill9()
    await sim.start()  # same ports, same state file

    state = await sim.admin("GET", "/state")
    assert state["prices"]["AAPL"] == {**state["prices"]["AAPL"], "price": "139.50", "held": True}
    async with client(sim, 7) as ib:
        positions = await ib.reqPositionsAsync()
        assert [(p.account, p.contract.symbol, p.position) for p in positions] == [
            (ACCOUNT, "AAPL", 10),
        ]
        fills = await ib.reqExecutionsAsync()
        assert [(f.execution.execId, f.execution.orderRef, f.execution.shares) for f in fills] == [
            (exec_id, "k9-buy", 10),
        ]
        completed = await ib.reqCompletedOrdersAsync(apiOnly=False)
        assert [(t.order.orderRef, t.orderStatus.status) for t in completed] == [
            ("k9-buy", "Filled"),
        ]
        open_trades = await ib.reqAllOpenOrdersAsync()
        assert [(t.order.orderRef, t.order.orderId) for t in open_trades] == [
            ("k9-rest", rest_id),
        ]

        # The resting order is still this client's after the restart: modify it to marketable.
        resting = await until(
            lambda: [t for t in ib.openTrades() if t.order.orderId == rest_id], seconds=WAIT)
        order = resting[0].order
        order.lmtPrice = 140.0
        trade = ib.placeOrder(contract, order)
        await until(lambda: trade.orderStatus.status == "Filled", seconds=WAIT)
        await until(lambda: any(p.position == 15 for p in ib.positions()), seconds=WAIT)

    orders = await sim.admin("GET", "/orders", account=ACCOUNT)
    assert [(o["client_order_id"], o["status"]) for o in orders["orders"]] == [
        ("k9-buy", "filled"), ("k9-rest", "filled"),
    ]  # fmt: skip
    fills_now = await sim.admin("GET", "/fills")
    assert [f["price"] for f in fills_now["fills"]] == ["139.50", "139.50"]
    assert await sim.stop() == 0
    assert "simulator stopped" in sim.output


async def test_admin_outage_reaches_client_as_1100_then_1102(sim: SimProcess) -> None:
    async with client(sim, 8) as ib:
        codes: list[int] = []
        ib.errorEvent += lambda req_id, code, *_: codes.append(code)
        answer = await sim.admin("POST", "/outage", {"seconds": 0.5})
        assert answer["in_outage"] is True
        await until(lambda: 1100 in codes, seconds=WAIT)
        await until(lambda: 1102 in codes, seconds=WAIT)
        assert codes.index(1100) < codes.index(1102)
        assert (await sim.admin("GET", "/health"))["in_outage"] is False
        assert (await ib.reqCurrentTimeAsync()).year >= 2024  # traffic flows again
