"""Approval -> order benchmark: open-loop load at fixed offered rates through the real stack
(Kafka, `jax-exec sim`, a worker with the trading stages over the IB adapter, a worker with the
audit stage), beside the floor measured in the same run. Writes bench/results/latest.json,
latest.md and latest.png.

    .venv/bin/python bench/bench_pipeline.py            # the full run (~6-12 min on 2 cores)
    .venv/bin/python bench/bench_pipeline.py --smoke    # seconds of load, for the smoke test
    .venv/bin/python bench/bench_pipeline.py --rates 10 --durations 10 --profile-rate 10 --keep

The trading worker runs with bench/probe on PYTHONPATH: its sitecustomize counts the TWS API
messages it sends (the report's messages per approval) and, with --profile-rate, samples its
main thread's stacks during that step (profile-<rate>.txt, collapsed stacks; py-spy cannot
attach to every Python build). --keep keeps the workers' and simulator's logs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import floors  # noqa: E402
import report  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402
from loadgen import (  # noqa: E402
    Planned,
    Seen,
    coid_of,
    collect,
    dumps,
    growing,
    open_loop,
    percentiles,
    schedule,
)
from pipeline_stack import Stack, Usage, broker  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from jax_exec.kafka_local import pinned_version  # noqa: E402
from tests.integration.harness import approval_for  # noqa: E402
from tests.integration.order_path import reference_prices, signal_at  # noqa: E402

OUTPUT_TOPICS = ("signal-ledger", "order-intents", "orders", "fills", "rejections", "alerts")
AUDIT_POLL_S = 0.25
DRAIN_MAX_S = 45.0  # at most this long a step waits for the earlier steps' approvals
console = Console()


@dataclass
class Run:
    stack: Stack
    producer: AIOKafkaProducer
    seen: Seen
    progress: Progress
    symbols: list[str]
    prices: dict[str, Any]
    settle_max: float = 60.0  # seconds a step waits for its outcomes after the last send
    visible: dict[str, float] = field(default_factory=dict)  # event id -> first seen in CH
    sent: list[str] = field(default_factory=list)  # every approval sent so far (client ids)
    search_until: float = math.inf  # monotonic time after which no search step starts
    latencies: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def build(run: Run, count: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for i in range(count):
        sym = run.symbols[i % len(run.symbols)]
        approval = approval_for(signal_at(sym, run.prices[sym]))
        out.append((coid_of(approval["signal"]["id"]), approval))
    return out


async def publish_signals(run: Run, batch: list[tuple[str, dict[str, Any]]]) -> None:
    """Signals first (the pipeline refuses an approval of a signal it never saw), and wait
    until each is in the signal ledger, so the timed part measures approvals only."""
    topic = f"{run.stack.prefix}signals"
    futs = [await run.producer.send(topic, dumps(a["signal"]), key=_key(a)) for _, a in batch]
    await asyncio.gather(*futs)
    deadline = time.monotonic() + 60 + len(batch) / 20
    while any(c not in run.seen.ledger for c, _ in batch):
        if time.monotonic() > deadline:
            missing = sum(c not in run.seen.ledger for c, _ in batch)
            console.print(f"[yellow]{missing} signals not in the ledger; going on")
            return
        await asyncio.sleep(0.1)


def _key(approval: dict[str, Any]) -> bytes:
    return str(uuid.UUID(approval["signal"]["id"])).encode()


async def poll_audit(run: Run, since: datetime, stop: asyncio.Event) -> None:
    """When each orders/fills record becomes visible in ClickHouse (the audit worker's /sql)."""
    if run.stack.audit is None:
        return
    query = ("SELECT toString(event_id) AS id FROM events WHERE topic IN ('orders', 'fills') "
             f"AND ingested_at >= toDateTime64('{since:%Y-%m-%d %H:%M:%S}', 6, 'UTC')")
    while not stop.is_set():
        try:
            rows = await asyncio.to_thread(run.stack.audit.sql, query)
        except OSError as exc:
            console.print(f"[yellow]audit /sql: {exc}")
            rows = []
        now = time.time()
        for row in rows:
            run.visible.setdefault(row["id"], now)
        await asyncio.sleep(AUDIT_POLL_S)


def _outcomes(run: Run, coids: list[str]) -> tuple[int, int, int]:
    s = run.seen
    acked = sum(c in s.ack for c in coids)
    rejected = sum(c in s.rejected and c not in s.ack for c in coids)
    filled = sum(c in s.fill for c in coids)
    return acked, rejected, filled


async def run_step(run: Run, rate: float, duration: float, label: str) -> dict[str, Any]:
    count = max(2, round(rate * duration))
    batch = build(run, count)
    coids = [c for c, _ in batch]
    task = run.progress.add_task(f"{label} {rate:g}/s: signals", total=count)
    backlog = await drain(run, task, label, rate)
    await publish_signals(run, batch)
    usage = Usage(run.stack.pids())
    usage.begin()
    messages_before = run.stack.ib_messages()
    timings_before = run.stack.timings()
    offsets = schedule(rate, count)
    plan = [Planned(at, _key(a), dumps(a)) for at, (_, a) in zip(offsets, batch, strict=True)]
    t0 = time.time() + 0.3
    run.progress.update(task, description=f"{label} {rate:g}/s: sending")
    sender = asyncio.create_task(open_loop(run.producer, f"{run.stack.prefix}approvals", plan,
                                           t0))
    run.sent += coids
    # The outcomes are waited for after the last send. Counted from the first send, the wait
    # ended before a step of settle_max or more did, and the approvals still in flight at its
    # end counted as lost (9 of 3,500 in a 70 s step at 50/s).
    settle = min(20 + count / 2, run.settle_max)
    deadline: float | None = None  # set when the sender is done
    while deadline is None or time.monotonic() < deadline:
        usage.sample()
        acked, rejected, filled = _outcomes(run, coids)
        run.progress.update(task, completed=acked + rejected, description=(
            f"{label} {rate:g}/s: acked {acked}, filled {filled}, refused {rejected}"))
        if sender.done():
            if acked + rejected == count and filled >= acked:
                break
            if deadline is None:
                deadline = time.monotonic() + settle
        await asyncio.sleep(0.2)
    late = await sender
    used = usage.end()
    used["ib_messages"] = _per_approval(messages_before, run.stack.ib_messages(), count)
    used["mean_ms"] = _mean_ms(timings_before, run.stack.timings())
    run.progress.update(task, completed=count)
    result = summarize(run, rate, duration, batch, offsets, t0, late, used)
    result["backlog_at_start"] = backlog
    return result


async def drain(run: Run, task: Any, label: str, rate: float) -> int:
    """Wait (up to settle_max) until every approval of the earlier steps has its outcome, so
    a step starts on an idle pipeline and measures its own rate, not an earlier step's queue;
    the approvals still without one when it starts (0 unless the wait ran out)."""
    deadline = time.monotonic() + min(run.settle_max, DRAIN_MAX_S)
    while True:
        s = run.seen
        left = sum(c not in s.ack and c not in s.rejected for c in run.sent)
        if not left or time.monotonic() > deadline:
            return left
        run.progress.update(task, description=f"{label} {rate:g}/s: waiting for {left} "
                                              "earlier approvals")
        await asyncio.sleep(0.5)


def _per_approval(before: dict[str, int], after: dict[str, int], count: int
                  ) -> dict[str, float]:
    """TWS API messages the trading worker sent during a step, per approval, by request (the
    background ones, reconciliation's polls, included), and their total."""
    out = {k: round((after[k] - before.get(k, 0)) / count, 2) for k in sorted(after)
           if after[k] > before.get(k, 0)}
    out["total"] = round(sum(out.values()), 2)
    return out


def _mean_ms(before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]]
             ) -> dict[str, dict[str, float]]:
    """Mean milliseconds and count over the step of each timed series of the trading worker:
    a stage's handler, its input's wait plus handler (end_to_end), each venue call."""
    out = {}
    for key in sorted(after):
        total, count = after[key]
        total0, count0 = before.get(key, (0.0, 0))
        if count > count0:
            out[key] = {"mean_ms": round(1000 * (total - total0) / (count - count0), 2),
                        "n": count - count0}
    return out


