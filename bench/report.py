"""The pipeline benchmark's artifacts: latest.json, latest.md (the README's table) and
latest.png (latency distribution per rate)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpu": model, "cores": os.cpu_count(), "ram_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "os": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _per(seconds: float | None, count: int) -> str:
    return "-" if seconds is None or not count else f"{1000 * seconds / count:.1f}"


def _where(step: dict[str, Any]) -> list[str]:
    timed = step["usage"].get("mean_ms", {})
    out = []
    for stage in ("sizing", "submission"):
        handler = timed.get(f"handler:{stage}", {}).get("mean_ms")
        total = timed.get(f"end_to_end:{stage}", {}).get("mean_ms")
        if handler is not None and total is not None:
            out.append(f"{stage} handler {handler:.1f} / queued+handler {total:.1f}")
    place = timed.get("venue:place", {}).get("mean_ms")
    if place is not None:
        out.append(f"venue place {place:.1f}")
    full = timed.get("gc:2")
    if full is not None:
        out.append(f"full GC {full['n']}x {full['mean_ms']:.0f} ms")
    return out or ["not read"]


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Python "
        f"{m['python']}, Kafka {result['kafka_version']}; load average at start "
        f"{', '.join(map(str, m['load_average_at_start']))} (shared machine). "
        f"Command: `{result['command']}`.",
        "",
        "Venue: " + ("the IB adapter (ib_async) over the simulator's TWS door, a process of "
                     "its own." if result.get("venue", "ib") == "ib" else
                     "the simulator inside the trading worker (`VENUE=sim`: no wire, no IB "
                     "pacing), to show what the pipeline itself sustains."),
        "",
        "Approval published -> venue acknowledgement (`orders`, entry leg, status accepted, as "
        "the benchmark's consumer sees it), and -> entry fill (`fills`), in ms from each "
        "approval's scheduled send time; floor = bare aiokafka chain (same hops and sizes) + "
        "bare ib_async bracket round trip.",
        "",
        "| offered /s | approvals | acked | ack p50 | p95 | p99 | max | floor p50 / p99 | "
        "ratio p50 / p99 | fill p50 | fill p99 | growing | trading worker CPU, RSS | "
        "worker CPU ms / approval | TWS messages / approval |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rates"]:
        a, f, fl = r["ack"], r["fill"], r.get("floor") or {}
        use = r["usage"].get("trading worker", {})
        lines.append(
            f"| {r['rate']:g} | {r['approvals']} | {r['acked']} | {_ms(a['p50'])} | "
            f"{_ms(a['p95'])} | {_ms(a['p99'])} | {_ms(a['max'])} | "
            f"{_ms(fl.get('p50'))} / {_ms(fl.get('p99'))} | "
            f"{_ratio(r['ratio']['p50'])} / {_ratio(r['ratio']['p99'])} | "
            f"{_ms(f['p50'])} | {_ms(f['p99'])} | {'yes' if r['growing'] else 'no'} | "
            f"{use.get('cpu_pct', '-')}%, {use.get('rss_mib', '-')} MiB | "
            f"{_per(use.get('cpu_s'), r['approvals'])} | "
            f"{r['usage'].get('ib_messages', {}).get('total', '-')} |")
    lag, fl = result["audit_lag"], result["floors"]
    searched = ", ".join(f"{s['rate']:g}/s {'ok' if s['sustained'] else 'not sustained'}"
                         for s in result["search"])
    backlog = {f"{r['rate']:g}/s": r.get("backlog_at_start", 0)
               for r in result["rates"] + result["search"] if r.get("backlog_at_start")}
    lines += [
        "",
        "- Each step starts once the earlier steps' approvals all have an outcome (up to the "
        "settle limit); approvals of earlier steps still pending at a step's start: "
        + (", ".join(f"{k} {v}" for k, v in backlog.items()) or "none") + ".",
        f"- Alerts raised during the run: {result.get('alerts') or 'none'} (the IB floor's "
        "bare orders come after the steps and are external to the pipeline).",
        f"- Highest sustained approval rate (every approval acknowledged, latency not "
        f"growing): **{result['sustained_rate']:g}/s** (steps: {searched}).",
        f"- Audit lag (record produced -> row visible through the audit worker's /sql, polled "
        f"every {result['audit_poll_s']} s): p50 {_ms(lag['p50'])} ms, p99 {_ms(lag['p99'])} ms "
        f"({lag['n']} events).",
        f"- Floors: ib_async placeOrder -> Submitted, single order p50 "
        f"{_ms(fl['ib_single']['p50'])} ms (p99 {_ms(fl['ib_single']['p99'])}), bracket p50 "
        f"{_ms(fl['ib_bracket']['p50'])} ms (p99 {_ms(fl['ib_bracket']['p99'])}); aiokafka "
        "chain per rate: " + ", ".join(
            f"{k}/s p50 {_ms(v['p50'])} p99 {_ms(v['p99'])}" for k, v in fl["kafka"].items())
        + " ms.",
        "- Where the time goes (mean ms per input in the trading worker, from its "
        "/metrics: `handler` = the stage's work, venue calls included; `queued+handler` = "
        "from the input's Kafka timestamp to its outputs being ready; `full GC` = the "
        "garbage collector's full collections in the step and their mean pause): " + "; ".join(
            f"{r['rate']:g}/s " + ", ".join(_where(r)) for r in result["rates"]) + ".",
        "- IB pacing: ib_async sends at most 45 messages/s per connection and a bracket is 3 "
        "placeOrder messages, so one IB session places at most ~15 brackets/s whatever the "
        "pipeline does; the venue reads share that budget (sizing's snapshot and "
        "reconciliation's poll, each at most every 0.5 s, and a market-data read per "
        "instrument look-up), so fewer: `TWS messages / approval` is what the trading worker "
        "sent during the step (background reads included) per approval. Above the budget the "
        "messages queue and the latency grows with the step, whatever the CPU.",
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], latencies: dict[str, dict[str, list[float]]],
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, kind, title in ((axes[0], "ack", "approval -> venue acknowledgement"),
                            (axes[1], "fill", "approval -> entry fill")):
        for rate, series in latencies.items():
            values = sorted(v * 1000 for v in series.get(kind, []))
            if values:
                ys = [(i + 1) / len(values) for i in range(len(values))]
                ax.step(values, ys, where="post", label=f"{rate}/s (n={len(values)})")
        ib = result["floors"]["ib_bracket"]["p50"]
        first: dict[str, Any] = next(iter(result["floors"]["kafka"].values()), {})
        kafka = first.get("p50")
        if ib is not None and kafka is not None:
            ax.axvline(ib + kafka, color="grey", linestyle="--", label="floor p50")
        ax.set_xscale("log")
        ax.set_xlabel("ms from the scheduled send time (log)")
        ax.set_ylabel("fraction of approvals")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Jax Execution: open-loop load at fixed offered rates")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict[str, Any], latencies: dict[str, dict[str, list[float]]],
          out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(result))
    # each approval's latencies in seconds, in send order, per rate: when in a step it waited
    (out / "latencies.json").write_text(json.dumps(latencies) + "\n")
    plot(result, latencies, out / "latest.png")
