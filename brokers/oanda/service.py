"""OandaOrderService: the OrderService port over OANDA's official `v20` client.

The v20 client is synchronous (requests): every call runs in a small thread pool, one
v20.Context per thread (a requests Session is not shared between threads), under the
deadline (the Context's own timeout bounds the thread too). Transactions arrive on the
transactions stream (a background thread) and every answer carries lastTransactionID: when it
is ahead of what the stream delivered, `transactions/sinceid` catches up (the safety net).
Placement is idempotent on the client order id (clientExtensions.id): the id is looked up
(`orders/@id`) before any placement, one placement per id at a time; an unanswered placement
is looked up once more before giving up. The adapter tries once: retrying is the stages' job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

from brokers.exceptions import (
    BrokerError,
    DuplicateClientOrderId,
    NotCancellable,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
    VenueTimeout,
)
from brokers.ib.flights import KeyedLocks
from brokers.port import (
    AccountKind,
    AccountSnapshot,
    FillReport,
    InstrumentRules,
    OrderReport,
    OrderRequest,
    Position,
)
from schemas.events import OrderLeg, Side

from . import errors, mapping
from .mapping import Json

log = logging.getLogger(__name__)
HISTORY = 5000  # transactions read back at connect (fills_since looks no further back)
PAGE = 1000
STREAM_RETRY_S = 1.0


def _v20() -> Any:
    import v20

    return v20


class OandaOrderService:
    """One OANDA v20 account (or the simulator's OANDA door); safe for concurrent callers."""

    venue = "oanda"

    def __init__(
        self, host: str, port: int, token: str, account_id: str = "", *, ssl: bool = True,
        stream_host: str = "", timeout: float = 4.0, kind: AccountKind = AccountKind.PAPER,
        workers: int = 8, stream: bool = True,
    ) -> None:  # fmt: skip
        self.host, self.port, self.ssl = host, port, ssl
        self.stream_host = stream_host or host
        self.account_id = account_id
        self.timeout = timeout
        self.kind = kind
        self.lib = _v20()
        self._token = token
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="oanda")
        self._local = threading.local()
        self._placing = KeyedLocks()
        self._catching = asyncio.Lock()
        self._seen = 0  # highest transaction id taken in
        self._fills: dict[str, list[Json]] = {}  # order id -> ORDER_FILL transactions
        self._fill_list: list[Json] = []
        self._cancels: dict[str, str] = {}  # order id -> ORDER_CANCEL reason
        self._trades: dict[str, tuple[str, Side, Decimal, str]] = {}  # trade id -> entry
        self._leg_of: dict[str, tuple[OrderLeg, str | None]] = {}  # order id -> leg, parent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = threading.Event()
        self._streaming = stream
        self._stream_thread: threading.Thread | None = None
        self._connected = False

    # ------------------------------------------------------------ plumbing

    def _context(self, stream: bool = False) -> Any:
        return self.lib.Context(
            self.stream_host if stream else self.host, self.port, ssl=self.ssl,
            token=self._token, decimal_number_as_float=False, poll_timeout=self.timeout,
            stream_timeout=max(self.timeout, 15.0), application="jax-exec",
        )  # fmt: skip

    def _ctx(self) -> Any:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = self._context()
        return ctx

    async def _call(self, what: str, request: Callable[[Any], Any], ok: tuple[int, ...] = (200,)
                    ) -> Json:  # fmt: skip
        """One v20 request in the pool under the deadline; the JSON body, or the port's error."""
        loop = asyncio.get_running_loop()

        def run() -> tuple[int, str]:
            response = request(self._ctx())
            return int(response.status), str(response.raw_body or "{}")

        try:
            async with asyncio.timeout(self.timeout):
                status, raw = await loop.run_in_executor(self._pool, run)
        except TimeoutError as exc:
            raise VenueTimeout(what, self.timeout, "OANDA") from exc
        except (self.lib.V20ConnectionError, self.lib.V20Timeout, OSError) as exc:
            raise errors.connection_error(what, exc) from exc
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = {"errorMessage": raw[:200]}
        if status not in ok:
            raise errors.from_response(status, body, what)
        self._take(body)
        return dict(body)

    # ------------------------------------------------------------ transactions

    def _take(self, body: Json) -> None:
        """Transactions an answer carries (a create's fill or cancel), taken in at once."""
        for key in ("orderFillTransaction", "orderCancelTransaction"):
            txn = body.get(key)
            if isinstance(txn, dict):
                self._ingest(txn, advance=False)

    def _ingest(self, txn: Json, advance: bool = True) -> None:
        kind = txn.get("type")
        order_id = str(txn.get("orderID", ""))
        known = self._fills.get(order_id, [])
        if kind == "ORDER_FILL" and all(f["id"] != txn["id"] for f in known):
            self._fills.setdefault(order_id, []).append(txn)
            self._fill_list.append(txn)
            opened = txn.get("tradeOpened") or {}
            if opened.get("tradeID"):
                units = mapping.dec(opened.get("units"))
                side = Side.BUY if units > 0 else Side.SELL
                entry = str(txn.get("clientOrderID") or order_id)
                symbol = str(txn.get("instrument", ""))
                self._trades[str(opened["tradeID"])] = (entry, side, abs(units), symbol)
        elif kind == "ORDER_CANCEL":
            self._cancels[order_id] = str(txn.get("reason", ""))
        if advance and txn.get("id", "").isdigit():
            self._seen = max(self._seen, int(txn["id"]))

    async def _catch_up(self, last: Any = None) -> None:
        """Read transactions since the last one taken in, when the venue is ahead of us."""
        if last is not None and str(last).isdigit() and int(last) <= self._seen:
            return
        async with self._catching:
            while True:
                body = await self._call("transactions since id", self._since(self._seen))
                txns = body.get("transactions") or []
                for txn in txns:
                    self._ingest(txn)
                if len(txns) < PAGE:
                    return

    def _since(self, seen: int) -> Callable[[Any], Any]:
        return lambda c: c.transaction.since(self.account_id, id=seen)

    def _stream_forever(self) -> None:
        """The transactions stream, reconnected until close(); heartbeats keep it alive."""
        while not self._closing.is_set():
            try:
                ctx = self._context(stream=True)
                response = ctx.transaction.stream(self.account_id)
                for kind, item in response.parts():
                    if self._closing.is_set():
                        return
                    if kind == "transaction.Transaction":
                        self._deliver(item.dict())
            except Exception as exc:  # the stream is the fast path; polling covers gaps
                log.debug("OANDA transactions stream ended: %r", exc)
            self._closing.wait(STREAM_RETRY_S)

    def _deliver(self, txn: Json) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._ingest, txn)

    # ------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Find the account (the token's first unless configured), read recent transactions,
        start the stream."""
        self._loop = asyncio.get_running_loop()
        self._closing.clear()
        if not self.account_id:
            body = await self._call("accounts", lambda c: c.account.list())
            accounts = body.get("accounts") or []
            if not accounts:
                raise OrderRejected("OANDA: the token has no account", code="NO_ACCOUNT")
            self.account_id = str(accounts[0]["id"])
        if not self._connected:
            summary = await self._call("summary", lambda c: c.account.summary(self.account_id))
            last = int(summary.get("lastTransactionID") or 0)
            self._seen = max(self._seen, last - HISTORY, 0)
            await self._catch_up()
            self._connected = True
        if self._streaming and (self._stream_thread is None or not self._stream_thread.is_alive()):
            self._stream_thread = threading.Thread(
                target=self._stream_forever, name="oanda-stream", daemon=True
            )
            self._stream_thread.start()

    async def close(self) -> None:
        self._closing.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _ready(self) -> None:
        if not self._connected:
            await self.connect()

    # ------------------------------------------------------------ orders

    async def _order(self, client_order_id: str) -> Json | None:
        """GET orders/@id: the order, or None when OANDA has none with this client id."""
        try:
            body = await self._call(
                f"order @{client_order_id}",
                lambda c: c.order.get(self.account_id, f"@{client_order_id}"),
            )
        except UnknownOrder:
            return None
        await self._catch_up(body.get("lastTransactionID"))
        order = body.get("order")
        return order if isinstance(order, dict) else None

    def _report(self, order: Json) -> OrderReport:
        order_id = str(order["id"])
        parent = self._trades.get(str(order.get("tradeID", "")))
        return mapping.order_report(
            order, self.account_id, self._fills.get(order_id, []), parent,
            self._cancels.get(order_id),
        )  # fmt: skip

    async def _pending_exit(self, client_order_id: str) -> OrderReport | None:
        """A bracket exit OANDA has not created yet: its entry carries it in ...OnFill."""
        body = await self._call(
            "orders", lambda c: c.order.list(self.account_id, state="ALL", count=500)
        )
        for entry in body.get("orders") or []:
            for leg, key in mapping.ON_FILL.items():
                details = entry.get(key) or {}
                if (details.get("clientExtensions") or {}).get("id") == client_order_id:
                    reason = self._cancels.get(str(entry["id"]))
                    return mapping.pending_exit(entry, self.account_id, leg, reason)
        return None

    async def place(self, order: OrderRequest) -> OrderReport:
        """Place once; DuplicateClientOrderId when OANDA has an order with this client id."""
        await self._ready()
        ref = order.client_order_id
        try:
            async with self._placing.hold(ref, wait=self.timeout):
                return await self._place_once(order)
        except TimeoutError as exc:
            raise VenueTimeout(f"place {ref} (an earlier placement still running)",
                               self.timeout, "OANDA") from exc  # fmt: skip

    async def _place_once(self, order: OrderRequest) -> OrderReport:
        ref = order.client_order_id
        existing = await self._order(ref)
        if existing is not None and self._report(existing).status.name != "REJECTED":
            raise DuplicateClientOrderId(f"OANDA has an order with client id {ref}")
        body = mapping.order_body(order)
        try:
            answer = await self._call(
                f"place {ref}", lambda c: c.order.create(self.account_id, order=body), ok=(201,)
            )
        except VenueTimeout:
            found = await self._order(ref)  # the placement may have landed: look once
            if found is None:
                raise
            return self._report(found)
        self._refused_at_birth(answer, ref)
        found = await self._order(ref)
        if found is None:
            raise TransientBrokerError(f"OANDA placed {ref} but does not show it yet")
        return self._report(found)

    @staticmethod
    def _refused_at_birth(answer: Json, ref: str) -> None:
        """A create OANDA cancelled at once for want of margin (or the like) is a refusal."""
        cancel = answer.get("orderCancelTransaction") or {}
        reason = str(cancel.get("reason", ""))
        if "orderFillTransaction" not in answer and reason in errors.REFUSING_CANCELS:
            raise OrderRejected(f"OANDA cancelled {ref} at once: {reason}", code=reason)

    async def status(self, client_order_id: str) -> OrderReport:
        await self._ready()
        found = await self._order(client_order_id)
        if found is not None:
            return self._report(found)
        pending = await self._pending_exit(client_order_id)
        if pending is None:
            raise UnknownOrder(f"no OANDA order with client id {client_order_id}")
        return pending

    async def cancel(self, client_order_id: str) -> OrderReport:
        current = await self.status(client_order_id)
        if current.status.is_terminal:
            raise NotCancellable(f"{client_order_id} is {current.status.value}")
        try:
            await self._call(
                f"cancel {client_order_id}",
                lambda c: c.order.cancel(self.account_id, f"@{client_order_id}"),
            )
        except UnknownOrder:
            after = await self.status(client_order_id)
            if after.status.is_terminal:
                raise NotCancellable(f"{client_order_id} is {after.status.value}") from None
            raise
        return await self.status(client_order_id)

    async def open_orders(self) -> list[OrderReport]:
        await self._ready()
        body = await self._call("pending orders", lambda c: c.order.list_pending(self.account_id))
        await self._catch_up(body.get("lastTransactionID"))
        return [self._report(o) for o in body.get("orders") or []]

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        await self._ready()
        body = await self._call(
            "orders", lambda c: c.order.list(self.account_id, state="ALL", count=500)
        )
        await self._catch_up(body.get("lastTransactionID"))
        orders = body.get("orders") or []
        reports = [self._report(o) for o in orders]
        reports += self._exits_to_come(orders, {r.client_order_id for r in reports})
        chosen = [r for r in reports if r.created_at >= since]
        return sorted(chosen, key=lambda r: (r.created_at, r.venue_order_id))

    def _exits_to_come(self, orders: list[Json], known: set[str]) -> list[OrderReport]:
        """Bracket exits sent as an entry's ...OnFill that OANDA has not created (yet)."""
        out = []
        for entry in orders:
            for leg, key in mapping.ON_FILL.items():
                child = ((entry.get(key) or {}).get("clientExtensions") or {}).get("id")
                if child and child not in known:
                    reason = self._cancels.get(str(entry["id"]))
                    out.append(mapping.pending_exit(entry, self.account_id, leg, reason))
        return out

    # ------------------------------------------------------------ account

    async def account(self) -> AccountSnapshot:
        await self._ready()
        body = await self._call("summary", lambda c: c.account.summary(self.account_id))
        return mapping.account_snapshot(body["account"], self.kind)

    async def _prices(self, symbols: list[str]) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        """Mid prices by instrument and home conversion factors (accountLoss) by currency."""
        body = await self._call(
            "pricing", lambda c: c.pricing.get(
                self.account_id, instruments=",".join(symbols), includeHomeConversions=True),
        )  # fmt: skip
        prices = {}
        for p in body.get("prices") or []:
            bid, ask = (p.get("bids") or [{}])[0], (p.get("asks") or [{}])[0]
            prices[str(p["instrument"])] = (mapping.dec(bid.get("price")) + mapping.dec(
                ask.get("price"))) / 2  # fmt: skip
        factors = {str(h["currency"]): mapping.dec(h.get("accountLoss"))
                   for h in body.get("homeConversions") or []}  # fmt: skip
        return prices, factors

    async def positions(self) -> list[Position]:
        await self._ready()
        body = await self._call("positions", lambda c: c.position.list_open(self.account_id))
        held = body.get("positions") or []
        if not held:
            return []
        prices, factors = await self._prices([str(p["instrument"]) for p in held])
        out = []
        for pos in held:
            name = str(pos["instrument"])
            quote = name.partition("_")[2]
            out.append(mapping.position(pos, self.account_id, prices.get(name, Decimal(0)),
                                        factors.get(quote, Decimal(1))))  # fmt: skip
        return out

    async def fills_since(self, since: datetime) -> list[FillReport]:
        await self._ready()
        await self._catch_up()
        out = []
        for txn in list(self._fill_list):
            when = mapping.when(txn.get("time"))
            if when < since:
                continue
            leg, parent = self._fill_leg(txn)
            out.append(mapping.fill_report(txn, self.account_id, leg, parent))
        return sorted(out, key=lambda f: (f.executed_at, int(f.execution_id)))

    def _fill_leg(self, txn: Json) -> tuple[OrderLeg, str | None]:
        """An exit's fill closes a trade: its leg from the fill's reason, its parent the entry
        that opened the trade."""
        reason = str(txn.get("reason", ""))
        leg = {"TAKE_PROFIT_ORDER": OrderLeg.TAKE_PROFIT,
               "STOP_LOSS_ORDER": OrderLeg.STOP_LOSS}.get(reason, OrderLeg.ENTRY)  # fmt: skip
        if leg is OrderLeg.ENTRY:
            return leg, None
        closed = (txn.get("tradesClosed") or [{}])[0]
        entry = self._trades.get(str(closed.get("tradeID", "")))
        return leg, entry[0] if entry else None

    async def instrument(self, symbol: str, borrow: bool = True) -> InstrumentRules | None:
        """Precision, units step, minimum and maximum from OANDA, with the quote currency's
        home conversion factor (accountLoss) for sizing. `borrow` changes nothing: a pair is
        sold short without a borrow."""
        await self._ready()
        try:
            body = await self._call(
                f"instrument {symbol}",
                lambda c: c.account.instruments(self.account_id, instruments=symbol),
            )
        except OrderRejected as exc:
            if exc.code == "400":
                raise OrderRejected(f"OANDA: unknown instrument {symbol}",
                                    code="INSTRUMENT_UNKNOWN") from exc  # fmt: skip
            raise
        found = [i for i in body.get("instruments") or [] if i.get("name") == symbol]
        if not found:
            raise OrderRejected(f"OANDA: unknown instrument {symbol}", code="INSTRUMENT_UNKNOWN")
        _, factors = await self._prices([symbol])
        factor = factors.get(symbol.partition("_")[2])
        return mapping.instrument_rules(found[0], factor)


__all__ = ["BrokerError", "OandaOrderService"]
