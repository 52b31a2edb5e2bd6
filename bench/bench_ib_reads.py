"""How the IB adapter's reads grow with the orders of its session: the venue snapshot's read
(orders_and_open_orders), open_orders, fills_since and the look-up of an order, with N orders
finished earlier in the session (placed an hour ago, filled, each with its execution).

The adapter runs as the worker runs it, connected to the simulator's TWS door in this process;
the finished orders are put into ib_async's own state as its decoder would (a trade per order,
a fill per execution), since placing 100,000 orders through IB's pacing would take an hour.
Usage: .venv/bin/python bench/bench_ib_reads.py [--sizes 0 10000 100000] [--reps 20]
Writes bench/results/ib_reads.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ib_async  # noqa: E402
from ib_async import (  # noqa: E402
    CommissionReport,
    Execution,
    Fill,
    Order,
    OrderStatus,
    Stock,
    Trade,
    TradeLogEntry,
)
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402

from brokers.ib import IbOrderService  # noqa: E402
from brokers.sim.core import Exchange, SimConfig  # noqa: E402
from brokers.sim.tws import run_tws_server  # noqa: E402

OUT = ROOT / "bench" / "results" / "ib_reads.json"


def finished(service: IbOrderService, first: int, last: int, at: datetime) -> None:
    """Orders first..last-1 of the session, placed and filled at `at`, into ib_async's state."""
    wrapper, account = service.ib.wrapper, service.account_id
    contract = Stock("AAPL", "SMART", "USD")
    for n in range(first, last):
        order = Order(orderId=10_000 + n, permId=1_000_000 + n, orderRef=f"jx-{n:08d}",
                      account=account, action="BUY", totalQuantity=10, orderType="LMT",
                      lmtPrice=150.0)
        status = OrderStatus(orderId=order.orderId, status="Filled", filled=10, remaining=0)
        execution = Execution(execId=f"e-{n}", time=at, acctNumber=account, side="BOT",
                              shares=10, price=150.0, permId=order.permId,
                              orderId=order.orderId, orderRef=order.orderRef)
        fill = Fill(contract, execution, CommissionReport(), at)
        wrapper.trades[(service.client_id, order.orderId)] = Trade(
            contract, order, status, [fill], [TradeLogEntry(at, "Filled", "")])
        wrapper.permId2Trade[order.permId] = wrapper.trades[(service.client_id, order.orderId)]
        wrapper.fills[execution.execId] = fill


async def timed(call: Callable[[], Awaitable[Any]], reps: int) -> float:
    """Mean ms of CPU per call (the reads send nothing between full reads)."""
    started = time.process_time()
    for _ in range(reps):
        await call()
    return (time.process_time() - started) / reps * 1000


async def run(sizes: list[int], reps: int, console: Console) -> dict[str, Any]:
    exchange = Exchange(SimConfig(seed=7))
    exchange.set_price("AAPL", Decimal("150"))
    server = await run_tws_server(exchange, port=0)
    service = IbOrderService("127.0.0.1", server.port, client_id=21, ib_module=ib_async,
                             full_read_seconds=3600)  # reads from the session's state
    await service.connect()
    out: dict[str, Any] = {}
    try:
        now = datetime.now(UTC)
        await service.orders_and_open_orders(now - timedelta(minutes=2))  # the full reads
        await service.fills_since(now - timedelta(minutes=2))
        done = 0
        with Progress(console=console) as progress:
            task = progress.add_task("sizes", total=len(sizes))
            for size in sorted(sizes):
                finished(service, done, size, now - timedelta(hours=1))
                done = size
                sync = getattr(service, "_indexed", None)
                started = time.process_time()
                if sync is not None:  # the index takes them in (a pass, as every 10 s)
                    service._session.every = 0
                    sync()
                    service._session.every = 10.0
                taken_in = (time.process_time() - started) * 1000
                since = datetime.now(UTC) - timedelta(minutes=2)
                row = {
                    "snapshot read (orders_and_open_orders)":
                        await timed(lambda s=since: service.orders_and_open_orders(s), reps),
                    "open_orders": await timed(service.open_orders, reps),
                    "fills_since (reconciliation)":
                        await timed(lambda s=since: service.fills_since(s), reps),
                    "status of an order": await timed(
                        lambda d=done: service.status("jx-00000000") if d else asyncio.sleep(0),
                        reps),
                    "taking them in, once": taken_in,
                }
                out[str(size)] = {k: round(v, 3) for k, v in row.items()}
                console.print(f"{size:>9,} finished orders: " + ", ".join(
                    f"{k} {v:.2f} ms" for k, v in out[str(size)].items()))
                progress.advance(task)
    finally:
        await service.close()
        await server.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 1_000, 10_000, 100_000])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    console = Console()
    rows = asyncio.run(run(args.sizes, args.reps, console))
    result = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "unit": "ms of CPU per call, mean",
        "finished_orders": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