def summarize(run: Run, rate: float, duration: float, batch: list[tuple[str, Any]],
              offsets: list[float], t0: float, late: float,
              used: dict[str, Any]) -> dict[str, Any]:
    s = run.seen
    sched = {c: t0 + at for (c, _), at in zip(batch, offsets, strict=True)}
    coids = [c for c, _ in batch]
    ack = [s.ack[c] - sched[c] for c in coids if c in s.ack]
    fill = [s.fill[c] - sched[c] for c in coids if c in s.fill]
    ack_venue = [s.ack_venue[c] - sched[c] for c in coids if c in s.ack_venue]
    # Where the time goes: approval -> intent (sizing's answer), intent -> acknowledgement
    # (submission and the venue), as the benchmark's consumer sees each.
    to_intent = [s.intent[c] - sched[c] for c in coids if c in s.intent]
    intent_to_ack = [s.ack[c] - s.intent[c] for c in coids if c in s.ack and c in s.intent]
    acked, rejected, _ = _outcomes(run, coids)
    reasons: dict[str, int] = {}
    for c in coids:
        if c in s.rejected and c not in s.ack:
            reasons[s.rejected[c]] = reasons.get(s.rejected[c], 0) + 1
    run.latencies[f"{rate:g}"] = {"ack": ack, "fill": fill}
    grow = growing(ack)
    return {"rate": rate, "duration_s": duration, "approvals": len(coids), "acked": acked,
            "rejected": reasons, "lost": len(coids) - acked - rejected, "growing": grow,
            "sustained": acked == len(coids) and not grow,
            "sender_max_late_ms": round(late * 1000, 2), "ack": percentiles(ack),
            "ack_venue_time": percentiles(ack_venue), "fill": percentiles(fill),
            "to_intent": percentiles(to_intent), "intent_to_ack": percentiles(intent_to_ack),
            "usage": used}


