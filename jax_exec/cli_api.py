"""`jax-exec api`, `jax-exec users add|list|revoke`, and the read commands over the API
(`signals | orders | fills | positions | trades | pnl`): tables by default, `--json` for
scripts. Reads go through the API (API_HOST:API_PORT, token JAX_API_TOKEN or --token), so the
CLI and the API answer from the same services whether ClickHouse is embedded or a server."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from api.settings import ApiSettings
from api.users import Role, UserError, UserStore
from jax_exec.settings import Settings

console = Console()
users_app = typer.Typer(no_args_is_help=True, help="API users: bearer tokens with a role.")

Json = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts)")]
Token = Annotated[str | None, typer.Option(
    "--token", envvar="JAX_API_TOKEN", help="Bearer token (default: $JAX_API_TOKEN)")]
Limit = Annotated[int, typer.Option(help="Rows per page")]
SymbolOpt = Annotated[str | None, typer.Option("--symbol")]
StrategyOpt = Annotated[str | None, typer.Option("--strategy")]

COLUMNS = {
    "signals": ("signal_id", "symbol", "side", "entry_price", "stop_loss", "take_profit",
                "strategy_id", "status", "signal_at", "decided_by", "size_now"),
    "orders": ("client_order_id", "symbol", "side", "order_type", "quantity", "limit_price",
               "status", "filled_quantity", "avg_fill_price", "leg", "created_at"),
    "fills": ("occurred_at", "client_order_id", "symbol", "side", "quantity", "price",
              "commission"),
    "positions": ("account_id", "symbol", "quantity", "avg_price", "venue_quantity",
                  "market_price", "unrealized_pnl"),
    "trades": ("id", "symbol", "direction", "quantity", "entry_price", "stop_loss",
               "take_profit", "risk_amount", "position_value", "rr_ratio", "status",
               "exit_price", "realized_pnl"),
    "pnl": ("key", "trades", "wins", "losses", "realized_pnl", "commission",
            "avg_r_multiple"),
}


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def api_get(path: str, token: str | None, params: dict[str, Any] | None = None) -> Any:
    """GET from the API; a problem answer becomes the error shown."""
    api = ApiSettings()
    host = "127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host  # noqa: S104
    if not token:
        _fail("no API token: set JAX_API_TOKEN or pass --token (`jax-exec users add NAME "
              "--role viewer` makes one)")
    clean = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        resp = httpx.get(f"http://{host}:{api.port}{path}", params=clean, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        _fail(f"no API on {host}:{api.port} ({exc}); start it with `jax-exec run` (embedded) "
              "or `jax-exec api`")
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        _fail(f"{resp.status_code}: {detail}")
    return resp.json()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        if "quantity" in value and "binding" in value:  # a pending signal's size now
            return f"{value['quantity'] or '-'} ({value['binding'] or value.get('message')})"
        return json.dumps(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def show(kind: str, rows: list[dict[str, Any]], as_json: bool, next_cursor: str | None = None
         ) -> None:
    if as_json:
        console.print_json(json.dumps(rows if next_cursor is None else
                                      {"items": rows, "next_cursor": next_cursor}))
        return
    table = Table(*COLUMNS[kind])
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in COLUMNS[kind]])
    console.print(table)
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}")


def register(app: typer.Typer) -> None:
    """Add `api`, `users` and the read commands to the `jax-exec` app."""
    app.add_typer(users_app, name="users")

    @app.command("api")
    def api_command() -> None:
        """The HTTP API alone (API_HOST:API_PORT, 127.0.0.1:8080). With embedded ClickHouse
        only the worker may open the store: `jax-exec run` serves the API itself; use this
        with CLICKHOUSE_URL=http://... (a server)."""
        from api.server import serve_standalone
        from jax_exec.runner import load_risk

        settings, api = Settings(), ApiSettings()
        console.print(f"API on http://{api.host}:{api.port}  (docs /docs, spec /openapi.json)")
        asyncio.run(serve_standalone(settings, api, load_risk()))

    @app.command()
    def signals(status: Annotated[str, typer.Option(
                    help="pending | approved | rejected | expired")] = "pending",
                symbol: SymbolOpt = None, strategy: StrategyOpt = None, limit: Limit = 100,
                cursor: Annotated[str | None, typer.Option()] = None,
                as_json: Json = False, token: Token = None) -> None:
        """Signals by status; pending ones with the size they would get now and the limit
        that binds."""
        page = api_get("/api/v1/signals", token, {"status": status, "symbol": symbol,
                                                  "strategy": strategy, "limit": limit,
                                                  "cursor": cursor})
        show("signals", page["items"], as_json, page["next_cursor"])

    @app.command()
    def orders(status: Annotated[str, typer.Option(help="open | closed | all")] = "all",
               symbol: SymbolOpt = None, strategy: StrategyOpt = None,
               since: Annotated[str | None, typer.Option(help="ISO time with offset")] = None,
               until: Annotated[str | None, typer.Option(help="ISO time with offset")] = None,
               limit: Limit = 100, cursor: Annotated[str | None, typer.Option()] = None,
               as_json: Json = False, token: Token = None) -> None:
        """Orders in their current state, newest first."""
        page = api_get("/api/v1/orders", token, {
            "status": status, "symbol": symbol, "strategy": strategy, "since": since,
            "until": until, "limit": limit, "cursor": cursor})
        show("orders", page["items"], as_json, page["next_cursor"])

    @app.command()
    def fills(symbol: SymbolOpt = None, strategy: StrategyOpt = None, limit: Limit = 100,
              cursor: Annotated[str | None, typer.Option()] = None, as_json: Json = False,
              token: Token = None) -> None:
        """Executions, newest first."""
        page = api_get("/api/v1/fills", token, {"symbol": symbol, "strategy": strategy,
                                                "limit": limit, "cursor": cursor})
        show("fills", page["items"], as_json, page["next_cursor"])

    @app.command()
    def positions(as_json: Json = False, token: Token = None) -> None:
        """Open positions with unrealized P&L at the venue's mark."""
        show("positions", api_get("/api/v1/positions", token), as_json)

    @app.command()
    def trades(trade_id: Annotated[str | None, typer.Argument(help="One trade")] = None,
               symbol: SymbolOpt = None, strategy: StrategyOpt = None,
               status: Annotated[str | None, typer.Option()] = None, limit: Limit = 100,
               cursor: Annotated[str | None, typer.Option()] = None, as_json: Json = False,
               token: Token = None) -> None:
        """Trade records (the seeds' fields), or one by id or signal id."""
        if trade_id:
            show("trades", [api_get(f"/api/v1/trades/{trade_id}", token)], as_json)
            return
        page = api_get("/api/v1/trades", token, {"symbol": symbol, "strategy": strategy,
                                                 "status": status, "limit": limit,
                                                 "cursor": cursor})
        show("trades", page["items"], as_json, page["next_cursor"])

    @app.command()
    def pnl(by: Annotated[str, typer.Option(help="day | strategy | symbol")] = "day",
            as_json: Json = False, token: Token = None) -> None:
        """Realized P&L of closed round trips by day, strategy or symbol."""
        show("pnl", api_get("/api/v1/pnl", token, {"by": by}), as_json)


