"""The simulator's HTTP admin API: run-time control of a running simulator, JSON in and out.

Bound to 127.0.0.1 only (it has no authentication). Reliability tests drive a simulator in
another process through it. Money and prices travel as strings ("150.25"), times as ISO-8601
UTC, orders and fills as the port's OrderReport / FillReport JSON. `account` defaults to the
simulator's default account wherever it is optional.

Endpoints
    GET  /health                      {"status": "ok", "step", "in_outage", "tws_port", ...}
    GET  /state                       {"step", "time", "accounts": {id: {"account": snapshot,
                                       "positions": [...], "open_orders": [...]}},
                                       "prices": {symbol: {"price", "held", "volume"}} for the
                                       symbols with orders or positions, "faults": {...}}
    GET  /orders?account=&open=       {"account", "orders": [OrderReport...]} in placement
                                       order; open=1 keeps only working orders
    GET  /fills?account=&since=       {"fills": [FillReport...]} oldest first; every account
                                       when account is omitted; since is ISO-8601
    GET  /prices?symbols=AAPL,MSFT    {"step", "prices": {symbol: {"price", "held", "volume"}}}
                                       (every symbol when omitted)
    GET  /faults                      the fault settings plus "in_outage" and
                                       "stalled_requests" (requests swallowed while stalled)
    POST /faults {latency_ms?, drop_probability?, transient_error_rate?, rejected_symbols?,
                  enforce_tick?, seed?, stall?, commission_delay_ms?}
                                      change some fault knobs (others keep their values);
                                       rejected_symbols is a list or "A,B" and replaces the
                                       set; stall: true wedges the TWS door (requests read,
                                       nothing answered or pushed) until stall: false;
                                       commission_delay_ms: a new execution's commissionReport
                                       comes that long after its execDetails; answers the new
                                       settings
    GET  /placements                  {orderRef: {"attempts", "accepted", "refused",
                                       "codes": ["201", ...]}}: every placeOrder the TWS door
                                       received (in memory since start); modifications count
    POST /outage {"seconds": N}       the venue is unreachable for N seconds from now: TWS
                                       clients get error 1100 at once and 1102 when it ends,
                                       traffic is held in between; N = 0 ends an outage
                                       started here -> {"until": iso | null, "in_outage"}
    POST /price {"symbol", "price", "hold"?: true}
                                      print that price and match resting orders against it;
                                       held (the default) it stays through later steps
    POST /release {"symbol"}          let a held symbol follow its path again
    POST /advance {"steps"?: 1}       move every price path 1..10000 steps, matching after
                                       each -> {"step"}
    POST /end-of-day                  the close: DAY orders expire, realized P&L of the day
                                       restarts -> {"expired": [client order ids]}
    POST /accounts {"account_id", "cash"?}
                                      open another paper account -> its snapshot
    POST /liquidity {"symbol", "shares": N | null}
                                      cap what one order takes per step (null: volume rule)

Errors: 400 with {"error": "..."} for bad input (malformed JSON, unknown field, invalid value,
unknown symbol or account), plus "code" when the venue gave one (e.g. "200" unknown symbol);
404 for an unknown path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from brokers.exceptions import BrokerError
from brokers.sim.core import Exchange

__all__ = ["AdminServer", "BadRequest", "build_app", "run_admin_server"]

log = logging.getLogger(__name__)

FAULT_FIELDS = frozenset(
    {"latency_ms", "drop_probability", "transient_error_rate", "rejected_symbols", "enforce_tick",
     "seed", "stall", "commission_delay_ms"}
)  # fmt: skip
MAX_STEPS = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_EXCHANGE = web.AppKey("exchange", Exchange)
_INFO = web.AppKey("info", dict)  # added to /health answers


class BadRequest(ValueError):
    """The request body or query was wrong; answered 400."""


# ---------------------------------------------------------------------- encoding helpers


def _dump(value: BaseModel) -> dict[str, Any]:
    return value.model_dump(mode="json")


def _reply(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status)


def _error(message: str, code: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if code is not None:
        body["code"] = code
    return _reply(body, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object sent (an empty body counts as {})."""
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _only(body: Mapping[str, Any], allowed: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}; allowed: {sorted(allowed)}")


