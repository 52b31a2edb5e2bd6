"""The simulator's Alpaca front door: Trading API v2 over HTTP and the `trade_updates`
websocket, on the same Exchange (and SQLite state) as the TWS door. alpaca-py's TradingClient
(url_override="http://host:port") and TradingStream (url_override="ws://host:port/stream")
talk to it unmodified.

Every request passes the fault knobs first, as the TWS door does: a stall reads the request
and never answers it (the connection is cut when the stall ends), a drop cuts the connection,
an outage answers 503, latency delays every answer and stream message; injected transient
errors answer placements with 429; refused symbols and off-tick prices are the core's. Then
the APCA-API-KEY-ID / APCA-API-SECRET-KEY headers pick the account (401 otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from brokers.exceptions import BrokerError
from brokers.port import FillReport, OrderReport, OrderRequest
from brokers.sim.core import Exchange
from brokers.sim.models import SimUpdate
from brokers.sim.reasons import Reason
from schemas.events import OrderLeg, OrderStatus

from . import views
from .codes import INVALID, NOT_FOUND, UNAUTHORIZED, WireError, reason_of, wire_error
from .orders import Invalid, parse_order

log = logging.getLogger(__name__)

CENT, SUB_PENNY = Decimal("0.01"), Decimal("0.0001")

DEFAULT_KEY_ID = "sim-key-id"
DEFAULT_SECRET = "sim-secret-key"  # noqa: S105 - the simulator's well-known paper login
STALL_POLL_S = 0.02
MAX_ORDERS = 500
MAX_ACTIVITIES = 100
ACCOUNT_KEY: web.RequestKey[str] = web.RequestKey("account", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(err: WireError) -> web.Response:
    return web.json_response(err.body(), status=err.status)


def _invalid(message: str) -> web.Response:
    return _error(WireError(422, INVALID, message))


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1", "yes")


def _when(text: str | None) -> datetime | None:
    """A timestamp parameter (RFC 3339 or a date); naive means UTC."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AlpacaDoor:
    """One simulated Alpaca: many API keys, each bound to one account of the Exchange."""

    def __init__(
        self, exchange: Exchange, credentials: dict[str, tuple[str, str]] | None = None
    ) -> None:
        self.exchange = exchange
        self.faults = exchange.faults
        default = {DEFAULT_KEY_ID: (DEFAULT_SECRET, exchange.config.default_account_id)}
        self._keys: dict[str, tuple[str, str]] = dict(credentials or default)
        self._by_uuid: dict[str, tuple[str, str]] = {}  # order id -> (account, core client id)
        self._aliases: dict[tuple[str, str], str] = {}  # (account, leg's wire id) -> core id
        self._children: dict[tuple[str, str], list[str]] = {}  # (account, parent) -> exits
        self._last: dict[tuple[str, str], tuple[OrderStatus, Decimal]] = {}
        self._pending_fills: dict[tuple[str, str], FillReport] = {}
        self._streams: set[_Listener] = set()
        self._runner: web.AppRunner | None = None
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------ lifecycle

    def add_key(self, key_id: str, secret: str, account_id: str) -> None:
        """Let another API key trade another account (open the account first)."""
        self._keys[key_id] = (secret, account_id)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._loop = asyncio.get_running_loop()
        for account in self.exchange.accounts():
            for report in self.exchange.orders(account):
                self._learn(report)
                self._last[(account, report.client_order_id)] = self._state(report)
        self._unsubscribe = self.exchange.subscribe(self._on_update)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._socket = socket.create_server((host, port))
        await web.SockSite(self._runner, self._socket).start()

    @property
    def port(self) -> int:
        assert self._socket is not None, "not started"
        return int(self._socket.getsockname()[1])

    @property
    def host(self) -> str:
        assert self._socket is not None, "not started"
        return str(self._socket.getsockname()[0])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def stream_url(self) -> str:
        return f"ws://{self.host}:{self.port}/stream"

    def describe(self) -> str:
        return f"Alpaca API {self.base_url} (stream {self.stream_url}, key {DEFAULT_KEY_ID})"

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for listener in list(self._streams):
            await listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._socket = None

    # ------------------------------------------------------------ app and gate

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        get, post, delete = web.get, web.post, web.delete
        app.add_routes([
            get("/stream", self.on_stream),
            get("/v2/account", self.on_account),
            get("/v2/clock", self.on_clock),
            get("/v2/assets", self.on_assets),
            get("/v2/assets/{symbol}", self.on_asset),
            post("/v2/orders", self.on_place),
            get("/v2/orders", self.on_orders),
            delete("/v2/orders", self.on_cancel_all),
            get("/v2/orders:by_client_order_id", self.on_order_by_client_id),
            get("/v2/orders/{order_id}", self.on_order),
            delete("/v2/orders/{order_id}", self.on_cancel),
            get("/v2/positions", self.on_positions),
            delete("/v2/positions", self.on_close_all),
            get("/v2/positions/{symbol}", self.on_position),
            delete("/v2/positions/{symbol}", self.on_close),
            get("/v2/account/activities", self.on_activities),
            get("/v2/account/activities/{activity_type}", self.on_activities),
        ])  # fmt: skip
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Faults first (stall, drop, outage, latency), then the API keys."""
        if self.faults.stalled():
            self.faults.note_stalled()
            while self.faults.stalled():  # noqa: ASYNC110 - a knob, polled as the TWS door does
                await asyncio.sleep(STALL_POLL_S)
            return self._cut(request)
        if self.faults.should_drop():
            return self._cut(request)
        if self.faults.in_outage():
            return _error(wire_error(Reason.OUTAGE, "service unavailable"))
        delay = self.faults.latency_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        if request.path == "/stream":
            return await handler(request)  # a stream authenticates in its first message
        account = self._login(
            request.headers.get("APCA-API-KEY-ID", ""),
            request.headers.get("APCA-API-SECRET-KEY", ""),
        )
        if account is None:
            return _error(WireError(401, UNAUTHORIZED, "unauthorized"))
        request[ACCOUNT_KEY] = account
        return await handler(request)

    @staticmethod
    def _cut(request: web.Request) -> web.Response:
        """Drop the connection without an answer, as a network fault would."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=503)

    def _login(self, key_id: str, secret: str) -> str | None:
        known = self._keys.get(key_id)
        if known is None or known[0] != secret:
            return None
        return known[1]

    # ------------------------------------------------------------ id bookkeeping

    def _learn(self, report: OrderReport) -> None:
        account = report.account_id
        self._by_uuid[views.order_id(account, report.venue_order_id)] = (
            account,
            report.client_order_id,
        )
        if report.leg is not OrderLeg.ENTRY and report.parent_client_order_id:
            wire = views.leg_client_order_id(account, report.client_order_id)
            self._aliases[(account, wire)] = report.client_order_id
            kids = self._children.setdefault((account, report.parent_client_order_id), [])
            if report.client_order_id not in kids:
                kids.append(report.client_order_id)

    def _core_id(self, account: str, wire_client_order_id: str) -> str:
        return self._aliases.get((account, wire_client_order_id), wire_client_order_id)

    def _by_order_id(self, account: str, order_id: str) -> str | None:
        found = self._by_uuid.get(order_id)
        if found is None:  # placed through another door since the last update reached us
            for report in self.exchange.orders(account):
                self._learn(report)
            found = self._by_uuid.get(order_id)
        return found[1] if found is not None and found[0] == account else None

    def _order_json(self, report: OrderReport, nested: bool = True) -> dict[str, Any]:
        self._learn(report)
        kids = self._children.get((report.account_id, report.client_order_id), [])
        legs = [self.exchange.order(report.account_id, k) for k in kids] if nested else None
        return views.order_json(report, legs, bracket=bool(kids))

    # ------------------------------------------------------------ account, assets

    async def on_account(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        snap = self.exchange.account_snapshot(account)
        positions = self.exchange.positions(account)
        multiplier = self.exchange.config.margin_multiplier
        return web.json_response(views.account_json(snap, positions, multiplier))

    async def on_clock(self, request: web.Request) -> web.Response:
        now = views.stamp(self.exchange.now())
        return web.json_response(
            {"timestamp": now, "is_open": True, "next_open": now, "next_close": now}
        )

    def _asset(self, symbol: str) -> dict[str, Any]:
        instrument = self.exchange.instrument(symbol)
        tradable = instrument.symbol not in self.faults.config.rejected_symbols
        shortable = self.exchange.config.shorting_enabled and bool(
            getattr(instrument, "shortable", True)
        )
        return views.asset_json(instrument, tradable, shortable)

    async def on_assets(self, request: web.Request) -> web.Response:
        return web.json_response([self._asset(i.symbol) for i in self.exchange.instruments()])

    async def on_asset(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        try:
            return web.json_response(self._asset(symbol))
        except BrokerError:
            return _error(WireError(404, NOT_FOUND, f"asset not found for {symbol}"))

    # ------------------------------------------------------------ placing

    async def on_place(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        try:
            body = json.loads(await request.text(), parse_float=Decimal)
            order = parse_order(body)
        except (ValueError, Invalid) as exc:
            return _invalid(str(exc) if isinstance(exc, Invalid) else "invalid JSON body")
        placements = self.exchange.placements
        placements.attempted(order.client_order_id)
        if self.faults.transient_error():
            err = wire_error(Reason.VENUE_BUSY, "too many requests")
            placements.refused(order.client_order_id, str(err.code))
            return _error(err)
        try:
            reports = self.exchange.place(account, order)
        except BrokerError as exc:
            err = wire_error(reason_of(exc), exc.message, order.symbol)
            if reason_of(exc) is Reason.OFF_TICK:
                err = WireError(err.status, err.code, _sub_penny(order))
            if reason_of(exc) is Reason.INSUFFICIENT_BUYING_POWER:
                bp = self.exchange.account_snapshot(account).buying_power
                err = WireError(
                    err.status, err.code, err.message, (("buying_power", views.num(bp) or "0"),)
                )
            placements.refused(order.client_order_id, str(err.code))
            return _error(err)
        placements.accepted(order.client_order_id)
        for report in reports:
            self._learn(report)
        return web.json_response(
            self._order_json(self.exchange.order(account, reports[0].client_order_id))
        )

    # ------------------------------------------------------------ orders: queries

    def _report_or_404(self, account: str, core_id: str | None) -> OrderReport | web.Response:
        if core_id is None:
            return _error(wire_error(Reason.UNKNOWN_ORDER, "order not found"))
        try:
            return self.exchange.order(account, core_id)
        except BrokerError:
            return _error(wire_error(Reason.UNKNOWN_ORDER, "order not found"))

    async def on_order(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        found = self._report_or_404(
            account, self._by_order_id(account, request.match_info["order_id"])
        )
        if isinstance(found, web.Response):
            return found
        nested = _flag(request.query.get("nested"))
        return web.json_response(self._order_json(found, nested))

    async def on_order_by_client_id(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        wire = request.query.get("client_order_id", "")
        found = self._report_or_404(account, self._core_id(account, wire) if wire else None)
        if isinstance(found, web.Response):
            return found
        return web.json_response(self._order_json(found))

    async def on_orders(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        query = request.query
        try:
            chosen = self._select(account, query)
            limit = min(int(query.get("limit", "50")), MAX_ORDERS)
        except ValueError as exc:
            return _invalid(f"invalid query: {exc}")
        nested = _flag(query.get("nested"))
        if nested:
            chosen = [r for r in chosen if r.leg is OrderLeg.ENTRY]
        descending = query.get("direction", "desc").lower() != "asc"
        chosen.sort(key=lambda r: r.created_at, reverse=descending)
        return web.json_response([self._order_json(r, nested) for r in chosen[:limit]])

    def _select(self, account: str, query: Any) -> list[OrderReport]:
        status = query.get("status", "open").lower()
        every = self.exchange.orders(account, open_only=status == "open")
        if status == "closed":
            every = [r for r in every if r.status.is_terminal]
        after, until = _when(query.get("after")), _when(query.get("until"))
        symbols = {s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()}
        side = query.get("side", "").upper()
        return [
            r for r in every
            if (after is None or r.created_at > after) and (until is None or r.created_at < until)
            and (not symbols or r.symbol in symbols) and (not side or r.side.value == side)
        ]  # fmt: skip

    # ------------------------------------------------------------ cancelling

    def _cancel(self, account: str, core_id: str) -> WireError | None:
        try:
            self.exchange.cancel(account, core_id)
        except BrokerError as exc:
            reason = reason_of(exc)
            if reason is Reason.NOT_CANCELLABLE:
                state = views.STATUS[self.exchange.order(account, core_id).status]
                return WireError(422, 42210000, f'order is already in "{state}" state')
            return wire_error(reason, exc.message)
        return None

    async def on_cancel(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        core_id = self._by_order_id(account, request.match_info["order_id"])
        if core_id is None:
            return _error(wire_error(Reason.UNKNOWN_ORDER, "order not found"))
        err = self._cancel(account, core_id)
        return _error(err) if err is not None else web.Response(status=204)

    async def on_cancel_all(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        return web.json_response(self._cancel_open(account), status=207)

    def _cancel_open(self, account: str) -> list[dict[str, Any]]:
        out = []
        for report in self.exchange.orders(account, open_only=True):
            if not self.exchange.order(account, report.client_order_id).status.is_terminal:
                err = self._cancel(account, report.client_order_id)
                body = self._order_json(self.exchange.order(account, report.client_order_id))
                out.append(
                    {
                        "id": body["id"],
                        "status": 200 if err is None else err.status,
                        "body": body if err is None else err.body(),
                    }
                )
        return out

    # ------------------------------------------------------------ positions

    async def on_positions(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        rows = [
            views.position_json(p, self.exchange.instrument(p.symbol))
            for p in self.exchange.positions(account)
            if p.quantity != 0
        ]
        return web.json_response(rows)

    async def on_position(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        symbol = request.match_info["symbol"].upper()
        for p in self.exchange.positions(account):
            if p.symbol == symbol and p.quantity != 0:
                return web.json_response(views.position_json(p, self.exchange.instrument(symbol)))
        return _error(WireError(404, NOT_FOUND, "position does not exist"))

    def _close(self, account: str, symbol: str, quantity: Decimal) -> tuple[int, dict[str, Any]]:
        """A market order flattening one position: (HTTP status, order or error body)."""
        order = parse_order({
            "symbol": symbol, "qty": str(abs(quantity)), "type": "market",
            "side": "sell" if quantity > 0 else "buy", "time_in_force": "day",
            "client_order_id": str(uuid.uuid4()),
        })  # fmt: skip
        try:
            reports = self.exchange.place(account, order)
        except BrokerError as exc:
            err = wire_error(reason_of(exc), exc.message, symbol)
            return err.status, {**err.body(), "symbol": symbol}
        return 200, self._order_json(self.exchange.order(account, reports[0].client_order_id))

    async def on_close_all(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        if _flag(request.query.get("cancel_orders")):
            self._cancel_open(account)
        out = []
        for p in self.exchange.positions(account):
            if p.quantity == 0:
                continue
            status, body = self._close(account, p.symbol, p.quantity)
            out.append(
                {
                    "symbol": p.symbol,
                    "status": status,
                    "body": body,
                    "order_id": body.get("id") if status == 200 else None,
                }
            )
        return web.json_response(out, status=207)

    async def on_close(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        symbol = request.match_info["symbol"].upper()
        held = [p for p in self.exchange.positions(account) if p.symbol == symbol and p.quantity]
        if not held:
            return _error(WireError(404, NOT_FOUND, "position does not exist"))
        status, body = self._close(account, symbol, held[0].quantity)
        return web.json_response(body, status=status)

    # ------------------------------------------------------------ activities

    async def on_activities(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT_KEY]
        wanted = request.match_info.get("activity_type") or request.query.get(
            "activity_types", "FILL"
        )
        if "FILL" not in {t.strip().upper() for t in wanted.split(",")}:
            return web.json_response([])  # the simulator books no cash activities
        try:
            rows = self._fill_activities(account, request.query)
            size = min(int(request.query.get("page_size", str(MAX_ACTIVITIES))), MAX_ACTIVITIES)
        except ValueError as exc:
            return _invalid(f"invalid query: {exc}")
        token = request.query.get("page_token")
        if token:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(token) + 1 :] if token in ids else []
        return web.json_response(rows[:size])

    def _fill_activities(self, account: str, query: Any) -> list[dict[str, Any]]:
        after, until = _when(query.get("after")), _when(query.get("until"))
        cum: dict[str, Decimal] = {}
        rows: list[tuple[datetime, dict[str, Any]]] = []
        for fill in self.exchange.fills(account):
            cum[fill.client_order_id] = cum.get(fill.client_order_id, Decimal(0)) + fill.quantity
            if (after is not None and fill.executed_at <= after) or (
                until is not None and fill.executed_at >= until
            ):
                continue
            report = self.exchange.order(account, fill.client_order_id)
            rows.append(
                (fill.executed_at, views.activity_json(fill, report, cum[fill.client_order_id]))
            )
        descending = query.get("direction", "desc").lower() != "asc"
        if descending:
            rows.reverse()
        return [row for _, row in rows]

    # ------------------------------------------------------------ trade_updates stream

    async def on_stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        listener = _Listener(self, ws)
        self._streams.add(listener)
        try:
            await listener.run()
        finally:
            self._streams.discard(listener)
            await listener.close()
        return ws

    def _on_update(self, update: SimUpdate) -> None:
        """Exchange callback (any thread): handled on the door's loop, in order."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._handle_update(update)
        else:
            loop.call_soon_threadsafe(self._handle_update, update)

    def _handle_update(self, update: SimUpdate) -> None:
        try:
            if update.fill is not None:
                self._pending_fills[(update.account_id, update.fill.client_order_id)] = update.fill
            if update.order is not None:
                self._publish_order(update.order)
        except Exception:  # a push must never break the exchange that called us
            log.exception("alpaca door: could not forward %r", update)

    def _publish_order(self, report: OrderReport) -> None:
        self._learn(report)
        key = (report.account_id, report.client_order_id)
        before = self._last.get(key)
        self._last[key] = self._state(report)
        fill = self._pending_fills.pop(key, None)
        event = _event(before, report, fill)
        if event is None or not self._streams:
            return
        position = None
        if fill is not None:
            held = {p.symbol: p.quantity for p in self.exchange.positions(report.account_id)}
            position = held.get(report.symbol, Decimal(0))
        message = views.trade_update(
            event, self._order_json(report, nested=False), report.updated_at, fill, position
        )
        for listener in list(self._streams):
            if listener.account == report.account_id:
                listener.send(message)

    @staticmethod
    def _state(report: OrderReport) -> tuple[OrderStatus, Decimal]:
        return report.status, report.filled_quantity


def _sub_penny(order: OrderRequest) -> str:
    """Alpaca's sentence for a price off the tick, naming the first offending field."""
    fields = {"limit_price": order.limit_price, "stop_price": order.stop_price,
              "take_profit.limit_price": order.take_profit,
              "stop_loss.stop_price": order.stop_loss}  # fmt: skip
    for name, price in fields.items():
        if price is not None and price % (CENT if price >= 1 else SUB_PENNY) != 0:
            return (
                f"invalid {name} {price}. sub-penny increment does not fulfill minimum "
                "pricing criteria"
            )
    return "sub-penny increment does not fulfill minimum pricing criteria"


_EVENTS = {
    OrderStatus.CANCELLED: "canceled",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.PENDING_CANCEL: "pending_cancel",
    OrderStatus.ACCEPTED: "new",
    OrderStatus.PENDING_SUBMIT: "pending_new",
}


def _event(
    before: tuple[OrderStatus, Decimal] | None, report: OrderReport, fill: FillReport | None
) -> str | None:
    """The trade_updates event for an order change, or None when nothing a client sees moved."""
    if fill is not None:
        return "fill" if report.status is OrderStatus.FILLED else "partial_fill"
    if before is None:
        return "new"
    if before[0] is report.status:
        return None
    return _EVENTS.get(report.status)


class _Listener:
    """One trade_updates websocket: authenticate, listen, then ordered events (latency,
    stalls and outages applied as on the HTTP side)."""

    AUTH_SECONDS = 10.0

    def __init__(self, door: AlpacaDoor, ws: web.WebSocketResponse) -> None:
        self.door = door
        self.ws = ws
        self.account: str | None = None
        self.listening = False
        self._out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        if self.listening:
            self._out.put_nowait(message)

    async def _reply(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def run(self) -> None:
        if not await self._authenticate():
            return
        self._sender = asyncio.ensure_future(self._send_loop())
        async for msg in self.ws:
            if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                break
            await self._on_message(msg.data)

    async def _authenticate(self) -> bool:
        try:
            async with asyncio.timeout(self.AUTH_SECONDS):
                msg = await self.ws.receive()
            data = json.loads(msg.data) if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY) else {}
        except (TimeoutError, ValueError, TypeError):
            data = {}
        creds = data.get("data") or {} if isinstance(data, dict) else {}
        if isinstance(data, dict) and data.get("action") in ("authenticate", "auth"):
            self.account = self.door._login(
                str(creds.get("key_id", "")), str(creds.get("secret_key", ""))
            )
        status = "authorized" if self.account is not None else "unauthorized"
        await self._reply(
            {"stream": "authorization", "data": {"status": status, "action": "authenticate"}}
        )
        return self.account is not None

    async def _on_message(self, raw: str | bytes) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            return
        if not isinstance(data, dict) or data.get("action") != "listen":
            return
        streams = (data.get("data") or {}).get("streams") or []
        self.listening = "trade_updates" in streams
        await self._reply(
            {
                "stream": "listening",
                "data": {"streams": ["trade_updates"] if self.listening else []},
            }
        )

    async def _send_loop(self) -> None:
        faults = self.door.faults
        while True:
            message = await self._out.get()
            delay = faults.latency_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            # a wedged venue pushes nothing until it recovers (a knob, polled)
            while faults.stalled():  # noqa: ASYNC110
                await asyncio.sleep(STALL_POLL_S)
            if faults.in_outage():
                await self.ws.close()
                return
            await self._reply(message)

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
            self._sender = None
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()


async def start_alpaca_door(
    exchange: Exchange, host: str = "127.0.0.1", port: int = 0
) -> AlpacaDoor:
    """Start an Alpaca front door on host:port (0 picks a free port); `await door.close()`."""
    door = AlpacaDoor(exchange)
    await door.start(host, port)
    return door


__all__ = ["DEFAULT_KEY_ID", "DEFAULT_SECRET", "AlpacaDoor", "start_alpaca_door"]