@users_app.command("add")
def users_add(name: str, role: Annotated[Role, typer.Option(help="viewer | approver | admin")]
              = Role.VIEWER) -> None:
    """Add a user; prints its token ONCE (only its hash is kept). Approvers and admins also
    get an approval signing key under JAX_HOME/keys (restart the worker to accept it)."""
    from jax_exec.keys import KeyringError, ensure_approver_key

    settings = Settings()
    try:
        token = UserStore.under(settings.jax_home).add(name, role)
        key_id = ensure_approver_key(settings.jax_home, name, settings.approval_keyring) \
            if role.allows(Role.APPROVER) else None
    except (UserError, KeyringError) as exc:
        _fail(str(exc))
        return
    console.print(f"user {name} ({role.value}) added; signing key {key_id or '-'}")
    console.print("token (shown once, store it now):")
    print(token, flush=True)  # plain, for scripts: `jax-exec users add x | tail -1`


@users_app.command("list")
def users_list(as_json: Json = False) -> None:
    """Users and roles (never tokens)."""
    users = UserStore.under(Settings().jax_home).list()
    if as_json:
        console.print_json(json.dumps([{"name": u.name, "role": u.role.value, "created_at":
                                        u.created_at, "revoked": u.revoked} for u in users]))
        return
    table = Table("name", "role", "created (UTC)", "revoked")
    for u in users:
        table.add_row(u.name, u.role.value, u.created_at[:19], "yes" if u.revoked else "")
    console.print(table)


@users_app.command("revoke")
def users_revoke(name: str) -> None:
    """Revoke a user's tokens at once (its approval key stays; revoke it in the keyring)."""
    try:
        n = UserStore.under(Settings().jax_home).revoke(name)
    except UserError as exc:
        _fail(str(exc))
        return
    console.print(f"revoked {n} token(s) of {name}")
