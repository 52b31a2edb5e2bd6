"""A small read-only HTTP surface on the worker that owns ClickHouse (embedded chdb can only
be opened by one process, so the CLI asks that process)."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
import uuid
from typing import Any

import faust

from jax_exec.settings import Settings

READ_ONLY = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN)\b", re.IGNORECASE)


class QueryRefused(ValueError):
    """Only reads go through this surface."""


def check_read_only(query: str) -> str:
    if not READ_ONLY.match(query) or ";" in query.strip().rstrip(";"):
        raise QueryRefused("only one SELECT/WITH/SHOW/DESCRIBE/EXPLAIN statement is allowed")
    return query.strip().rstrip(";")


def add_pages(app: faust.App, writer: Any) -> None:
    """/health (with the audit sink's lag), /sql (read-only) and /trace/<correlation id>."""
    from store.queries import Queries

    clickhouse = writer.ch
    queries = Queries(clickhouse)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "audit": _stats(writer)})

    @app.page("/sql")
    async def sql(web: Any, request: Any) -> Any:
        try:
            query = check_read_only(request.query.get("q", ""))
            rows = await clickhouse.query(query)
        except Exception as exc:  # any failure is the caller's to read
            return web.json({"error": str(exc)}, status=400)
        columns = list(rows[0].keys()) if rows else []
        return web.json({"columns": columns,
                         "rows": [[_plain(r[c]) for c in columns] for r in rows]})

    @app.page("/trace/{correlation_id}")
    async def trace(web: Any, request: Any, correlation_id: str) -> Any:
        try:
            steps = await queries.trace(uuid.UUID(correlation_id))
        except ValueError as exc:
            return web.json({"error": f"not a correlation id: {exc}"}, status=400)
        return web.json({"steps": [json.loads(s.model_dump_json()) for s in steps]})


def _stats(writer: Any) -> dict[str, Any]:
    stats = writer.stats
    return {name: _plain(getattr(stats, name)) for name in (
        "buffered_rows", "oldest_buffered_seconds", "last_flush_seconds", "rows_written",
        "batches_written", "skipped_duplicates", "undecodable", "unstorable", "last_error")}


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def ask_worker(path: str, web_port: int) -> dict[str, Any]:
    """GET a JSON answer from the worker that owns embedded ClickHouse (loopback only)."""
    url = f"http://127.0.0.1:{web_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # a loopback URL, built here
            body: dict[str, Any] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
    except OSError as exc:
        raise RuntimeError(f"no worker serving on 127.0.0.1:{web_port} ({exc}); start it with "
                           "`jax-exec run` or `jax-exec worker`") from exc
    if "error" in body:
        raise RuntimeError(body["error"])
    return body


def embedded(settings: Settings) -> bool:
    return settings.clickhouse_dsn.startswith("chdb://")


def query_rows(settings: Settings, query: str, web_port: int) -> tuple[list[str], list[list[Any]]]:
    """Through the worker when ClickHouse is embedded; directly against a server otherwise."""
    query = check_read_only(query)
    if embedded(settings):
        body = ask_worker(f"/sql?{urllib.parse.urlencode({'q': query})}", web_port)
        return body["columns"], body["rows"]
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=settings.clickhouse_dsn)
    result = client.query(query, settings={"readonly": 1})
    return list(result.column_names), [list(r) for r in result.result_rows]


def fetch_trace(settings: Settings, correlation_id: str, web_port: int) -> list[dict[str, Any]]:
    """One signal's causal story: through the worker when embedded, else from the server."""
    if embedded(settings):
        path = f"/trace/{urllib.parse.quote(correlation_id)}"
        return list(ask_worker(path, web_port)["steps"])
    import asyncio

    from store.client import ClickHouse
    from store.queries import Queries

    async def read() -> list[dict[str, Any]]:
        async with ClickHouse(settings.clickhouse_dsn) as ch:
            steps = await Queries(ch).trace(uuid.UUID(correlation_id))
        return [json.loads(s.model_dump_json()) for s in steps]

    return asyncio.run(read())
