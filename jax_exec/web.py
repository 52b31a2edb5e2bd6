"""A small read-only HTTP surface on the worker that owns ClickHouse (embedded chdb can only
be opened by one process, so the CLI asks that process)."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
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


def add_pages(app: faust.App, clickhouse: Any) -> None:
    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/sql")
    async def sql(web: Any, request: Any) -> Any:
        try:
            query = check_read_only(request.query.get("q", ""))
            rows = await clickhouse.query(query)
        except Exception as exc:
            return web.json({"error": str(exc)}, status=400)
        columns = list(rows[0].keys()) if rows else []
        return web.json({"columns": columns,
                         "rows": [[_plain(r[c]) for c in columns] for r in rows]})


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def query_rows(settings: Settings, query: str, web_port: int) -> tuple[list[str], list[list[Any]]]:
    """Through the worker when ClickHouse is embedded; directly against a server otherwise."""
    query = check_read_only(query)
    if settings.clickhouse_dsn.startswith("chdb://"):
        url = f"http://127.0.0.1:{web_port}/sql?{urllib.parse.urlencode({'q': query})}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        except OSError as exc:
            raise RuntimeError(f"no worker serving SQL on 127.0.0.1:{web_port} ({exc}); "
                               "start it with `jax-exec run` or `jax-exec worker`") from exc
        if "error" in body:
            raise RuntimeError(body["error"])
        return body["columns"], body["rows"]
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=settings.clickhouse_dsn)
    result = client.query(query, settings={"readonly": 1})
    return list(result.column_names), [list(r) for r in result.result_rows]
