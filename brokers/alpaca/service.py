"""AlpacaOrderService: the OrderService port over alpaca-py's TradingClient and TradingStream.

TradingClient is synchronous (requests): each call runs on a small thread pool, one client
(one HTTP session) per thread, under the call's deadline (asyncio.timeout; the session's own
socket timeout frees the thread soon after). On expiry VenueTimeout (transient, "timeout").
alpaca-py's own retries (429 / 504, three times, 3 s apart, even for POST /orders) are turned
off: the adapter tries once, retrying is the stages' job.

Idempotency by client_order_id: Alpaca refuses a second order with one (422); a placement that
got no answer (timeout, connection cut) is looked up by client order id once before the call
gives up, and the next placement of that id looks it up before sending. Placements of one id
run one at a time.

Streamed updates plus polling: TradingStream (url_override) follows trade_updates on its own
thread and loop; what it says is a cache that answers status() for orders it saw finish (a
final state never changes) and resolves unanswered placements; everything else polls REST,
so a silent or dead stream costs speed, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.models import Order, TradeAccount
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.requests import GetOrderByIdRequest, GetOrdersRequest
from alpaca.trading.requests import OrderRequest as AlpacaOrderRequest
from alpaca.trading.stream import TradingStream

from brokers.exceptions import (
    BrokerError,
    DuplicateClientOrderId,
    NotCancellable,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
    VenueTimeout,
)
from brokers.port import (
    AccountKind,
    AccountSnapshot,
    FillReport,
    InstrumentRules,
    OrderReport,
    OrderRequest,
    Position,
)
from schemas.events import OrderLeg

from . import errors, mapping
from .mapping import ENTRY, LegRef
from .settings import AlpacaSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_RETRY = [-1]  # alpaca-py retries the HTTP codes listed; no response has this one
PAGE = 500  # Alpaca's largest page of orders
ACTIVITY_PAGE = 100  # and of account activities
LEG_WINDOW = timedelta(minutes=1)  # a bracket's legs are created with their parent
FILL_LOOKBACK = timedelta(days=30)  # how far back to look for the order of an unknown fill
TINY = timedelta(microseconds=1)


class _TimedSession(requests.Session):
    """A requests session whose every request has a socket timeout (alpaca-py sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", (self._timeout, self._timeout))
        return super().request(*args, **kwargs)


class _KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class AlpacaOrderService:
    """One Alpaca account; safe for any number of concurrent callers on one event loop."""

    venue = "alpaca"

    def __init__(self, settings: AlpacaSettings, timeout: float = 4.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.account_id = ""
        self.kind = AccountKind.PAPER if settings.paper else AccountKind.LIVE
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._placing = _KeyedLocks()
        self._placed: set[str] = set()  # client order ids this venue holds (ours, seen)
        self._doubtful: set[str] = set()  # placements that got no answer
        self._refs: dict[str, LegRef] = {}  # order id -> leg within its bracket
        self._streamed: dict[str, OrderReport] = {}  # client order id -> last streamed state
        self._stream: TradingStream | None = None
        self._stream_thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Open the pool, read the account (within the deadline), follow trade_updates."""
        self._loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.workers, "alpaca")
        account = await self._call("get_account", _account)
        self.account_id = account.account_number
        if self.settings.stream and self._stream is None:
            self._start_stream()

    async def close(self) -> None:
        """Stop the stream and the pool (threads still waiting on a socket finish on their
        own, within the session timeout)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await asyncio.to_thread(_stop_stream, stream)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _client(self) -> TradingClient:
        """This thread's client (a requests session is not shared between threads)."""
        client: TradingClient | None = getattr(self._local, "client", None)
        if client is None:
            s = self.settings
            client = TradingClient(s.api_key_id, s.api_secret_key.get_secret_value(),
                                   paper=s.paper, url_override=s.trading_url())  # fmt: skip
            client._retry_codes = NO_RETRY  # the adapter tries once; stages retry
            client._session = _TimedSession(self.timeout + 1)
            self._local.client = client
        return client

    async def _call(self, operation: str, request: Callable[[TradingClient], T]) -> T:
        """One REST call on the pool within the deadline; errors as port exceptions."""
        if self._pool is None:
            raise TransientBrokerError(f"Alpaca {operation}: not connected", code="not_connected")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                return await loop.run_in_executor(self._pool, lambda: request(self._client()))
        except TimeoutError as exc:
            raise VenueTimeout(operation, self.timeout, "Alpaca") from exc
        except APIError as exc:
            raise errors.from_api_error(exc, operation) from exc
        except (requests.RequestException, OSError) as exc:
            raise errors.unanswered(operation, exc) from exc

    # ------------------------------------------------------------ stream

    def _start_stream(self) -> None:
        s = self.settings
        stream = TradingStream(s.api_key_id, s.api_secret_key.get_secret_value(),
                               paper=s.paper, url_override=s.trade_stream_url())  # fmt: skip
        stream.subscribe_trade_updates(self._on_trade_update)
        thread = threading.Thread(target=stream.run, name="alpaca-stream", daemon=True)
        thread.start()
        self._stream, self._stream_thread = stream, thread

    async def _on_trade_update(self, update: Any) -> None:
        """On the stream's thread: hand the update to the service's loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._note_streamed, update.order)

    def _note_streamed(self, order: Order) -> None:
        ref = self._refs.get(str(order.id))
        mine = order.client_order_id in self._placed or order.client_order_id in self._doubtful
        if ref is None and not mine and mapping.is_multi_leg(order) and not order.legs:
            return  # maybe a leg of an order not placed here: what it is comes from polling
        report = mapping.order_report(order, self.account_id, ref or ENTRY)
        seen = self._streamed.get(report.client_order_id)
        if seen is None or seen.updated_at <= report.updated_at:
            self._streamed[report.client_order_id] = report

    # ------------------------------------------------------------ what an order is

    def _learn(self, order: Order) -> None:
        self._placed.add(order.client_order_id)
        for leg, ref in mapping.legs(order):
            self._refs[str(leg.id)] = ref
            self._placed.add(leg.client_order_id)

    async def _ref(self, order: Order) -> LegRef:
        """The order's leg: known, or (a bracket order not placed here) found by listing the
        brackets created around it."""
        self._learn(order)
        known = self._refs.get(str(order.id))
        if known is not None or not mapping.is_multi_leg(order) or order.legs:
            return known or ENTRY
        await self._brackets(order.created_at - LEG_WINDOW, order.created_at + LEG_WINDOW)
        return self._refs.get(str(order.id), ENTRY)

    async def _report(self, order: Order) -> OrderReport:
        return mapping.order_report(order, self.account_id, await self._ref(order))

    async def _brackets(self, after: datetime, until: datetime | None = None) -> list[Order]:
        """Every order created in (after, until), parents with their legs nested, oldest
        first; learns every leg on the way."""
        out: list[Order] = []
        seen: set[str] = set()
        while True:
            query = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=PAGE, after=after,
                                     until=until, direction="asc", nested=True)  # fmt: skip
            page: list[Order] = await self._call("get_orders", _orders(query))
            fresh = [o for o in page if str(o.id) not in seen]
            for order in fresh:
                seen.add(str(order.id))
                self._learn(order)
            out += fresh
            if len(page) < PAGE or not fresh:
                return out
            after = max(o.created_at for o in page) - TINY

    # ------------------------------------------------------------ placing

    async def place(self, order: OrderRequest) -> OrderReport:
        """Place once; DuplicateClientOrderId when Alpaca holds the id (asked first when an
        earlier placement of it went unanswered)."""
        coid = order.client_order_id
        request = mapping.order_request(order)
        async with self._placing.hold(coid):
            if coid in self._placed:
                raise DuplicateClientOrderId(f"client_order_id {coid} exists at Alpaca")
            if coid in self._doubtful and await self._find(coid) is not None:
                raise DuplicateClientOrderId(f"client_order_id {coid} exists at Alpaca")
            self._doubtful.add(coid)  # until answered: a cut-short call leaves it doubtful
            try:
                placed = await self._call("place", _submit(request))
            except DuplicateClientOrderId:
                self._doubtful.discard(coid)
                self._placed.add(coid)
                raise
            except TransientBrokerError as exc:
                if exc.code not in ("timeout", errors.UNANSWERED):
                    self._doubtful.discard(coid)  # answered: Alpaca did not take it
                    raise
                return await self._resolve_unanswered(coid, exc)
            except BrokerError:
                self._doubtful.discard(coid)
                raise
            self._doubtful.discard(coid)
            return await self._report(placed)

    async def _resolve_unanswered(self, coid: str, exc: TransientBrokerError) -> OrderReport:
        """No answer: the stream may have seen it; else ask once by client order id."""
        streamed = self._streamed.get(coid)
        if streamed is not None:
            self._doubtful.discard(coid)
            return streamed
        found = await self._find(coid)
        if found is None:
            raise exc
        self._doubtful.discard(coid)
        return await self._report(found)

    async def _find(self, coid: str) -> Order | None:
        """The order with this client order id, or None (404)."""
        try:
            found: Order = await self._call("status", _by_client_id(coid))
        except UnknownOrder:
            return None
        self._learn(found)
        return found

    # ------------------------------------------------------------ queries

    async def status(self, client_order_id: str) -> OrderReport:
        """The order now; a final state the stream reported needs no round trip."""
        streamed = self._streamed.get(client_order_id)
        if streamed is not None and streamed.status.is_terminal:
            return streamed
        found = await self._find(client_order_id)
        if found is None:
            raise UnknownOrder(f"no Alpaca order with client_order_id {client_order_id}")
        return await self._report(found)

    async def cancel(self, client_order_id: str) -> OrderReport:
        """Ask Alpaca to cancel (cancelling a bracket parent takes its exits along); the order
        after the request. NotCancellable when it is finished."""
        found = await self._find(client_order_id)
        if found is None:
            raise UnknownOrder(f"no Alpaca order with client_order_id {client_order_id}")
        current = await self._report(found)
        if current.status.is_terminal:
            raise NotCancellable(f"{client_order_id} is {current.status.value}")
        order_id = str(found.id)
        await self._call("cancel", _cancel(order_id))
        after: Order = await self._call("status", _order_by_id(order_id, nested=True))
        return await self._report(after)

    async def open_orders(self) -> list[OrderReport]:
        """Every working order, bracket exits included (each knows its leg)."""
        query = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=PAGE)
        page: list[Order] = await self._call("open_orders", _orders(query))
        return [await self._report(o) for o in page]

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        """Every order created at or after `since`, any status, exits included, oldest first."""
        out: list[OrderReport] = []
        for parent in await self._brackets(since - TINY):
            out.append(await self._report(parent))
            out += [mapping.order_report(leg, self.account_id, ref)
                    for leg, ref in mapping.legs(parent)]  # fmt: skip
        chosen = [r for r in out if r.created_at >= since]
        return sorted(chosen, key=lambda r: (r.created_at, r.leg is not OrderLeg.ENTRY))

    async def fills_since(self, since: datetime) -> list[FillReport]:
        """Every FILL activity at or after `since`, oldest first (paged by page_token)."""
        rows: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params = {
                "direction": "asc",
                "after": (since - TINY).isoformat(),
                "page_size": ACTIVITY_PAGE,
                **({"page_token": token} if token else {}),
            }
            page: Any = await self._call("fills", _get("/account/activities/FILL", params))
            page = list(page or [])
            rows += page
            if len(page) < ACTIVITY_PAGE:
                break
            token = str(page[-1]["id"])
        return await self._fills(rows, since)

    async def _fills(self, rows: list[dict[str, Any]], since: datetime) -> list[FillReport]:
        by_id = await self._orders_of(rows)
        out = []
        for row in rows:
            order = by_id.get(str(row["order_id"]))
            coid = order.client_order_id if order is not None else str(row["order_id"])
            ref = self._refs.get(str(row["order_id"]), ENTRY)
            fill = mapping.fill_report(row, self.account_id, coid, ref)
            if fill.executed_at >= since:
                out.append(fill)
        return sorted(out, key=lambda f: (f.executed_at, f.execution_id))

    async def _orders_of(self, rows: list[dict[str, Any]]) -> dict[str, Order]:
        """The orders behind fills: one listing of the brackets around them, then one call
        per order still unknown."""
        wanted = {str(r["order_id"]) for r in rows}
        if not wanted:
            return {}
        oldest = min(datetime.fromisoformat(str(r["transaction_time"]).replace("Z", "+00:00"))
                     for r in rows)  # fmt: skip
        by_id: dict[str, Order] = {}
        for parent in await self._brackets(oldest - FILL_LOOKBACK):
            by_id[str(parent.id)] = parent
            by_id.update((str(leg.id), leg) for leg in parent.legs or [])
        for order_id in wanted - by_id.keys():
            by_id[order_id] = await self._call("status", _order_by_id(order_id))
        return by_id

    async def account(self) -> AccountSnapshot:
        """Account figures now (account and positions asked at once)."""
        account, positions = await asyncio.gather(
            self._call("account", _account),
            self._call("positions", _positions),
        )
        return mapping.account_snapshot(account, positions, self.kind)

    async def instrument(self, symbol: str, borrow: bool = True) -> InstrumentRules | None:
        """The asset's rules as Alpaca publishes them (exact, from the raw JSON). Orders with
        exits need whole shares, so the lot is one share; a fractionable asset's smaller step
        is its quantity increment. The asset says whether it is shortable, whatever `borrow`
        says."""
        try:
            asset = await self._call("asset", _get(f"/assets/{symbol}", {}))
        except UnknownOrder as exc:  # a 404 here is an unknown asset, not an order
            raise OrderRejected(f"Alpaca knows no asset {symbol}", code=exc.code) from exc
        return mapping.instrument_rules(asset)

    async def positions(self) -> list[Position]:
        items = await self._call("positions", _positions)
        return [mapping.position(p, self.account_id) for p in items]


def _account(client: TradingClient) -> TradeAccount:
    return cast(TradeAccount, client.get_account())


def _positions(client: TradingClient) -> list[AlpacaPosition]:
    return cast(list[AlpacaPosition], client.get_all_positions())


def _orders(query: GetOrdersRequest) -> Callable[[TradingClient], list[Order]]:
    return lambda client: cast(list[Order], client.get_orders(query))


def _submit(request: AlpacaOrderRequest) -> Callable[[TradingClient], Order]:
    return lambda client: cast(Order, client.submit_order(request))


def _by_client_id(client_order_id: str) -> Callable[[TradingClient], Order]:
    return lambda client: cast(Order, client.get_order_by_client_id(client_order_id))


def _order_by_id(order_id: str, nested: bool = False) -> Callable[[TradingClient], Order]:
    query = GetOrderByIdRequest(nested=nested)
    return lambda client: cast(Order, client.get_order_by_id(order_id, query))


def _cancel(order_id: str) -> Callable[[TradingClient], None]:
    return lambda client: client.cancel_order_by_id(order_id)


def _get(path: str, params: dict[str, Any]) -> Callable[[TradingClient], Any]:
    return lambda client: client.get(path, params)


def _stop_stream(stream: TradingStream) -> None:
    """Stop the stream's loop and close its socket (stop alone waits for the next message)."""
    loop = getattr(stream, "_loop", None)
    if loop is None or not loop.is_running():
        return
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(stream.stop_ws(), loop).result(2)
        asyncio.run_coroutine_threadsafe(stream.close(), loop).result(2)


__all__ = ["AlpacaOrderService"]