async def search(run: Run, fixed: list[dict[str, Any]], steps: int,
                 duration: float) -> list[dict[str, Any]]:
    """Bisect (geometrically) between the highest sustained and the lowest failing rate."""
    ok = [r["rate"] for r in fixed if r["sustained"]]
    bad = [r["rate"] for r in fixed if not r["sustained"]]
    lo, hi = (max(ok) if ok else 1.0), (min(bad) if bad else None)
    found: list[dict[str, Any]] = []
    for _ in range(steps):
        if hi is None or hi / lo < 1.25 or time.monotonic() > run.search_until:
            break
        mid = float(round(math.sqrt(lo * hi)))
        if mid in (lo, hi):
            break  # nothing left between them at whole rates
        result = await run_step(run, mid, duration, "search")
        found.append(result)
        lo, hi = (mid, hi) if result["sustained"] else (lo, mid)
    return found


async def kafka_floor(run: Run, rates: list[tuple[float, float]]) -> dict[str, Any]:
    bootstrap, prefix = run.stack.bootstrap, run.stack.prefix
    await floors.create_topics(bootstrap, prefix)
    sizes = run.seen.sizes
    relay = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited on)
        [sys.executable, str(ROOT / "bench" / "floors.py"), "relay", bootstrap, prefix,
         str(sizes.get("signal-ledger", 3000)), str(sizes.get("order-intents", 2000)),
         str(sizes.get("orders", 800))], stdout=subprocess.PIPE, cwd=ROOT)
    assert relay.stdout is not None
    relay.stdout.readline()  # "ready"
    seen: dict[str, float] = {}
    out: dict[str, Any] = {}
    try:
        consumer_task = asyncio.create_task(_floor_consumer(bootstrap, prefix, seen))
        await asyncio.sleep(2.0)  # the relay's group assignment
        approval_bytes = sizes.get("approvals", 1500)
        for rate, duration in rates:
            count = max(2, round(rate * duration))
            ids = [uuid.uuid4().hex for _ in range(count)]
            offsets = schedule(rate, count)
            plan = [Planned(at, i.encode(), floors.padded(i, approval_bytes))
                    for at, i in zip(offsets, ids, strict=True)]
            t0 = time.time() + 0.2
            task = run.progress.add_task(f"floor aiokafka chain {rate:g}/s", total=count)
            await open_loop(run.producer, f"{prefix}floor-in", plan, t0)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(i not in seen for i in ids):
                run.progress.update(task, completed=sum(i in seen for i in ids))
                await asyncio.sleep(0.1)
            run.progress.update(task, completed=count)
            out[f"{rate:g}"] = percentiles([seen[i] - (t0 + at)
                                            for i, at in zip(ids, offsets, strict=True)
                                            if i in seen])
        consumer_task.cancel()
    finally:
        relay.terminate()
        relay.wait(10)
    return out


