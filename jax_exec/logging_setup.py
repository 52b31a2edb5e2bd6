"""Log lines as JSON (LOG_FORMAT=json, the default in containers) or text, each carrying the
correlation id of the signal it concerns, so one signal can be followed across processes.

The id lives in a contextvar: `with correlation(cid):` around the work on one message (the
stage hook in agents/metrics.py does it), and every log record made inside carries it."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime

CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "jax_correlation_id", default=None)


@contextlib.contextmanager
def correlation(correlation_id: str | None) -> Iterator[None]:
    token = CORRELATION_ID.set(correlation_id)
    try:
        yield
    finally:
        CORRELATION_ID.reset(token)


class CorrelationFilter(logging.Filter):
    """Stamps each record with the current correlation id (None outside a message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = CORRELATION_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC), level, logger, message, correlation_id, component."""

    def __init__(self, component: str = "") -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None) or CORRELATION_ID.get(),
            "component": self.component or None,
            "pid": record.process,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"


def configure(component: str = "", level: str | int | None = None,
              fmt: str | None = None) -> None:
    """Install the root handler once at the entry point: LOG_FORMAT=json|text (default text),
    LOG_LEVEL (default warning)."""
    fmt = (fmt or os.environ.get("LOG_FORMAT", "text")).strip().lower()
    level = level or os.environ.get("LOG_LEVEL", "warning").upper()
    handler = logging.StreamHandler()
    handler.addFilter(CorrelationFilter())
    handler.setFormatter(JsonFormatter(component) if fmt == "json"
                         else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def reinstall() -> None:
    """Put this module's handler back after a library (faust's worker) replaced the root's."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if any(isinstance(f, CorrelationFilter) for f in h.filters)]
    if ours or _INSTALLED is None:
        return
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_INSTALLED)


_INSTALLED: logging.Handler | None = None
LONG_RUNNING = frozenset({"worker", "sim", "api", "run"})


def component_of(argv: list[str]) -> str:
    """`worker --stage a --stage b` -> "worker:a+b"; the command name otherwise."""
    if not argv:
        return "jax-exec"
    stages = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--stage"]
    stages += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--stage=")]
    return f"{argv[0]}:{'+'.join(stages)}" if stages else argv[0]


def setup_process(argv: list[str]) -> None:
    """The entry point's one call: logs configured; for a long-running command, /metrics and
    /health on METRICS_PORT when set (a one-shot command never binds it)."""
    global _INSTALLED
    component = component_of(argv)
    configure(component)
    _INSTALLED = logging.getLogger().handlers[0]
    if argv and argv[0] in LONG_RUNNING:
        from agents.metrics import serve_from_env

        serve_from_env(component)
