"""Benchmark the ClickHouse layer: ingest N synthetic events through AuditWriter, time queries.

Usage: .venv/bin/python bench/bench_clickhouse.py --events 1000000 [--before FILE|none]
Writes bench/results/clickhouse.json and bench/results/clickhouse.png; --before (default: the
last clickhouse.json) puts those figures beside the new ones in both. The machine is
shared: the load average at start and end and the ingest's CPU seconds are recorded too.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table  # noqa: E402

from schemas.ids import derive_id  # noqa: E402
from store.client import ClickHouse  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.queries import Queries  # noqa: E402
from store.synthetic import EVENTS_PER_TRADE, synthetic_trade  # noqa: E402
from store.writer import (  # noqa: E402
    WRITER_SWITCH_SECONDS,
    AuditWriter,
    EventRecord,
    rebuild_pnl_daily,
)

RESULTS = ROOT / "bench" / "results"
OLD_TRADES = "SELECT * FROM trades ORDER BY opened_at DESC LIMIT 100"
OLD_ORDERS = "SELECT * FROM orders ORDER BY created_at DESC LIMIT 100"
OLD_POSITIONS = "SELECT * FROM positions ORDER BY account_id, symbol"
OLD_DAILY = (
    "SELECT day, sum(trades) AS n, sum(realized_pnl) AS pnl FROM daily_pnl GROUP BY day "
    "ORDER BY day"
)
# daily_pnl() and pnl() before pnl_daily (0008): the per-signal rollup of 0007, every signal
OLD_DAILY_PRE = (
    "SELECT day, sum(trades) AS n, sum(realized_pnl) AS pnl, sum(avg_r_multiple * trades) "
    "/ sum(trades) AS r FROM daily_pnl_pre GROUP BY day ORDER BY day"
)
OLD_PNL_STRATEGY = (
    "SELECT strategy_id AS key, count() AS trades, sum(realized_pnl) AS pnl, "
    "avg(r_multiple) AS r FROM trade_pnl_pre WHERE closed_quantity > 0 GROUP BY key "
    "ORDER BY key DESC"
)
PARTITIONS = 3
console = Console()


def machine_info(engine: str) -> dict[str, Any]:
    """Where the figures came from."""
    from importlib.metadata import version

    import clickhouse_connect

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(ram, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "chdb": engine,
        "chdb_core_package": version("chdb-core"),
        "clickhouse_connect": clickhouse_connect.__version__,
        "gil_switch_seconds": sys.getswitchinterval(),
    }


def records(n_events: int) -> Any:
    """Synthetic Kafka records, five per trade, offsets per (topic, partition)."""
    offsets: dict[tuple[str, int], int] = {}
    trades = (n_events + EVENTS_PER_TRADE - 1) // EVENTS_PER_TRADE
    emitted = 0
    for n in range(trades):
        part = n % PARTITIONS
        for topic, cid, value in synthetic_trade(n):
            if emitted >= n_events:
                return
            off = offsets.get((topic, part), 0)
            offsets[(topic, part)] = off + 1
            yield EventRecord(topic, part, off, str(cid).encode(), value.encode(), None)
            emitted += 1


async def ingest(ch: ClickHouse, n_events: int, batch: int) -> dict[str, Any]:
    """Push every record through the writer as the audit stage does (add_many, then flush).
    The synthetic records of a batch are made before its clock starts: the figures are the
    writer's (decode, rows, insert, the materialized views), not the generator's."""
    writer = AuditWriter(ch, max_batch_rows=batch, max_batch_seconds=3600)
    started = time.perf_counter()
    writer_seconds = writer_cpu = 0.0
    columns = [
        TextColumn("ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    source = records(n_events)
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("ingest", total=n_events, rate="")
        done = 0
        while True:
            chunk = list(itertools.islice(source, batch))  # made while nothing else runs
            clock, cpu = time.perf_counter(), time.process_time()
            # the last chunk's flush runs while this one is decoded (ClickHouse works on its
            # own thread; the decoding yields to the flush between slices)
            flushing = asyncio.ensure_future(writer.flush())
            await writer.add_many_yielding(chunk)
            await flushing
            writer_seconds += time.perf_counter() - clock
            writer_cpu += time.process_time() - cpu
            if not chunk:
                break
            done += len(chunk)
            progress.update(task, completed=done,
                            rate=f"{done / writer_seconds:,.0f} ev/s (writer)")
    return {
        "events": done,
        "seconds": round(writer_seconds, 2),
        "events_per_second": round(done / writer_seconds),
        "cpu_seconds": round(writer_cpu, 1),
        "events_per_cpu_second": round(done / writer_cpu),
        "wall_seconds_with_generator": round(time.perf_counter() - started, 2),
        "rows_written": writer.stats.rows_written,
        "batches": writer.stats.batches_written,
        "batch_rows": batch,
    }


async def timed(fn: Callable[[], Awaitable[Any]], reps: int) -> dict[str, Any]:
    """Median and p95 wall time of repeated calls (first call included: no warm-up)."""
    times: list[float] = []
    rows = 0
    for _ in range(reps):
        t = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - t) * 1000)
        rows = len(result) if hasattr(result, "__len__") else int(result)
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(p95, 2),
        "min_ms": round(ordered[0], 2),
        "reps": reps,
        "rows": rows,
    }


async def _repair(ch: ClickHouse) -> int:
    await rebuild_pnl_daily(ch)
    return 0


async def run_queries(ch: ClickHouse, n_events: int, reps: int) -> dict[str, Any]:
    """Time the queries the API serves most."""
    q = Queries(ch)
    trades = max(1, n_events // EVENTS_PER_TRADE)
    cid = derive_id("bench", trades // 2)
    suite: dict[str, Callable[[], Awaitable[Any]]] = {
        "trade_history (trades, last 100)": lambda: q.trades(limit=100),
        "trade_history AAPL (trades, last 100)": lambda: q.trades(symbol="AAPL", limit=100),
        "order_history (last 100)": lambda: q.order_history(limit=100),
        "positions": lambda: q.positions(),
        "daily_pnl": lambda: q.daily_pnl(),
        "daily_pnl by strategy": lambda: q.daily_pnl(by_strategy=True),
        "pnl by day": lambda: q.pnl("day"),
        "pnl by strategy": lambda: q.pnl("strategy"),
        "pnl by symbol (trade_pnl_pre)": lambda: q.pnl("symbol"),
        "trace (one signal)": lambda: q.trace(cid),
        "count_events": lambda: q.count_events(),
        # The same reads as before the probe, in the same run (same load): the whole view.
        "old path: trade_history (whole trades view)": lambda: ch.query(OLD_TRADES),
        "old path: order_history (whole orders view)": lambda: ch.query(OLD_ORDERS),
        # Before the pre-aggregates (0006): the views over every fill, same run, same data.
        "old path: positions (positions view over fills FINAL)": lambda: ch.query(OLD_POSITIONS),
        "old path: daily_pnl (daily_pnl view over fills FINAL)": lambda: ch.query(OLD_DAILY),
        # Before pnl_daily (0008): the per-signal rollup (0007), same run, same data.
        "old path: daily_pnl (daily_pnl_pre over pnl_rollup FINAL)":
            lambda: ch.query(OLD_DAILY_PRE),
        "old path: pnl by strategy (trade_pnl_pre)": lambda: ch.query(OLD_PNL_STRATEGY),
        # What a writer does at start (a correction of pnl_daily from trade_pnl_pre)
        "pnl_daily repair at writer start": lambda: _repair(ch),
    }
    out: dict[str, Any] = {}
    for name, fn in suite.items():
        out[name] = await timed(fn, reps)
        console.print(f"  {name}: median {out[name]['median_ms']} ms, p95 {out[name]['p95_ms']} ms")
    return out


async def storage(ch: ClickHouse) -> dict[str, Any]:
    """On-disk size of the main tables."""
    rows = await ch.query(
        "SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts "
        "WHERE active AND database = currentDatabase() GROUP BY table ORDER BY table"
    )
    return {
        str(r["table"]): {"rows": int(r["rows"]), "mib": round(int(r["bytes"]) / 2**20, 1)}
        for r in rows
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Bar chart of query medians and p95s (before and after), ingest rates in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["queries"])
    before = (result.get("before") or {}).get("queries", {})
    bars = [("median", "median_ms", result["queries"]), ("p95", "p95_ms", result["queries"])]
    if before:
        bars = [("before median", "median_ms", before), *bars]
    fig, ax = plt.subplots(figsize=(11, 6))
    height = 0.8 / len(bars)
    for j, (label, column, figures) in enumerate(bars):
        values = [figures.get(n, {}).get(column, 0) for n in names]
        ax.barh([i + 0.4 - height * (j + 0.5) for i in range(len(names))], values,
                height=height, label=label)
    ax.set_yticks(list(range(len(names))), names)
    ax.axvline(200, color="grey", linestyle="--", linewidth=1, label="200 ms target")
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log scale)")
    ing = result["ingest"]
    m = result["machine"]
    was = (result.get("before") or {}).get("ingest", {}).get("events_per_second")
    ax.set_title(
        f"chdb {m['chdb']}: {ing['events']:,} events, ingest {ing['events_per_second']:,} ev/s"
        + (f" (before {was:,})" if was else "")
        + f"; {m['cores']} cores, load {m.get('load_start', '?')}"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(result: dict[str, Any]) -> None:
    """Print the figures as a table."""
    was_events = (result.get("before") or {}).get("ingest", {}).get("events")
    title = f"{result['ingest']['events']:,} events"
    if was_events and was_events != result["ingest"]["events"]:
        title += f" (before: {was_events:,} events, not comparable; see the old-path rows)"
    table = Table(title=title)
    before = (result.get("before") or {}).get("queries", {})
    for col in ("query", "before median ms", "median ms", "p95 ms", "rows"):
        table.add_column(col)
    for name, r in result["queries"].items():
        was = before.get(name, {}).get("median_ms", "")
        table.add_row(name, str(was), str(r["median_ms"]), str(r["p95_ms"]), str(r["rows"]))
    console.print(table)
    console.print(f"ingest: {result['ingest']}")
    if result.get("before"):
        console.print(f"ingest before: {result['before']['ingest']}")
    console.print(f"load average: {result['machine']['load_start']} at start, "
                  f"{result['machine']['load_end']} at end ({result['machine']['cores']} cores)")


async def main(args: argparse.Namespace) -> None:
    """Ingest, query, write results."""
    base = Path(args.path) if args.path else Path(tempfile.mkdtemp(prefix="jax-bench-"))
    data = base / "chdb"
    if not args.reuse:
        shutil.rmtree(data, ignore_errors=True)
    console.print(f"chdb path {data}, {args.events:,} events, batches of {args.batch:,}")
    before: dict[str, Any] | None = args.before_figures
    # as the audit stage's own process runs the writer (jax_exec.runner.switch_interval)
    sys.setswitchinterval(args.gil_switch)
    load_start = os.getloadavg()[0]
    async with ClickHouse(f"chdb://{data}", database="bench") as ch:
        await migrate(ch)
        if args.reuse_figures:
            ingest_figures = {**args.reuse_figures["ingest"], "from": args.reuse_figures["when"]}
        else:
            ingest_figures = await ingest(ch, args.events, args.batch)
        console.print("queries:")
        queries = await run_queries(ch, args.events, args.reps)
        sizes = await storage(ch)
        engine = str((await ch.query("SELECT version() AS v"))[0]["v"])
    machine = {
        **machine_info(engine),
        "load_start": round(load_start, 2),
        "load_end": round(os.getloadavg()[0], 2),
    }
    result = {
        "when": datetime.now(UTC).isoformat(),
        "machine": machine,
        "ingest": ingest_figures,
        "queries": queries,
        "storage": sizes,
        "before": before,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    report(result)
    if not args.keep and not args.reuse:
        shutil.rmtree(data if args.path else base, ignore_errors=True)


def parse() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--batch", type=int, default=100_000, help="rows per insert")
    p.add_argument("--reps", type=int, default=7, help="repetitions per query")
    p.add_argument("--path", help="directory for the chdb data (default: a temp dir)")
    p.add_argument("--out", default=str(RESULTS / "clickhouse"),
                   help="where to write the results: OUT.json and OUT.png")
    p.add_argument("--keep", action="store_true", help="keep the chdb data afterwards")
    p.add_argument("--gil-switch", type=float, default=WRITER_SWITCH_SECONDS,
                   help="the process's GIL switch interval in seconds (default: the audit "
                        "stage's, store.writer.WRITER_SWITCH_SECONDS; Python's own is 0.005)")
    p.add_argument("--before", default=str(RESULTS / "clickhouse.json"),
                   help="a previous clickhouse.json to report beside this run (default: the "
                   "last results, if any; 'none' for no comparison)")
    p.add_argument("--reuse", help="the clickhouse.json of the run whose data is kept at "
                   "--path: query that data again, reporting that run's ingest figures")
    args = p.parse_args()
    before = Path(args.before) if args.before and args.before != "none" else None
    args.before_figures = None
    if before is not None and before.exists():
        args.before_figures = {**json.loads(before.read_text()), "before": None}
    args.reuse_figures = json.loads(Path(args.reuse).read_text()) if args.reuse else None
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