async def _floor_consumer(bootstrap: str, prefix: str, seen: dict[str, float]) -> None:
    import json

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(f"{prefix}floor-out", bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", fetch_max_wait_ms=5,
                                group_id=f"{prefix}floor-reader")
    await consumer.start()
    try:
        async for msg in consumer:
            seen.setdefault(json.loads(msg.value or b"{}")["id"], time.time())
    finally:
        await consumer.stop()


def ratios(rates: list[dict[str, Any]], fl: dict[str, Any]) -> None:
    ib = fl["ib_bracket"]
    for r in rates:
        kafka = fl["kafka"].get(f"{r['rate']:g}") or next(iter(fl["kafka"].values()), None)
        floor = {q: (kafka[q] + ib[q]) if kafka and kafka[q] is not None and ib[q] is not None
                 else None for q in ("p50", "p99")}
        r["floor"] = floor
        r["ratio"] = {q: (round(r["ack"][q] / floor[q], 2)
                          if r["ack"][q] is not None and floor[q] else None)
                      for q in ("p50", "p99")}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", help="use this running broker (default: start one)")
    p.add_argument("--rates", default="10,100,500", help="offered approvals/s")
    p.add_argument("--durations", default="30,1,0.4", help="seconds of load per rate")
    p.add_argument("--search-steps", type=int, default=3)
    p.add_argument("--search-duration", type=float, default=8.0)
    p.add_argument("--search-budget", type=float, default=300.0,
                   help="seconds after the start of the timed steps when no search step starts "
                        "(keeps `make bench` near 12 minutes on a slow machine)")
    p.add_argument("--settle-max", type=float, default=60.0,
                   help="seconds a step waits for its outcomes; later ones count as lost")
    p.add_argument("--warmup-rate", type=float, default=5.0)
    p.add_argument("--ib-samples", type=int, default=30)
    p.add_argument("--profile-rate", type=float,
                   help="sample the trading worker's stacks during the step at this rate "
                        "(writes profile-<rate>.txt, collapsed stacks)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--no-audit", action="store_true",
                   help="no audit worker (no audit lag): the trading path only")
    p.add_argument("--venue", choices=("ib", "sim"), default="ib",
                   help="ib: the IB adapter over the simulator's TWS door (the measured path); "
                        "sim: the simulator inside the trading worker, no wire and no IB "
                        "pacing (what the pipeline itself sustains)")
    p.add_argument("--log-level", default="warning", help="the workers' LOG_LEVEL")
    p.add_argument("--keep", action="store_true",
                   help="keep the run's home (worker and simulator logs) and print where")
    p.add_argument("--smoke", action="store_true",
                   help="seconds of load: 5/s for 2 s, no search, few floor samples")
    args = p.parse_args()
    if args.smoke:
        args.rates, args.durations, args.search_steps, args.ib_samples = "5", "2", 0, 3
        args.warmup_rate = 0.0
    return args


