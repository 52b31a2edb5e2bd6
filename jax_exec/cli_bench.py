"""`jax-exec bench`: the approval-to-order benchmark (bench/bench_pipeline.py) as a command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "bench_pipeline.py"


def bench(
    bootstrap: Annotated[str | None, typer.Option(
        help="Use this running broker (default: start one of the benchmark's own)")] = None,
    rates: Annotated[str, typer.Option(help="Offered approvals/s, comma-separated")
                     ] = "10,100,500",
    durations: Annotated[str, typer.Option(help="Seconds of load per rate")] = "10,1,0.4",
    smoke: Annotated[bool, typer.Option(help="Seconds of load only (the smoke test)")] = False,
    out: Annotated[Path | None, typer.Option(help="Where latest.json/.md/.png go")] = None,
) -> None:
    """Approval -> venue acknowledgement and fill latency, sustained rate, audit lag and the
    floor, at fixed offered rates (open loop); writes bench/results/latest.{json,md,png}."""
    if not SCRIPT.exists():
        typer.echo(f"{SCRIPT} is missing: `jax-exec bench` runs from a source checkout")
        raise typer.Exit(2)
    args = [sys.executable, str(SCRIPT), "--rates", rates, "--durations", durations]
    if bootstrap:
        args += ["--bootstrap", bootstrap]
    if smoke:
        args.append("--smoke")
    if out is not None:
        args += ["--out", str(out)]
    raise typer.Exit(subprocess.call(args, cwd=ROOT))  # noqa: S603 (our own script)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
