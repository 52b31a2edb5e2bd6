"""How fast the audit stage drains a backlog: bulk ingest through the real stage, Kafka to
ClickHouse, not the writer alone (that is bench_clickhouse.py).

N synthetic events (bench_clickhouse's trades: signals, orders, fills over three partitions)
are produced to topics of their own before the audit worker starts; then `jax-exec worker
--stage audit` starts with AUDIT_BATCH_ROWS set, and the clock runs from its `ready` to the
last row visible through its /sql. Once per batch size asked. Writes
bench/results/audit_drain.json; prints a table.

    .venv/bin/python bench/bench_audit_drain.py --events 300000 --batch-rows 5000 50000 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import report  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402
from bench_clickhouse import PARTITIONS, records  # noqa: E402
from pipeline_stack import broker, cpu_seconds, rss_mib  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402

from jax_exec.topics_admin import ensure_topics  # noqa: E402
from tests.integration.harness import WorkerProcess  # noqa: E402

console = Console()
POLL_SECONDS = 0.5
STALL_SECONDS = 60.0  # no new row for this long: the run is reported as it stands


async def produce(bootstrap: str, prefix: str, events: int) -> float:
    """Every event onto its topic and partition, acks from the leader; seconds taken."""
    await ensure_topics(bootstrap, prefix)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=1 << 20, acks=1, request_timeout_ms=30_000)
    await producer.start()
    started = time.monotonic()
    try:
        pending = [await producer.send(prefix + r.topic, r.value, key=r.key,
                                       partition=r.partition % PARTITIONS)
                   for r in records(events)]
        await asyncio.wait_for(asyncio.gather(*pending), 120)
    finally:
        await producer.stop()
    return time.monotonic() - started


def drain(home: Path, bootstrap: str, prefix: str, events: int, batch_rows: int,
          progress: Progress) -> dict[str, Any]:
    worker = WorkerProcess(home / f"audit-{batch_rows}", prefix, args=["--stage", "audit"], env={
        "KAFKA_BOOTSTRAP": bootstrap, "AUDIT_BATCH_ROWS": str(batch_rows),
        "AUDIT_BATCH_SECONDS": "0.5", "LOG_LEVEL": "warning"})
    task = progress.add_task(f"{batch_rows:>7,} rows a flush", total=events)
    worker.start(180)
    started = last_change = time.monotonic()
    first_row: float | None = None  # the group joined, the first batch stored
    rows = 0
    try:
        while rows < events and time.monotonic() - last_change < STALL_SECONDS:
            time.sleep(POLL_SECONDS)
            now = worker.sql("SELECT count() AS n FROM events")[0]["n"]
            if now != rows:
                rows, last_change = int(now), time.monotonic()
                first_row = first_row or last_change
                progress.update(task, completed=rows)
        assert worker.proc is not None
        peak = _peak_rss_mib(worker.proc.pid)
        cpu = cpu_seconds(worker.proc.pid)
    finally:
        worker.stop()
    seconds = last_change - started
    return {"batch_rows": batch_rows, "events": events, "rows": rows,
            "seconds": round(seconds, 2), "events_per_second": round(rows / seconds),
            "seconds_to_first_rows": round((first_row or last_change) - started, 2),
            "worker_cpu_seconds": round(cpu, 1), "worker_peak_rss_mib": peak}


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return rss_mib(pid)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--batch-rows", type=int, nargs="+", default=[5000, 50_000, 100_000])
    p.add_argument("--bootstrap", help="a running broker (default: one of the benchmark's own)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit_drain.json")
    return p.parse_args()


def main() -> int:
    args = parse()
    home = Path(tempfile.mkdtemp(prefix="jax-drain-"))
    bootstrap, kafka = broker(home, args.bootstrap, console.print)
    runs = []
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.completed:,}/{task.total:,}"), TimeElapsedColumn(),
                      console=console) as progress:
            for batch_rows in args.batch_rows:
                prefix = f"d{uuid.uuid4().hex[:8]}-"
                produced = asyncio.run(produce(bootstrap, prefix, args.events))
                progress.console.print(f"produced {args.events:,} events in {produced:.1f} s")
                runs.append(drain(home, bootstrap, prefix, args.events, batch_rows, progress))
    finally:
        if kafka is not None:
            kafka.stop()
        shutil.rmtree(home, ignore_errors=True)
    result = {"machine": report.machine(), "finished_at": datetime.now(UTC).isoformat(),
              "command": "bench/bench_audit_drain.py " + " ".join(sys.argv[1:]),
              "clock": "from the audit worker's ready to the last row visible (its /sql, "
                       f"polled every {POLL_SECONDS} s); includes joining the group",
              "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print("| rows a flush | events | seconds | first rows after | events/s | worker CPU s "
                  "| peak RSS MiB |")
    console.print("|---|---|---|---|---|---|---|")
    for r in runs:
        console.print(f"| {r['batch_rows']:,} | {r['rows']:,} | {r['seconds']} | "
                      f"{r['seconds_to_first_rows']} s | "
                      f"{r['events_per_second']:,} | {r['worker_cpu_seconds']} | "
                      f"{r['worker_peak_rss_mib']} |")
    console.print(f"wrote {args.out}")
    return 0 if all(r["rows"] == r["events"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