async def measure(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    rates = [float(r) for r in args.rates.split(",")]
    durations = [float(d) for d in args.durations.split(",")]
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    prices = reference_prices()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    run = Run(stack, producer, Seen(), progress, sorted(prices), prices,
              settle_max=args.settle_max)
    stop, ready = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(collect(stack.bootstrap, stack.prefix, OUTPUT_TOPICS,
                                         run.seen, stop, ready)),
             asyncio.create_task(poll_audit(run, datetime.now(UTC), stop))]
    await ready.wait()
    try:
        with progress:
            # Untimed: one approval per symbol first (the adapter qualifies each contract
            # once per session), so the timed steps measure the warm path.
            warm = (await run_step(run, args.warmup_rate, len(run.symbols) / args.warmup_rate,
                                   "warm-up")) if args.warmup_rate > 0 else {}
            run.latencies.clear()
            run.search_until = time.monotonic() + args.search_budget
            fixed = []
            for rate, duration in zip(rates, durations, strict=True):
                profiler = _profile(args, stack, rate)
                fixed.append(await run_step(run, rate, duration, "pipeline"))
                _profile_done(args, stack, profiler, rate)
            searched = await search(run, fixed, args.search_steps, args.search_duration)
            await asyncio.sleep(3 * AUDIT_POLL_S + 2.0)  # the last audit batch
            run.seen.sizes.setdefault("approvals", len(dumps(build(run, 1)[0][1])))
            kafka = await kafka_floor(run, [(r, min(d, 5.0)) for r, d in
                                            zip(rates, durations, strict=True)])
            assert stack.sim is not None
            single = await floors.ib_round_trips(stack.sim.port, args.ib_samples, False)
            bracket = await floors.ib_round_trips(stack.sim.port, args.ib_samples, True)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
    fl = {"kafka": kafka, "ib_single": percentiles(single), "ib_bracket": percentiles(bracket)}
    ratios(fixed + searched, fl)
    lag = [run.visible[e] - t for e, t in run.seen.produced.items() if e in run.visible]
    everything = fixed + searched
    sustained = max([r["rate"] for r in everything if r["sustained"]], default=0.0)
    return {"warmup": {k: warm[k] for k in ("rate", "approvals", "acked", "ack") if k in warm},
            "rates": fixed, "search": searched, "sustained_rate": sustained,
            "alerts": dict(run.seen.alerts), "audit_lag": percentiles(lag),
            "audit_poll_s": AUDIT_POLL_S, "floors": fl,
            "record_bytes": run.seen.sizes, "_latencies": run.latencies}


def _profile(args: argparse.Namespace, stack: Stack, rate: float) -> Path | None:
    """Sample the trading worker's stacks during this step (bench/probe/sitecustomize.py)."""
    if args.profile_rate != rate:
        return None
    flag = stack.profile_file.with_name(stack.profile_file.name + ".on")
    flag.touch()
    return flag


def _profile_done(args: argparse.Namespace, stack: Stack, flag: Path | None,
                  rate: float) -> None:
    if flag is None:
        return
    flag.unlink()
    time.sleep(0.5)  # the sampler writes its counts once it sees the flag gone
    args.out.mkdir(parents=True, exist_ok=True)
    if stack.profile_file.exists():
        shutil.copy(stack.profile_file, args.out / f"profile-{rate:g}.txt")


def main() -> int:
    args = parse()
    started = time.monotonic()
    described = report.machine()
    home = Path(tempfile.mkdtemp(prefix="jax-bench-"))
    argv = sys.argv[1:]
    given = [a for i, a in enumerate(argv)
             if not a.startswith("--out") and not (i and argv[i - 1] == "--out")]
    command = "make bench" if not given else f"bench/bench_pipeline.py {' '.join(given)}"
    bootstrap, kafka = broker(home, args.bootstrap, console.print)
    stack = Stack(home, bootstrap, f"b{uuid.uuid4().hex[:8]}-", with_audit=not args.no_audit,
                  extra_env={"LOG_LEVEL": args.log_level}, venue=args.venue)
    try:
        console.print("starting the simulator, the trading worker and the audit worker ...")
        stack.start()
        result = asyncio.run(measure(args, stack))
    finally:
        stack.stop()
        if kafka is not None:
            kafka.stop()
    latencies = result.pop("_latencies")
    result = {"machine": described, "kafka_version": pinned_version(), "venue": args.venue,
              "command": command, "finished_at": datetime.now(UTC).isoformat(),
              "wall_seconds": round(time.monotonic() - started, 1), **result}
    report.write(result, latencies, args.out)
    console.print(report.markdown(result))
    console.print(f"wrote {args.out}/latest.json, latest.md, latest.png")
    if args.keep:
        console.print(f"kept {home} (worker and simulator logs)")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