def _required(body: Mapping[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise BadRequest(f"missing field: {name}")
    return body[name]


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRequest(f"{name} must be a number or a numeric string")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise BadRequest(f"{name} is not a number: {value!r}") from None
    if not number.is_finite():
        raise BadRequest(f"{name} must be finite")
    return number


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}")
    return value


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"since is not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise BadRequest("since must carry a timezone (e.g. ...Z or +00:00)")
    return moment


# ---------------------------------------------------------------------- views


def _quote(exchange: Exchange, symbol: str) -> dict[str, Any]:
    quote = exchange.prices.quote(symbol)
    return {"price": str(quote.price), "held": quote.held, "volume": str(quote.volume)}


def _faults(exchange: Exchange) -> dict[str, Any]:
    view = _dump(exchange.faults.config)
    view["rejected_symbols"] = sorted(view["rejected_symbols"])
    view["in_outage"] = exchange.faults.in_outage(exchange.now())
    view["stalled_requests"] = exchange.faults.stalled_requests
    return view


def _account_state(exchange: Exchange, account_id: str) -> dict[str, Any]:
    return {
        "account": _dump(exchange.account_snapshot(account_id)),
        "positions": [_dump(p) for p in exchange.positions(account_id)],
        "open_orders": [_dump(o) for o in exchange.orders(account_id, open_only=True)],
    }


def state_view(exchange: Exchange) -> dict[str, Any]:
    """What GET /state answers (also handy for logging a snapshot)."""
    accounts = {a: _account_state(exchange, a) for a in exchange.accounts()}
    symbols: set[str] = set()
    for account_id in accounts:
        symbols.update(o.symbol for o in exchange.orders(account_id))
        symbols.update(p.symbol for p in exchange.positions(account_id))
    return {
        "step": exchange.step,
        "time": exchange.now().isoformat(),
        "accounts": accounts,
        "prices": {s: _quote(exchange, s) for s in sorted(symbols)},
        "faults": _faults(exchange),
    }


# ---------------------------------------------------------------------- handlers


def _exchange(request: web.Request) -> Exchange:
    return request.app[_EXCHANGE]


def _account(request: web.Request) -> str:
    exchange = _exchange(request)
    return request.query.get("account") or exchange.config.default_account_id


async def health(request: web.Request) -> web.Response:
    exchange = _exchange(request)
    extra: dict[str, Any] = request.app[_INFO]
    return _reply(
        {
            "status": "ok",
            "step": exchange.step,
            "in_outage": exchange.faults.in_outage(exchange.now()),
            "accounts": exchange.accounts(),
            **extra,
        }
    )


async def state(request: web.Request) -> web.Response:
    return _reply(state_view(_exchange(request)))


async def orders(request: web.Request) -> web.Response:
    account = _account(request)
    found = _exchange(request).orders(account, open_only=_flag(request.query.get("open")))
    return _reply({"account": account, "orders": [_dump(o) for o in found]})


async def fills(request: web.Request) -> web.Response:
    exchange = _exchange(request)
    since = _since(request.query.get("since"))
    wanted = request.query.get("account")
    accounts = [wanted] if wanted else exchange.accounts()
    every = [f for a in accounts for f in exchange.fills(a, since)]
    every.sort(key=lambda f: (f.executed_at, f.execution_id))
    return _reply({"fills": [_dump(f) for f in every]})


async def prices(request: web.Request) -> web.Response:
    exchange = _exchange(request)
    text = request.query.get("symbols", "")
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    symbols = [exchange.instrument(s).symbol for s in wanted] or exchange.universe.symbols()
    return _reply({"step": exchange.step, "prices": {s: _quote(exchange, s) for s in symbols}})


async def get_faults(request: web.Request) -> web.Response:
    return _reply(_faults(_exchange(request)))


async def set_faults(request: web.Request) -> web.Response:
    body = await _body(request)
    _only(body, FAULT_FIELDS)
    exchange = _exchange(request)
    exchange.faults.set(**body)
    log.warning("sim admin: faults changed %s", body)
    return _reply(_faults(exchange))


async def placements(request: web.Request) -> web.Response:
    return _reply(_exchange(request).placements.view())


async def outage(request: web.Request) -> web.Response:
    body = await _body(request)
    _only(body, {"seconds"})
    seconds = _decimal(_required(body, "seconds"), "seconds")
    if seconds < 0:
        raise BadRequest("seconds must not be negative")
    exchange = _exchange(request)
    until: datetime | None = None
    if seconds == 0:
        exchange.faults.end_outage()
    else:
        until = exchange.faults.start_outage(float(seconds))
    log.warning("sim admin: outage of %ss", seconds)
    return _reply(
        {
            "until": until.isoformat() if until else None,
            "in_outage": exchange.faults.in_outage(exchange.now()),
        }
    )


async def set_price(request: web.Request) -> web.Response:
    body = await _body(request)
    _only(body, {"symbol", "price", "hold"})
    symbol = str(_required(body, "symbol"))
    price = _decimal(_required(body, "price"), "price")
    hold = body.get("hold", True)
    if not isinstance(hold, bool):
        raise BadRequest("hold must be true or false")
    exchange = _exchange(request)
    name = exchange.instrument(symbol).symbol
    exchange.set_price(name, price, hold=hold)
    return _reply({"symbol": name, **_quote(exchange, name)})


async def release(request: web.Request) -> web.Response:
    body = await _body(request)
    _only(body, {"symbol"})
    exchange = _exchange(request)
    name = exchange.instrument(str(_required(body, "symbol"))).symbol
    exchange.release_price(name)
    return _reply({"symbol": name, **_quote(exchange, name)})


async def advance(request: web.Request) -> web.Response:
    body = await _body(request)
    _only(body, {"steps"})
    steps = _integer(body.get("steps", 1), "steps", 1, MAX_STEPS)
    exchange = _exchange(request)
    exchange.advance(steps)
    return _reply({"step": exchange.step})


async def end_of_day(request: web.Request) -> web.Response:
    _only(await _body(request), set())
    exchange = _exchange(request)
    before = {(a, o.client_order_id) for a in exchange.accounts() for o in exchange.orders(a, True)}
    exchange.end_of_day()
    after = {(a, o.client_order_id) for a in exchange.accounts() for o in exchange.orders(a, True)}
    return _reply({"expired": sorted(cid for _, cid in before - after)})


async def open_account(request: web.Request) -> web.Response:
    body = await _body(request)
    _only(body, {"account_id", "cash"})
    account_id = str(_required(body, "account_id"))
    cash = _decimal(body["cash"], "cash") if body.get("cash") is not None else None
    snapshot = _exchange(request).open_account(account_id, cash)
    return _reply(_dump(snapshot))


async def liquidity(request: web.Request) -> web.Response:
    body = await _body(request)
    _only(body, {"symbol", "shares"})
    exchange = _exchange(request)
    name = exchange.instrument(str(_required(body, "symbol"))).symbol
    shares = body.get("shares")
    cap = None if shares is None else _decimal(shares, "shares")
    if cap is not None and cap < 0:
        raise BadRequest("shares must not be negative")
    exchange.set_liquidity(name, cap)
    return _reply({"symbol": name, "shares": None if cap is None else str(cap)})


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad input -> 400 {"error"}; the venue's refusals carry their code."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except BrokerError as exc:
        return _error(exc.message, str(exc.code))
    except ValidationError as exc:
        return _error("; ".join(f"{_where(e['loc'])}{e['msg']}" for e in exc.errors()))
    except (ValueError, TypeError) as exc:  # BadRequest, Decimal and pydantic refusals
        return _error(str(exc))


def _where(loc: tuple[int | str, ...]) -> str:
    return f"{'.'.join(str(p) for p in loc)}: " if loc else ""


def build_app(exchange: Exchange, info: Mapping[str, Any] | None = None) -> web.Application:
    """The aiohttp application over one exchange; `info` is added to /health answers."""
    app = web.Application(middlewares=[_errors])
    app[_EXCHANGE] = exchange
    app[_INFO] = dict(info or {})
    app.add_routes(
        [
            web.get("/health", health),
            web.get("/state", state),
            web.get("/orders", orders),
            web.get("/fills", fills),
            web.get("/prices", prices),
            web.get("/faults", get_faults),
            web.post("/faults", set_faults),
            web.get("/placements", placements),
            web.post("/outage", outage),
            web.post("/price", set_price),
            web.post("/release", release),
            web.post("/advance", advance),
            web.post("/end-of-day", end_of_day),
            web.post("/accounts", open_account),
            web.post("/liquidity", liquidity),
        ]
    )
    return app


class AdminServer:
    """The running admin API; `port` is where it listens, `close()` stops it."""

    def __init__(self, exchange: Exchange, info: Mapping[str, Any] | None = None) -> None:
        self.app = build_app(exchange, info)
        self._runner = web.AppRunner(self.app, access_log=None)
        self._site: web.TCPSite | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 7498) -> None:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await self._site.start()

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        assert self._site is not None, "not started"
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        await self._runner.cleanup()


async def run_admin_server(
    exchange: Exchange,
    host: str = "127.0.0.1",
    port: int = 7498,
    info: Mapping[str, Any] | None = None,
) -> AdminServer:
    """Start the admin API on host:port (0 picks a free port); close() stops it."""
    server = AdminServer(exchange, info)
    await server.start(host, port)
    return server
