"""`jax-exec status`: every component of a running stack on one screen, from the health and
readiness endpoints each one serves (worker /health, API /ready, simulator admin /health,
every process's METRICS_PORT /health), plus whether Kafka answers.

Targets: JAX_STATUS_TARGETS="name=url,name=url" (compose sets it to the service names) or the
local defaults of `jax-exec run`."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

LOCAL_TARGETS = ("worker=http://127.0.0.1:6066/health,api=http://127.0.0.1:8080/ready,"
                 "simulator=http://127.0.0.1:7498/health")
TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Status:
    name: str
    url: str
    ok: bool
    detail: str


def targets(text: str | None = None) -> list[tuple[str, str]]:
    text = text if text is not None else os.environ.get("JAX_STATUS_TARGETS", LOCAL_TARGETS)
    out = []
    for item in text.split(","):
        name, sep, url = item.strip().partition("=")
        if sep and url:
            out.append((name.strip(), url.strip()))
    return out


def probe(name: str, url: str, timeout: float = TIMEOUT_SECONDS) -> Status:
    """One GET: 2xx is up; the JSON answer summarised (failing checks first)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (operator's URL)
            return Status(name, url, True, summarise(_json(resp.read())))
    except urllib.error.HTTPError as exc:
        return Status(name, url, False, f"HTTP {exc.code}: {summarise(_json(exc.read()))}")
    except (OSError, ValueError) as exc:
        return Status(name, url, False, f"unreachable: {exc}")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"body": raw[:200].decode(errors="replace")}


def summarise(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)[:200]
    checks = body.get("checks")
    if isinstance(checks, dict):
        failing = [k for k, v in checks.items() if isinstance(v, dict) and not v.get("ok", True)]
        parts = [f"failing: {', '.join(failing)}"] if failing else ["all checks ok"]
        return "; ".join([*parts, *(f"{k}" for k in sorted(checks) if k not in failing)])[:200]
    keep = {k: v for k, v in body.items() if not isinstance(v, dict | list)}
    nested = {k: v for k, v in body.items() if isinstance(v, dict)}
    text = ", ".join(f"{k}={v}" for k, v in keep.items())
    for key, value in nested.items():
        text += f"; {key}: " + ", ".join(f"{k}={v}" for k, v in list(value.items())[:4])
    return text[:200]


def collect(items: list[tuple[str, str]], kafka: Callable[[], Status] | None = None
            ) -> list[Status]:
    rows = [probe(name, url) for name, url in items]
    if kafka is not None:
        rows.insert(0, kafka())
    return rows


def kafka_status(bootstrap: str) -> Status:
    from jax_exec.kafka_local import _answers_metadata

    ok = _answers_metadata(bootstrap)
    return Status("kafka", bootstrap, ok, "answers metadata" if ok else "no answer")


def show(rows: list[Status], console: Console) -> bool:
    table = Table("component", "state", "endpoint", "detail")
    for r in rows:
        table.add_row(r.name, "[green]up[/green]" if r.ok else "[red]DOWN[/red]", r.url, r.detail)
    console.print(table)
    return all(r.ok for r in rows)


def register(app: typer.Typer) -> None:
    """Add `status` to the `jax-exec` app."""

    @app.command()
    def status(target: Annotated[list[str] | None, typer.Option(
            help="name=url to probe (repeatable); default JAX_STATUS_TARGETS or the local "
                 "ports of `jax-exec run`")] = None) -> None:
        """Every component of the running stack on one screen (exit 1 when any is down)."""
        from jax_exec.settings import Settings

        settings = Settings()
        items = targets(",".join(target)) if target else targets()
        rows = collect(items, lambda: kafka_status(settings.kafka_bootstrap))
        if not show(rows, Console()):
            raise typer.Exit(1)


if __name__ == "__main__":
    standalone = typer.Typer(add_completion=False)
    register(standalone)
    standalone()
