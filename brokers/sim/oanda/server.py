"""The simulator's OANDA v20 REST front door (aiohttp) over the shared core and its SQLite state.

The official `v20` client and oandapyV20 talk to it unmodified (`v20.Context(host, port,
ssl=False, token=...)`). Endpoints: accounts, account, summary, instruments, orders (MARKET /
LIMIT / STOP with clientExtensions, takeProfitOnFill, stopLossOnFill; by id or `@clientID`;
cancel), trades, positions, pricing (quoteHomeConversionFactors, or homeConversions when
includeHomeConversions is given, as OANDA does), transactions since an id, and the
transactions stream (newline-delimited JSON with HEARTBEAT lines). Only currency pairs trade
here. `Authorization: Bearer <token>` is checked.

Refusals follow OANDA: 400 with orderRejectTransaction + errorCode/errorMessage, a market order
the margin cannot carry is created and cancelled at once (201, orderCancelTransaction reason
INSUFFICIENT_MARGIN), 404 for unknown orders, 401 without the token. Faults: latency (every
answer), drops (connection cut), outages (503), transient errors (placements answered 429),
refused symbols (INSTRUMENT_NOT_TRADEABLE), stall (requests held unanswered until it ends).

The transaction log lives in this process (ids continue from the core's counts after a
restart); orders, fills and positions are the core's and survive restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from brokers.exceptions import BrokerError, DuplicateClientOrderId, UnknownOrder
from brokers.port import FillReport, OrderReport, OrderRequest, child_client_order_id
from brokers.sim.reasons import Reason
from brokers.sim.universe import Instrument
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

from . import wire
from .wire import Json, OrderExtra

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "sim-oanda-token"  # noqa: S105 - the simulator's own, not a secret
HEARTBEAT_S = 5.0
STALL_POLL_S = 0.02
Key = tuple[str, str]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DOOR = web.AppKey("door", object)


class BadRequest(ValueError):
    pass


def _reply(payload: Json, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")


def _error(status: int, message: str, code: str | None = None, **extra: Any) -> web.Response:
    body: Json = {**extra, "errorMessage": message}
    if code is not None:
        body["errorCode"] = code
    return _reply(body, status)


def _reason(exc: BrokerError) -> Reason | None:
    reason = getattr(exc, "reason", None)
    if reason is not None:
        return Reason(reason)
    if isinstance(exc, DuplicateClientOrderId):
        return Reason.DUPLICATE_CLIENT_ID
    if isinstance(exc, UnknownOrder):
        return Reason.UNKNOWN_ORDER
    return None


def _now() -> datetime:
    return datetime.now(UTC)


def _decimal(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BadRequest(f"Invalid value specified for '{name}'") from None


class OandaDoor:
    """One simulated OANDA v20 REST endpoint over an Exchange."""

    def __init__(self, exchange: Any, token: str = DEFAULT_TOKEN,
                 heartbeat_s: float = HEARTBEAT_S) -> None:  # fmt: skip
        self.exchange = exchange
        self.faults = exchange.faults
        self.token = token
        self.heartbeat_s = heartbeat_s
        self._lock = threading.RLock()
        self._journal: dict[str, list[Json]] = {}
        self._next_id = 1 + 10 * self._core_count()
        self._extra: dict[Key, OrderExtra] = {}
        self._creates: dict[Key, Json] = {}  # create txns waiting for the order's first update
        self._wire_created: set[Key] = set()  # bracket exits that exist on the wire (entry filled)
        self._ghosts: dict[Key, Json] = {}  # orders created and cancelled at once (no margin)
        self._streams: dict[str, set[asyncio.Queue[Json | None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], Any] | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    def _core_count(self) -> int:
        total = 0
        for account in self.exchange.accounts():
            total += len(self.exchange.orders(account)) + len(self.exchange.fills(account))
        return total

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = self.exchange.subscribe(self._on_update)
        app = web.Application(middlewares=[self._guard])
        app[_DOOR] = self
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await self._site.start()

    @property
    def port(self) -> int:
        assert self._runner is not None, "not started"
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for queues in self._streams.values():
            for queue in queues:
                queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _routes(self, app: web.Application) -> None:
        base = "/v3/accounts/{account}"
        app.add_routes([
            web.get("/v3/accounts", self.list_accounts),
            web.get(base, self.get_account),
            web.get(base + "/summary", self.get_summary),
            web.get(base + "/instruments", self.get_instruments),
            web.post(base + "/orders", self.create_order),
            web.get(base + "/orders", self.list_orders),
            web.get(base + "/pendingOrders", self.pending_orders),
            web.get(base + "/orders/{spec}", self.get_order),
            web.put(base + "/orders/{spec}/cancel", self.cancel_order),
            web.get(base + "/trades", self.list_trades),
            web.get(base + "/openTrades", self.open_trades),
            web.get(base + "/positions", self.list_positions),
            web.get(base + "/openPositions", self.open_positions),
            web.get(base + "/pricing", self.pricing),
            web.get(base + "/transactions/sinceid", self.since_id),
            web.get(base + "/transactions/stream", self.stream),
        ])  # fmt: skip

    # ------------------------------------------------------------ faults and auth

    async def _unstalled(self) -> None:
        """Return once the venue is not wedged (a stalled venue reads and does not answer)."""
        if self.faults.stalled():
            self.faults.note_stalled()
        while self.faults.stalled():  # noqa: ASYNC110 - the knob is a plain flag, no event
            await asyncio.sleep(STALL_POLL_S)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        await self._unstalled()
        if self.faults.should_drop():
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        delay = self.faults.latency_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.faults.in_outage():
            return _error(503, "Service Unavailable")
        given = request.headers.get("Authorization", "")
        if not secrets.compare_digest(given, f"Bearer {self.token}"):
            return _error(401, "Insufficient authorization to perform request.")
        account = request.match_info.get("account")
        if account is not None and account not in self.exchange.accounts():
            return _error(403, "The provided request was forbidden.")
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(400, str(exc))

    # ------------------------------------------------------------ the transaction log

    def _new_id(self) -> str:
        with self._lock:
            value = self._next_id
            self._next_id += 1
            return str(value)

    def _last_id(self, account: str) -> str:
        with self._lock:
            entries = self._journal.get(account, [])
            return entries[-1]["id"] if entries else str(self._next_id - 1)

    def _record(self, account: str, txn: Json) -> Json:
        """Append to the account's log and push to its streams."""
        with self._lock:
            txn.setdefault("id", self._new_id())
            txn.setdefault("time", wire.rfc3339(_now()))
            txn.setdefault("accountID", account)
            txn.setdefault("batchID", txn["id"])
            txn.setdefault("userID", 1)
            self._journal.setdefault(account, []).append(txn)
            queues = list(self._streams.get(account, ()))
        loop = self._loop
        for queue in queues:
            if loop is not None and loop.is_running():
                loop.call_soon_threadsafe(queue.put_nowait, txn)
        return txn

    def _txns(self, account: str, after: int) -> list[Json]:
        with self._lock:
            return [t for t in self._journal.get(account, []) if int(t["id"]) > after]

    # ------------------------------------------------------------ following the core

    def _on_update(self, update: Any) -> None:
        try:
            if update.fill is not None:
                self._on_fill(update.fill)
            if update.order is not None:
                self._on_order(update.order)
        except Exception:  # a listener must never break the exchange
            log.exception("oanda door: could not journal %r", update)

    def _extra_for(self, report: OrderReport) -> OrderExtra:
        key = (report.account_id, report.client_order_id)
        with self._lock:
            if key not in self._extra:
                kind = wire.LEG_TYPES.get(report.leg) or wire.ORDER_TYPES[report.order_type]
                tif = wire.TIF_OUT.get(report.time_in_force, "GTC")
                self._extra[key] = OrderExtra(kind, tif)
            return self._extra[key]

    def _on_order(self, report: OrderReport) -> None:
        key = (report.account_id, report.client_order_id)
        create = self._creates.pop(key, None)
        if create is not None:
            self._record(report.account_id, create)
        extra = self._extra_for(report)
        if report.leg is not OrderLeg.ENTRY:
            self._on_exit(report, extra)
            return
        self._on_end(report, extra)

    def _on_exit(self, report: OrderReport, extra: OrderExtra) -> None:
        """A bracket exit appears on the wire once its entry filled (OANDA creates it then)."""
        key = (report.account_id, report.client_order_id)
        active = report.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED) or (
            report.status is OrderStatus.FILLED
        )
        if key not in self._wire_created and active:
            self._wire_created.add(key)
            parent = (report.account_id, report.parent_client_order_id or "")
            extra.trade_id = self._extra[parent].trade_id if parent in self._extra else None
            body = wire.order_json(report, self._instrument(report.symbol), extra)
            txn = {k: v for k, v in body.items() if k not in ("id", "state", "createTime")}
            self._record(report.account_id, {**txn, "type": extra.oanda_type, "reason": "ON_FILL"})
        if key in self._wire_created:
            self._on_end(report, extra)

    def _on_end(self, report: OrderReport, extra: OrderExtra) -> None:
        ended = report.status.is_terminal and report.status is not OrderStatus.FILLED
        if ended and extra.cancelling_id is None:
            txn = self._record(report.account_id, {
                "type": "ORDER_CANCEL", "orderID": report.venue_order_id,
                "clientOrderID": report.client_order_id, "reason": _cancel_reason(report),
            })  # fmt: skip
            extra.cancelling_id, extra.cancelled_time = txn["id"], txn["time"]

    def _on_fill(self, fill: FillReport) -> None:
        key = (fill.account_id, fill.client_order_id)
        create = self._creates.pop(key, None)
        if create is not None:
            self._record(fill.account_id, create)
        report = self.exchange.order(fill.account_id, fill.client_order_id)
        extra = self._extra_for(report)
        instrument = self._instrument(fill.symbol)
        units = wire.units_text(fill.quantity, fill.side)
        txn: Json = {
            "type": "ORDER_FILL", "orderID": fill.venue_order_id,
            "clientOrderID": fill.client_order_id, "instrument": fill.symbol, "units": units,
            "price": wire.price_text(fill.price, instrument), "reason": _fill_reason(extra),
            "pl": "0.0000", "financing": "0.0000", "commission": f"{fill.commission:.4f}",
            "accountBalance": f"{self.exchange.account_snapshot(fill.account_id).cash:.4f}",
        }  # fmt: skip
        txn = self._record(fill.account_id, txn)
        if fill.leg is OrderLeg.ENTRY:
            extra.trade_id = extra.trade_id or txn["id"]
            txn["tradeOpened"] = {"tradeID": extra.trade_id, "units": units}
        else:
            txn["tradesClosed"] = [{"tradeID": extra.trade_id or "", "units": units}]
        extra.filling_id, extra.filled_time = txn["id"], txn["time"]

    def _instrument(self, symbol: str) -> Instrument:
        found: Instrument = self.exchange.instrument(symbol)
        return found

    # ------------------------------------------------------------ accounts and instruments

    async def list_accounts(self, request: web.Request) -> web.Response:
        ids = self.exchange.accounts()
        return _reply({"accounts": [{"id": a, "tags": []} for a in ids]})

    def _summary(self, account: str) -> Json:
        snap = self.exchange.account_snapshot(account)
        orders = self.exchange.orders(account, open_only=True)
        positions = self.exchange.positions(account)
        used = sum((self._margin(p.symbol, abs(p.market_value)) for p in positions), Decimal(0))
        available = max(snap.equity - used, Decimal(0))
        return {
            "id": account, "alias": "Primary", "currency": snap.currency,
            "balance": f"{snap.cash:.4f}", "NAV": f"{snap.equity:.4f}",
            "unrealizedPL": f"{snap.unrealized_pnl:.4f}", "pl": f"{snap.realized_pnl_today:.4f}",
            "resettablePL": f"{snap.realized_pnl_today:.4f}", "financing": "0.0000",
            "commission": "0.0000", "marginRate": f"{self._account_rate()}",
            "marginUsed": f"{used:.4f}", "marginAvailable": f"{available:.4f}",
            "positionValue": f"{snap.gross_position_value:.4f}",
            "marginCloseoutNAV": f"{snap.equity:.4f}", "marginCloseoutMarginUsed": f"{used:.4f}",
            "withdrawalLimit": f"{available:.4f}", "hedgingEnabled": False,
            "openTradeCount": len(self._trades(account, only_open=True)),
            "openPositionCount": len(positions),
            "pendingOrderCount": len([o for o in orders if self._visible(o)]),
            "createdTime": wire.rfc3339(snap.as_of), "lastTransactionID": self._last_id(account),
        }  # fmt: skip

    def _account_rate(self) -> Decimal:
        """The account's margin rate: the majors' (50:1)."""
        spec = self._instrument("EUR_USD").fx
        return spec.margin_rate if spec is not None else Decimal("0.02")

    def _margin(self, symbol: str, value: Decimal) -> Decimal:
        spec = self._instrument(symbol).fx
        rate = spec.margin_rate if spec is not None else 1 / self.exchange.config.margin_multiplier
        return value * rate

    async def get_summary(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        body = {"account": self._summary(account), "lastTransactionID": self._last_id(account)}
        return _reply(body)

    async def get_account(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        body = self._summary(account)
        body["orders"] = [self._order_json(o) for o in self.exchange.orders(account, open_only=True)
                          if self._visible(o)]  # fmt: skip
        body["trades"] = self._trades(account, only_open=True)
        body["positions"] = self._positions(account)
        return _reply({"account": body, "lastTransactionID": self._last_id(account)})

    def _pairs(self, names: str | None) -> list[Instrument]:
        if not names:
            return [i for i in self.exchange.instruments() if i.fx is not None]
        out = []
        for name in names.split(","):
            try:
                found = self._instrument(name)
            except BrokerError:
                found = None
            if found is None or found.fx is None:
                raise BadRequest("Invalid value specified for 'instruments'")
            out.append(found)
        return out

    async def get_instruments(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        pairs = self._pairs(request.query.get("instruments"))
        return _reply({"instruments": [wire.instrument_json(i) for i in pairs],
                       "lastTransactionID": self._last_id(account)})  # fmt: skip

    # ------------------------------------------------------------ orders: creating

    async def create_order(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        try:
            spec = (await request.json())["order"]
            assert isinstance(spec, dict)
        except (ValueError, KeyError, AssertionError):
            raise BadRequest("The request was missing required data") from None
        client_id = str((spec.get("clientExtensions") or {}).get("id") or "")
        ref = client_id or f"~oanda-{self._next_id}"
        self.exchange.placements.attempted(ref)
        if self.faults.transient_error():
            self.exchange.placements.refused(ref, "429")
            return _error(429, "Requests per second exceeded")
        create = self._create_txn(account, spec)
        try:
            order = self._request(spec, ref)
            self._check_pair(order.symbol)
        except BrokerError as exc:
            return self._rejected(account, ref, create, exc, spec)
        key = (account, ref)
        self._remember(key, order, spec, shown=bool(client_id))
        self._creates[key] = create
        try:
            reports = self.exchange.place(account, order)
        except BrokerError as exc:
            self._creates.pop(key, None)
            self._extra.pop(key, None)
            return self._rejected(account, ref, create, exc, spec)
        self.exchange.placements.accepted(ref)
        return _reply(self._created(account, create, reports[0]), 201)

    def _create_txn(self, account: str, spec: Json) -> Json:
        kind = str(spec.get("type", "MARKET"))
        txn: Json = {k: v for k, v in spec.items() if k != "type"}
        txn.update({"id": self._new_id(), "type": f"{kind}_ORDER", "reason": "CLIENT_ORDER"})
        txn.setdefault("timeInForce", "FOK" if kind == "MARKET" else "GTC")
        txn.setdefault("positionFill", "DEFAULT")
        return txn

    def _request(self, spec: Json, ref: str) -> OrderRequest:
        kind = spec.get("type", "MARKET")
        order_type = _ORDER_TYPES.get(kind)
        if order_type is None:
            raise BadRequest("Invalid value specified for 'order.type'")
        units = _decimal(spec.get("units"), "order.units")
        if units == 0:
            raise BadRequest("Invalid value specified for 'order.units'")
        price = _decimal(spec["price"], "order.price") if "price" in spec else None
        tif = str(spec.get("timeInForce", "FOK" if order_type is OrderType.MKT else "GTC"))
        return OrderRequest(
            client_order_id=ref, symbol=str(spec.get("instrument", "")),
            side=Side.BUY if units > 0 else Side.SELL, quantity=abs(units), order_type=order_type,
            limit_price=price if order_type is OrderType.LMT else None,
            stop_price=price if order_type is OrderType.STP else None,
            time_in_force=_tif(order_type, tif),
            take_profit=_on_fill_price(spec, "takeProfitOnFill"),
            stop_loss=_on_fill_price(spec, "stopLossOnFill"),
        )  # fmt: skip

    def _check_pair(self, symbol: str) -> None:
        """Only currency pairs trade at this door (a stock is as unknown as a typo)."""
        if self._instrument(symbol).fx is None:
            from brokers.sim.reasons import refusal

            raise refusal(Reason.UNKNOWN_INSTRUMENT, f"unknown instrument {symbol}")

    def _remember(self, key: Key, order: OrderRequest, spec: Json, shown: bool) -> None:
        kind = str(spec.get("type", "MARKET"))
        tif = str(spec.get("timeInForce", "FOK" if kind == "MARKET" else "GTC"))
        on_fill: dict[str, Json] = {k: spec[k] for k in _ON_FILL.values() if k in spec}
        with self._lock:
            self._extra[key] = OrderExtra(kind, tif, shown, on_fill)
            for leg in (OrderLeg.TAKE_PROFIT, OrderLeg.STOP_LOSS):
                child = child_client_order_id(key[1], leg)
                details: Json = on_fill.get(_ON_FILL[leg]) or {}
                shown_child = bool((details.get("clientExtensions") or {}).get("id"))
                self._extra[(key[0], child)] = OrderExtra(wire.LEG_TYPES[leg], "GTC", shown_child)

    def _created(self, account: str, create: Json, entry: OrderReport) -> Json:
        """201: the create transaction, plus the fill or the cancel that came with it."""
        body: Json = {"orderCreateTransaction": create}
        related = [create["id"]]
        for txn in self._txns(account, int(create["id"])):
            if txn.get("orderID") != entry.venue_order_id:
                continue
            if txn["type"] == "ORDER_FILL" and "orderFillTransaction" not in body:
                body["orderFillTransaction"] = txn
                related.append(txn["id"])
            elif txn["type"] == "ORDER_CANCEL":
                body["orderCancelTransaction"] = txn
                related.append(txn["id"])
        create["id"] = create["id"]
        body["relatedTransactionIDs"] = related
        body["lastTransactionID"] = self._last_id(account)
        return body

    def _rejected(self, account: str, ref: str, create: Json, exc: BrokerError,
                  spec: Json) -> web.Response:  # fmt: skip
        reason = _reason(exc)
        self.exchange.placements.refused(ref, str(reason or exc.code))
        if reason in wire.CANCEL_AT_BIRTH:
            return self._cancel_at_birth(account, ref, create, wire.CANCEL_AT_BIRTH[reason])
        status, code = wire.REJECT.get(reason, (400, "UNITS_INVALID")) if reason else (400, "")
        code = _refine(code, spec, self._maybe_instrument(spec))
        txn = {**create, "type": f"{create['type']}_REJECT", "rejectReason": code}
        txn.pop("reason", None)
        self._record(account, txn)
        message = wire.MESSAGES.get(code, exc.message)
        return _error(status, message, code or None, orderRejectTransaction=txn,
                      relatedTransactionIDs=[txn["id"]], lastTransactionID=txn["id"])  # fmt: skip

    def _maybe_instrument(self, spec: Json) -> Instrument | None:
        try:
            return self._instrument(str(spec.get("instrument", "")))
        except BrokerError:
            return None

    def _cancel_at_birth(self, account: str, ref: str, create: Json, why: str) -> web.Response:
        self._record(account, create)
        cancel = self._record(account, {"type": "ORDER_CANCEL", "orderID": create["id"],
                                        "reason": why})  # fmt: skip
        if not ref.startswith("~"):
            cancel["clientOrderID"] = ref
        ghost = {k: v for k, v in create.items()
                 if k not in ("type", "reason", "accountID", "batchID", "userID", "time")}
        ghost.update({"type": create["type"].removesuffix("_ORDER"), "state": "CANCELLED",
                      "createTime": create["time"], "cancellingTransactionID": cancel["id"],
                      "cancelledTime": cancel["time"]})  # fmt: skip
        self._ghosts[(account, ref)] = ghost
        return _reply({"orderCreateTransaction": create, "orderCancelTransaction": cancel,
                       "relatedTransactionIDs": [create["id"], cancel["id"]],
                       "lastTransactionID": cancel["id"]}, 201)  # fmt: skip

    # ------------------------------------------------------------ orders: reading and cancelling

    def _visible(self, report: OrderReport) -> bool:
        """Exits exist on the wire only once their entry filled."""
        key = (report.account_id, report.client_order_id)
        return report.leg is OrderLeg.ENTRY or key in self._wire_created

    def _order_json(self, report: OrderReport) -> Json:
        instrument = self._instrument(report.symbol)
        return wire.order_json(report, instrument, self._extra_for(report))

    def _find(self, account: str, spec: str) -> OrderReport | Json:
        """An order by id or `@clientID` (a cancelled-at-birth order as its JSON)."""
        try:
            if spec.startswith("@"):
                found: OrderReport = self.exchange.order(account, spec[1:])
            else:
                found = self.exchange.order_by_venue_id(account, spec)
        except BrokerError:
            ghost = self._ghosts.get((account, spec[1:])) if spec.startswith("@") else None
            if ghost is None:
                raise
            return ghost
        if not self._visible(found):
            raise UnknownOrder(f"order {spec} does not exist")
        return found

    def _missing(self, account: str, what: str = "order") -> web.Response:
        return _error(404, wire.MESSAGES["ORDER_DOESNT_EXIST"], "ORDER_DOESNT_EXIST",
                      lastTransactionID=self._last_id(account))  # fmt: skip

    async def get_order(self, request: web.Request) -> web.Response:
        account, spec = request.match_info["account"], request.match_info["spec"]
        try:
            found = self._find(account, spec)
        except BrokerError:
            return self._missing(account)
        body = found if isinstance(found, dict) else self._order_json(found)
        return _reply({"order": body, "lastTransactionID": self._last_id(account)})

    def _all_orders(self, account: str) -> list[Json]:
        reports = [o for o in self.exchange.orders(account) if self._visible(o)]
        out = [(o.created_at.isoformat(), self._order_json(o)) for o in reports]
        out += [(g["createTime"], g) for (a, _), g in self._ghosts.items() if a == account]
        out.sort(key=lambda pair: pair[0])
        return [o for _, o in reversed(out)]  # OANDA lists the newest first

    async def list_orders(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        state = request.query.get("state", "PENDING")
        count = min(int(request.query.get("count", "50")), 500)
        wanted = {i for i in request.query.get("ids", "").split(",") if i}
        orders = [o for o in self._all_orders(account)
                  if (state == "ALL" or o["state"] == state) and (not wanted or o["id"] in wanted)]
        return _reply({"orders": orders[:count], "lastTransactionID": self._last_id(account)})

    async def pending_orders(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        orders = [o for o in self._all_orders(account) if o["state"] == "PENDING"]
        return _reply({"orders": orders, "lastTransactionID": self._last_id(account)})

    async def cancel_order(self, request: web.Request) -> web.Response:
        account, spec = request.match_info["account"], request.match_info["spec"]
        try:
            found = self._find(account, spec)
            if isinstance(found, dict) or found.status.is_terminal:
                raise UnknownOrder("not pending")
            report = self.exchange.cancel(account, found.client_order_id)
        except BrokerError:
            reject = self._record(account, {"type": "ORDER_CANCEL_REJECT", "orderID": spec,
                                            "rejectReason": "ORDER_DOESNT_EXIST"})  # fmt: skip
            return _error(404, wire.MESSAGES["ORDER_DOESNT_EXIST"], "ORDER_DOESNT_EXIST",
                          orderCancelRejectTransaction=reject,
                          relatedTransactionIDs=[reject["id"]], lastTransactionID=reject["id"])
        extra = self._extra_for(report)
        txn = next((t for t in self._txns(account, 0) if t["id"] == extra.cancelling_id), None)
        return _reply({"orderCancelTransaction": txn or {},
                       "relatedTransactionIDs": [extra.cancelling_id],
                       "lastTransactionID": self._last_id(account)})  # fmt: skip

    # ------------------------------------------------------------ trades and positions

    def _trades(self, account: str, only_open: bool) -> list[Json]:
        reports = self.exchange.orders(account)
        exits: dict[str, Decimal] = {}
        for o in reports:
            if o.leg is not OrderLeg.ENTRY and o.parent_client_order_id:
                parent = o.parent_client_order_id
                exits[parent] = exits.get(parent, Decimal(0)) + o.filled_quantity
        out = []
        for o in reports:
            extra = self._extra.get((account, o.client_order_id))
            if o.leg is not OrderLeg.ENTRY or o.filled_quantity == 0 or extra is None:
                continue
            left = o.filled_quantity - exits.get(o.client_order_id, Decimal(0))
            if only_open and left <= 0:
                continue
            out.append(self._trade_json(o, extra, left))
        return out

    def _trade_json(self, o: OrderReport, extra: OrderExtra, left: Decimal) -> Json:
        instrument = self._instrument(o.symbol)
        return {
            "id": extra.trade_id or "", "instrument": o.symbol,
            "price": wire.price_text(o.avg_fill_price or Decimal(0), instrument),
            "openTime": extra.filled_time or wire.rfc3339(o.updated_at),
            "state": "OPEN" if left > 0 else "CLOSED",
            "initialUnits": wire.units_text(o.filled_quantity, o.side),
            "currentUnits": wire.units_text(max(left, Decimal(0)), o.side),
            "realizedPL": "0.0000", "unrealizedPL": "0.0000", "financing": "0.0000",
            "clientExtensions": {"id": o.client_order_id},
        }  # fmt: skip

    async def list_trades(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        only_open = request.query.get("state", "OPEN") == "OPEN"
        return _reply({"trades": self._trades(account, only_open),
                       "lastTransactionID": self._last_id(account)})  # fmt: skip

    async def open_trades(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        return _reply({"trades": self._trades(account, True),
                       "lastTransactionID": self._last_id(account)})  # fmt: skip

    def _positions(self, account: str) -> list[Json]:
        out = []
        for p in self.exchange.positions(account):
            instrument = self._instrument(p.symbol)
            held = {"units": f"{p.quantity.normalize():f}",
                    "averagePrice": wire.price_text(p.avg_cost, instrument),
                    "unrealizedPL": f"{p.unrealized_pnl:.4f}", "pl": "0.0000"}  # fmt: skip
            flat = {"units": "0", "unrealizedPL": "0.0000", "pl": "0.0000"}
            long, short = (held, flat) if p.quantity > 0 else (flat, held)
            out.append({"instrument": p.symbol, "long": long, "short": short, "pl": "0.0000",
                        "unrealizedPL": f"{p.unrealized_pnl:.4f}",
                        "marginUsed": f"{self._margin(p.symbol, abs(p.market_value)):.4f}",
                        "financing": "0.0000", "commission": "0.0000"})  # fmt: skip
        return out

    async def list_positions(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        return _reply({"positions": self._positions(account),
                       "lastTransactionID": self._last_id(account)})  # fmt: skip

    async def open_positions(self, request: web.Request) -> web.Response:
        return await self.list_positions(request)

    # ------------------------------------------------------------ pricing

    def _factor(self, currency: str) -> Decimal:
        from brokers.sim import fx

        return fx.home_factor(currency, self.exchange.last_price, self.exchange.universe)

    async def pricing(self, request: web.Request) -> web.Response:
        pairs = self._pairs(request.query.get("instruments") or "EUR_USD")
        conversions = "includeHomeConversions" in request.query
        now = wire.rfc3339(_now())
        prices = []
        for pair in pairs:
            assert pair.fx is not None
            px = wire.price_text(self.exchange.last_price(pair.symbol), pair)
            price: Json = {"type": "PRICE", "instrument": pair.symbol, "time": now,
                           "status": "tradeable", "tradeable": True,
                           "bids": [{"price": px, "liquidity": 10000000}],
                           "asks": [{"price": px, "liquidity": 10000000}],
                           "closeoutBid": px, "closeoutAsk": px}  # fmt: skip
            if not conversions:
                factor = f"{self._factor(pair.fx.quote)}"
                price["quoteHomeConversionFactors"] = {"positiveUnits": factor,
                                                       "negativeUnits": factor}
            prices.append(price)
        body: Json = {"time": now, "prices": prices}
        if conversions:
            currencies = sorted({c for p in pairs if p.fx for c in (p.fx.base, p.fx.quote)})
            body["homeConversions"] = [
                {"currency": c, "accountGain": f"{self._factor(c)}",
                 "accountLoss": f"{self._factor(c)}", "positionValue": f"{self._factor(c)}"}
                for c in currencies
            ]  # fmt: skip
        return _reply(body)

    # ------------------------------------------------------------ transactions

    async def since_id(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        try:
            after = int(request.query["id"])
        except (KeyError, ValueError):
            raise BadRequest("Invalid value specified for 'id'") from None
        return _reply({"transactions": self._txns(account, after),
                       "lastTransactionID": self._last_id(account)})  # fmt: skip

    async def stream(self, request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        queue: asyncio.Queue[Json | None] = asyncio.Queue()
        self._streams.setdefault(account, set()).add(queue)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        try:
            await self._pump(account, queue, response)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._streams[account].discard(queue)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _pump(self, account: str, queue: asyncio.Queue[Json | None],
                    response: web.StreamResponse) -> None:  # fmt: skip
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), self.heartbeat_s)
            except TimeoutError:
                item = {"type": "HEARTBEAT", "lastTransactionID": self._last_id(account),
                        "time": wire.rfc3339(_now())}  # fmt: skip
            if item is None or self.faults.in_outage():
                return
            await self._unstalled()
            await response.write((json.dumps(item) + "\n").encode())


_ORDER_TYPES = {"MARKET": OrderType.MKT, "LIMIT": OrderType.LMT, "STOP": OrderType.STP}
_ON_FILL = {OrderLeg.TAKE_PROFIT: "takeProfitOnFill", OrderLeg.STOP_LOSS: "stopLossOnFill"}


def _tif(order_type: OrderType, tif: str) -> TimeInForce:
    """OANDA's time in force on the core's: a market order never rests (FOK / IOC -> IOC)."""
    if order_type is OrderType.MKT or tif in ("IOC", "FOK"):
        return TimeInForce.IOC
    return TimeInForce.DAY if tif == "GFD" else TimeInForce.GTC


def _on_fill_price(spec: Json, name: str) -> Decimal | None:
    details = spec.get(name)
    if not isinstance(details, dict) or "price" not in details:
        return None
    return _decimal(details["price"], f"order.{name}.price")


def _refine(code: str, spec: Json, instrument: Instrument | None) -> str:
    """The precise OANDA reason where the core's is coarser (which price, which units rule)."""
    if instrument is None or instrument.fx is None:
        return code
    pair = instrument.fx
    if code == "PRICE_PRECISION_EXCEEDED":
        for name, label in (("takeProfitOnFill", "TAKE_PROFIT_ON_FILL_"),
                            ("stopLossOnFill", "STOP_LOSS_ON_FILL_")):  # fmt: skip
            price = str((spec.get(name) or {}).get("price", ""))
            main_ok = wire.decimals(str(spec.get("price", ""))) <= pair.display_precision
            if wire.decimals(price) > pair.display_precision and main_ok:
                return label + code
    if code == "UNITS_INVALID":
        units = abs(_decimal(spec.get("units"), "order.units"))
        if units % pair.units_step:
            return "UNITS_PRECISION_EXCEEDED"
        if units < pair.minimum_trade_size:
            return "UNITS_MINIMUM_NOT_MET"
        if units > pair.maximum_order_units:
            return "UNITS_LIMIT_EXCEEDED"
    return code


def _fill_reason(extra: OrderExtra) -> str:
    return f"{extra.oanda_type}_ORDER"


def _cancel_reason(report: OrderReport) -> str:
    text = report.reason or ""
    if report.status is OrderStatus.EXPIRED:
        return "TIME_IN_FORCE_EXPIRED"
    if "OCA" in text or "parent" in text:
        return "LINKED_TRADE_CLOSED"
    if "IOC" in text:
        return "INSUFFICIENT_LIQUIDITY"
    return "CLIENT_REQUEST"


async def start_oanda_door(exchange: Any, host: str = "127.0.0.1", port: int = 0) -> OandaDoor:
    """The simulator process's OANDA door (the venue plugin's `simulator_door`)."""
    door = OandaDoor(exchange)
    await door.start(host, port)
    return door
