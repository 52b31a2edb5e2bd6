"""IbOrderService: the OrderService port over an IB client library (ib_async by default,
ib_insync injectable).

One IB client is shared by every caller of the service (sizing, submission, reconciliation),
so what the library cannot do concurrently is serialized here (flights.py: the fixed-key
requests) and every library call has a deadline: on expiry VenueTimeout (transient, code
"timeout") and the session is dropped, because an unanswered fixed-key request would hand its
late answer to the next caller; the next call reconnects. The adapter tries once: retrying is
the stages' job. orderRef carries the client order id, which makes placement idempotent: an
unanswered placement is looked up at the venue, and placing that id again looks it up first."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from types import ModuleType
from typing import Any, TypeVar

from brokers.exceptions import (
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
from schemas.events import OrderLeg, OrderStatus

from . import errors, mapping
from .flights import Coalescer, KeyedLocks
from .session_index import SessionIndex

log = logging.getLogger(__name__)
# A wait for the venue's answer wakes on the library's events (order status, open order,
# execution, error, disconnect); it also looks again at least this often, in case an answer
# arrives by a path that raises none of them.
RECHECK_S = 0.1
REPORTS_HELD = 100_000  # built order reports kept for reuse (about 2 KiB each)
T = TypeVar("T")

# wrapper.startReq keys that are fixed names, not request ids (ib_async/ib.py, ib_insync/ib.py)
OPEN_ORDERS, COMPLETED_ORDERS, ACCOUNT_VALUES, POSITIONS = (
    "openOrders", "completedOrders", "accountValues", "positions",
)  # fmt: skip
FIXED_KEYS = (OPEN_ORDERS, COMPLETED_ORDERS, ACCOUNT_VALUES, POSITIONS)


def _default_lib() -> ModuleType:
    import ib_async

    return ib_async


# A placement is answered, or looked up after no answer, within this many adapter deadlines
# (plugin.build gives the adapter this share of the stages' deadline per venue call).
PLACEMENT_DEADLINES = 3


class IbOrderService:
    """One IB account through TWS / IB Gateway (or the simulator's TWS front door); safe for
    any number of concurrent callers on one event loop."""

    venue = "ib"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 7497, client_id: int = 1, account: str = "",
        ib_module: ModuleType | None = None, timeout: float = 4.0, attempts: int | None = None,
        full_read_seconds: float = 0.0, full_read_share: float = 1.0,
        full_read_max_seconds: float = 60.0,
    ) -> None:  # fmt: skip
        """`timeout`: the deadline of each venue call, in seconds. `attempts` is ignored
        (deprecated): the adapter tries once, the stages retry. `full_read_seconds`: how
        long a full read of open or completed orders / executions (all clients: its cost
        grows with the day) serves at least; in between, TWS's pushes to this client keep the
        library's state of its own orders and executions current, and that state answers
        (0: always ask). A full read that took t s serves for t / `full_read_share` when that
        is longer, up to `full_read_max_seconds`: the reads take at most that share of the
        session's time, however many orders the day holds."""
        del attempts
        self.full_read_seconds = full_read_seconds
        self.full_read_share = full_read_share
        self.full_read_max_seconds = max(full_read_max_seconds, full_read_seconds)
        # request -> (when it was asked, its answer, how long that answer serves)
        self._full_reads: dict[str, tuple[float, list[Any], float]] = {}
        self._longest_serve = full_read_seconds  # the longest any full read served
        self.host, self.port, self.client_id, self.account_id = host, port, client_id, account
        self.lib = ib_module or _default_lib()
        self.timeout = timeout
        self.ib: Any = self.lib.IB()
        self.ib.errorEvent += self._on_error
        self._order_errors: dict[int, tuple[int, str]] = {}
        self._contracts: dict[str, Any] = {}
        self._rules: dict[str, InstrumentRules] = {}
        self._outage = False
        self._closing = False
        self._completed_at: dict[int, datetime] = {}
        self._flights = Coalescer()
        self._connect_lock = asyncio.Lock()
        self._placing = KeyedLocks()  # one placement per client order id at a time
        self._qualifying = KeyedLocks()  # one contract look-up per symbol at a time
        self._doubtful: set[str] = set()  # refs whose placement went unanswered
        self._abandoned: set[int] = set()  # order ids given up on after no answer
        self._keep_completed_times()
        self._moved = asyncio.Event()  # set when the library hears anything about orders
        # (id(trade), created) -> (the trade, what its report was built from, the report)
        self._reports: dict[tuple[int, datetime | None],
                            tuple[Any, tuple[Any, ...], OrderReport]] = {}
        self._fill_reports: dict[str, tuple[tuple[Any, ...], FillReport]] = {}  # by execId
        # the session's trades and fills, read without walking the finished past
        self._session = SessionIndex(self._mine, self._created_at)
        for event in (self.ib.orderStatusEvent, self.ib.openOrderEvent,
                      self.ib.execDetailsEvent, self.ib.errorEvent, self.ib.disconnectedEvent):
            event += self._nudge

    # ------------------------------------------------------------ connection

    def _on_error(self, req_id: int, code: int, message: str, *_: Any) -> None:
        """Record order errors by order id and track connectivity (1100 / 1101 / 1102)."""
        if code == errors.CONNECTION_LOST:
            self._outage = True
            self.read_afresh()  # pushes may be missed: the next read asks TWS
        elif code in errors.CONNECTION_RESTORED:
            self._outage = False
            self.read_afresh()
        if req_id > 0 and errors.classify(code) is not errors.ErrorKind.INFORMATIONAL:
            self._order_errors[req_id] = (code, message)

    async def connect(self) -> None:
        """Connect once (no retry) with the configured client id, within the deadline."""
        self._closing = False
        try:
            async with asyncio.timeout(self.timeout), self._connect_lock:
                if self.ib.isConnected():
                    return
                async with self._flights.exclusive(FIXED_KEYS):
                    await self._open_session()
        except TimeoutError as exc:
            raise VenueTimeout("connect", self.timeout, "IB") from exc
        except OSError as exc:  # refused, reset, ConnectionError
            raise TransientBrokerError(f"IB connect failed: {exc!r}", code="502") from exc

    async def _open_session(self) -> None:
        self.ib.disconnect()
        await self.ib.connectAsync(
            self.host, self.port, clientId=self.client_id, timeout=self.timeout,
            account=self.account_id,
        )  # fmt: skip
        if not self.ib.isConnected():
            raise ConnectionError("IB connection dropped during start-up")
        if not self.account_id:
            self.account_id = self.ib.managedAccounts()[0]
        self._outage = False
        self.read_afresh()  # a new session: the first reads ask TWS

    def _drop_session(self, why: str) -> None:
        """Disconnect, failing every pending request as a socket loss would (an explicit
        disconnect alone leaves the library's futures pending forever)."""
        if not self.ib.client.isConnected():
            return
        log.warning("IB session dropped: %s", why)
        self.ib.wrapper.connectionClosed()
        self.ib.disconnect()

    async def close(self) -> None:
        """Disconnect."""
        self._closing = True
        self.ib.disconnect()

    async def _ready(self) -> None:
        """Connected (not mid-connect) and out of any outage, or TransientBrokerError."""
        if self._connect_lock.locked() or not self.ib.isConnected():
            await self.connect()
        if self._outage:
            await self._wait(lambda: not self._outage)
            if self._outage:
                raise TransientBrokerError("IB connectivity lost (1100)", code="1100")

    async def _call(
        self, operation: str, request: Callable[[], Awaitable[T]], key: str | None = None
    ) -> T:
        """One library request within the deadline; a fixed-key request through the
        coalescer (waiting for the key counts against the deadline)."""
        try:
            async with asyncio.timeout(self.timeout):
                if key is None:
                    return await request()
                return await self._flights.run(key, request)
        except TimeoutError as exc:
            self._drop_session(f"{operation} unanswered for {self.timeout:g}s")
            raise VenueTimeout(operation, self.timeout, "IB") from exc
        except ConnectionError as exc:
            raise TransientBrokerError(f"IB {operation}: {exc}", code="504") from exc

    def _nudge(self, *_: Any) -> None:
        self._moved.set()

    async def _wait(self, done: Callable[[], bool], limit: float | None = None) -> bool:
        """Until `done()` or timeout, looking again whenever the library hears of an order
        (no polling); False if the session ends. Clearing the flag right after `done()` says
        no, with no await between, loses no answer: one that came before is in `done()`."""
        loop = asyncio.get_running_loop()
        end = loop.time() + (self.timeout if limit is None else limit)
        while not done():
            now = loop.time()
            if now >= end or not self.ib.isConnected():
                return bool(done())
            self._moved.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(end - now, RECHECK_S)):
                    await self._moved.wait()
        return True

    def _keep_completed_times(self) -> None:
        """Note each completed order's time by permId as the client library decodes it: both
        libraries build the completed Trade without the OrderState that carries completedTime.
        An order whose time is unreadable is dated when this adapter first hears of it."""
        wrapper = self.ib.wrapper
        decoded = wrapper.completedOrder

        def completed_order(contract: Any, order: Any, order_state: Any) -> None:
            if order.permId:
                when = mapping.ib_datetime(getattr(order_state, "completedTime", ""))
                first = self._completed_at.get(order.permId)
                self._completed_at[order.permId] = when or first or datetime.now(UTC)
            decoded(contract, order, order_state)

        wrapper.completedOrder = completed_order

    # ------------------------------------------------------------ venue requests

    @property
    def orders_shown_within(self) -> timedelta:
        """How long after its creation time an order may first show (agents.venue_view reads
        that far back): another client's at the next full read (a completed one is dated by
        its completion, up to the longest a full read has served before), ours once the
        venue acknowledges it (_at_venue): a placement's answer comes within the adapter's
        deadline, or its look-up after no answer within two more (the session's readiness,
        then the scan), all within the stage's deadline for the call (plugin.build)."""
        return timedelta(seconds=self._longest_serve + PLACEMENT_DEADLINES * self.timeout)

    def read_afresh(self) -> None:
        """The next read of each kind asks TWS (all clients), as after a lost connection:
        another process's orders (one whose partitions this process now holds) are not in
        this session's pushed state until then."""
        self._full_reads.clear()

    async def _open_trades(self, fresh: bool = False) -> list[Any]:
        """reqAllOpenOrders (fixed key "openOrders"), at most every `full_read_seconds`: in
        between, the session's live trades the venue acknowledged (this client's as TWS
        pushes their status, not a placement still in flight: see _at_venue; other
        clients' as the last full read saw them: an order of theirs that ended since still
        counts as open, never the reverse; one placed since shows at the next full read).
        A read served from pushed state returns at once, so a caller that learns of an
        order's progress elsewhere (another stage's answer) while it works may hold an older
        report: reconciliation judges a report by what it knew when it read."""
        if not fresh and self._full_read("open") is not None:
            return [t for t in self._indexed().open_trades() if self._at_venue(t)]
        asked = time.monotonic()
        trades: list[Any] = await self._call(
            "reqAllOpenOrders", self.ib.reqAllOpenOrdersAsync, OPEN_ORDERS
        )
        self._served("open", asked, [])
        return trades

    async def _completed_trades(self, fresh: bool = False) -> list[Any]:
        """reqCompletedOrders (fixed key "completedOrders"), at most every
        `full_read_seconds`: the library keeps every trade it decoded (ib.trades()), and
        TWS pushes this client's order status as it changes."""
        held = None if fresh else self._full_read("completed")
        if held is not None:
            return held
        asked = time.monotonic()
        trades: list[Any] = await self._call(
            "reqCompletedOrders", lambda: self.ib.reqCompletedOrdersAsync(False), COMPLETED_ORDERS
        )
        self._served("completed", asked, trades)
        return trades

    async def _executions(self) -> list[Any]:
        """reqExecutions (a fresh reqId each: concurrent requests are fine). fills_since asks
        at most every `full_read_seconds`; in between it reads the session's fills (everything
        the last full read returned, plus the executions TWS pushed since, with their
        commissions)."""
        asked = time.monotonic()
        fills: list[Any] = await self._call("reqExecutions", self.ib.reqExecutionsAsync)
        self._served("executions", asked, [])
        return fills

    def _served(self, request: str, asked: float, answer: list[Any]) -> None:
        """Keep a full read's answer: it serves `full_read_seconds`, or longer when it took
        long (its time over `full_read_share`: TWS sends, and the library decodes, every
        open order, each bracket's resting exits included, and every completed order and
        execution of the day), up to `full_read_max_seconds`."""
        now = time.monotonic()
        took = (now - asked) / self.full_read_share if self.full_read_seconds > 0 else 0.0
        serves = min(max(self.full_read_seconds, took), self.full_read_max_seconds)
        self._full_reads[request] = (now, answer, serves)
        self._longest_serve = max(self._longest_serve, serves)

    def _full_read(self, request: str) -> list[Any] | None:
        """The answer of the last full read of `request` while it still serves."""
        held = self._full_reads.get(request)
        if held is None or time.monotonic() - held[0] >= held[2]:
            return None
        return held[1]

    async def _refresh_account(self) -> None:
        """reqAccountUpdates (fixed key "accountValues"), with the portfolio cleared just
        before sending so a position gone flat does not linger."""

        def request() -> Awaitable[Any]:
            portfolio = getattr(self.ib.wrapper, "portfolio", None)
            if portfolio is not None and self.account_id in portfolio:
                portfolio[self.account_id].clear()
            return self.ib.reqAccountUpdatesAsync(self.account_id)

        await self._call("reqAccountUpdates", request, ACCOUNT_VALUES)

    # ------------------------------------------------------------ look-ups

    def _never_placed(self, trade: Any) -> bool:
        """Refused before the venue took it (no permId, and an error on its id or given up
        on after no answer): not an order."""
        order = trade.order
        return not order.permId and (
            order.orderId in self._order_errors or order.orderId in self._abandoned
        )

    @staticmethod
    def _at_venue(trade: Any) -> bool:
        """Acknowledged by the venue (a permId): an order it has. A placement still in flight
        is not one yet, and may never be (a refusal, even a transient one, may follow): an
        answer that showed it would have reconciliation publish an order the venue never took,
        and have the venue snapshot count it as placed (releasing its reservation) until the
        refusal hid it again, while the stage was still retrying it. A full read
        (reqAllOpenOrders) never shows one either."""
        return bool(trade.order.permId)

    def _local_trades(self, ref: str) -> list[Any]:
        return [t for t in self._indexed().with_ref(ref) if not self._never_placed(t)]

    def _indexed(self) -> SessionIndex:
        """The session's trades and fills, brought up to date (brokers/ib/session_index.py)."""
        self._session.sync(self.ib.wrapper)
        return self._session

    def _mine(self, trade: Any) -> bool:
        """An order of this adapter's account (one without an account is taken as ours)."""
        return bool((trade.order.account or self.account_id) == self.account_id)

    def _report(self, trade: Any, created: datetime | None = None) -> OrderReport:
        """A trade's report, with its status decided by error codes where IB sent one (and
        dated `created` when given); built again only when something it is built from
        changed: a snapshot reports every open order and every order of the last minutes, and
        most are unchanged since the last read."""
        code_msg = self._order_errors.get(trade.order.orderId) if trade.order.orderId else None
        order, st = trade.order, trade.orderStatus
        version = (st.status, st.filled, st.remaining, st.avgFillPrice, len(trade.fills),
                   len(trade.log), order.permId, order.totalQuantity, order.lmtPrice,
                   order.auxPrice, order.account, order.orderRef, order.tif, order.orderType,
                   code_msg)
        key = (id(trade), created)
        held = self._reports.get(key)
        if held is not None and held[0] is trade and held[1] == version:
            return held[2]
        report = self._build_report(trade, code_msg)
        if created is not None:
            updated = max(report.updated_at, created)
            report = report.model_copy(update={"created_at": created, "updated_at": updated})
        if len(self._reports) >= REPORTS_HELD:
            self._reports.clear()  # bounded: a full read of completed orders brings new objects
        self._reports[key] = (trade, version, report)
        return report

    def _build_report(self, trade: Any, code_msg: tuple[int, str] | None) -> OrderReport:
        if code_msg is not None and trade.orderStatus.status not in ("Filled",):
            code, text = code_msg
            if code == errors.CANCELLED_CODE:
                return mapping.trade_to_report(trade, self.account_id, OrderStatus.CANCELLED, text)
            if errors.is_order_rejection(code):
                reason = f"IB error {code}: {text}"
                return mapping.trade_to_report(trade, self.account_id, OrderStatus.REJECTED, reason)
        return mapping.trade_to_report(trade, self.account_id)

    def _best(self, trades: list[Any]) -> Any | None:
        """Of several trades with one orderRef, the live one, else the latest."""
        if not trades:
            return None
        live = [t for t in trades if not t.isDone()]
        return (live or trades)[-1]

    def _acknowledged(self, ref: str) -> Any | None:
        """The best trade with this orderRef that the venue has acknowledged (a permId)."""
        return self._best([t for t in self._local_trades(ref) if self._at_venue(t)])

    async def _scan(self, ref: str) -> Any | None:
        """Ask the venue: open orders, completed orders, then executions, for this orderRef;
        the trade the venue knows, if any. Always asked of TWS (never the pushed state: a
        placement whose answer was lost is exactly what the pushed state may miss)."""
        await self._open_trades(fresh=True)
        await self._completed_trades(fresh=True)
        found = self._acknowledged(ref)
        if found is None:
            fills = await self._executions()
            if any(f.execution.orderRef == ref for f in fills):
                found = self._best(self._local_trades(ref))
        return found

    async def _find(self, ref: str, *, remote: bool) -> Any | None:
        """The session's trade for this orderRef; with `remote`, the venue's when the session
        has none, or has only a placement that was never answered."""
        found = self._best(self._local_trades(ref))
        if remote and self._unsettled(ref, found):
            found = await self._scan(ref)
        return found

    def _unsettled(self, ref: str, found: Any | None) -> bool:
        """The session has no trade for this orderRef, or only a placement never answered:
        what the venue knows must be asked of it."""
        return found is None or (ref in self._doubtful and not found.order.permId)

    # ------------------------------------------------------------ placing

    async def _contract(self, symbol: str) -> Any:
        async with self._qualifying.hold(symbol):
            if symbol not in self._contracts:
                contract = mapping.stock(self.lib, symbol)
                qualified = await self._call(
                    f"qualifyContracts {symbol}", lambda: self.ib.qualifyContractsAsync(contract)
                )
                if not qualified or qualified[0] is None or not contract.conId:
                    text = f"IB error 200: no security definition for {symbol}"
                    raise OrderRejected(text, code="200")
                self._contracts[symbol] = contract
        return self._contracts[symbol]

    async def place(self, order: OrderRequest) -> OrderReport:
        """Place once (a bracket via parentId/transmit); idempotent on the client order id:
        DuplicateClientOrderId when the orderRef exists (looked up at the venue too when an
        earlier placement of it went unanswered)."""
        await self._ready()
        ref = order.client_order_id
        try:
            async with self._placing.hold(ref, wait=self.timeout):
                return await self._place_once(order)
        except TimeoutError as exc:  # only the wait for the key: _place_once converts its own
            raise VenueTimeout(f"place {ref} (an earlier placement of it still running)",
                               self.timeout, "IB") from exc  # fmt: skip

    async def _place_once(self, order: OrderRequest) -> OrderReport:
        ref = order.client_order_id
        if await self._exists(ref):
            raise DuplicateClientOrderId(f"orderRef {ref} exists at IB")
        contract = await self._contract(order.symbol)
        # doubtful from sending until answered: if this call is cut short (an outer deadline
        # cancels it), the next placement of this id asks the venue before placing
        self._doubtful.add(ref)
        try:
            trades = self._send(order, contract)
        except TransientBrokerError:
            self._doubtful.discard(ref)  # nothing was sent
            raise
        ids = [t.order.orderId for t in trades]
        answered = await self._wait(lambda: self._answered(trades[0], ids))
        if answered:
            self._doubtful.discard(ref)
        if answered and self._missing_exits(trades):
            # The venue took the entry and some exit but refused another exit (IB transmits
            # what it holds): send the refused exits again, or cancel the lot.
            trades = await self._complete_bracket(ref, contract, trades)
            ids = [t.order.orderId for t in trades]
        if any(i in self._order_errors for i in ids):
            # A refused leg refuses the bracket: legs held for it (sent with transmit=False)
            # must not live on, nor count as this orderRef's order at the next look-up.
            self._abandon([t for t in trades if not t.order.permId])
            entry = trades[0].order
            if not entry.permId and entry.orderId not in self._order_errors:
                # An exit refused while the entry's fate is unknown (its message lost, e.g. in
                # an outage: the exit then finds no parent): not the venue's verdict on the
                # order; the stage looks it up and tries again.
                self._doubtful.discard(ref)
                raise VenueTimeout(f"placement of {ref} (entry unanswered, an exit refused)",
                                   self.timeout, "IB")
        self._raise_order_error(ids)
        if answered:
            return self._report(trades[0])
        return await self._resolve_unanswered(ref, trades)

    def _missing_exits(self, trades: list[Any]) -> list[Any]:
        """Exit legs refused although their entry was accepted."""
        entry = trades[0]
        if not entry.order.permId or entry.order.orderId in self._order_errors:
            return []
        return [t for t in trades[1:] if t.order.orderId in self._order_errors]

    async def _complete_bracket(self, ref: str, contract: Any, trades: list[Any]) -> list[Any]:
        """Re-send refused exits as children of the live entry (a few quick tries); if they
        stay refused, cancel the entry and its exits and report the placement as failed."""
        legs = list(trades)
        for _ in range(3):
            missing = self._missing_exits(legs)
            if not missing:
                return legs
            for trade in missing:
                order = copy.copy(trade.order)
                order.orderId = self.ib.client.getReqId()
                order.transmit = True
                again = self.ib.placeOrder(contract, order)
                legs[legs.index(trade)] = again
                await self._wait(partial(self._answered, again, [order.orderId]))
        if self._missing_exits(legs):
            log.warning("IB: bracket %s kept losing an exit; cancelling it", ref)
            for trade in legs:
                if trade.order.permId and not trade.isDone():
                    self.ib.cancelOrder(trade.order)
        return legs

    async def _exists(self, ref: str) -> bool:
        """Whether an order with this orderRef exists: the session's word, or the venue's
        after an unanswered placement (whose leftovers are then given up on)."""
        if ref not in self._doubtful:
            return self._best(self._local_trades(ref)) is not None
        found = await self._find(ref, remote=True)
        if found is None:
            self._abandon([t for t in self._local_trades(ref) if not t.order.permId])
        return found is not None

    def _send(self, order: OrderRequest, contract: Any) -> list[Any]:
        """Send the order(s) with fresh ids; the library's Trades."""
        try:
            first = self.ib.client.getReqId()
            legs = mapping.build_orders(self.lib, order, self.account_id, first)
            for _ in legs[1:]:
                self.ib.client.getReqId()
            return [self.ib.placeOrder(contract, ib_order) for _, ib_order in legs]
        except ConnectionError as exc:  # not connected: nothing was sent
            raise TransientBrokerError(f"IB placeOrder: {exc}", code="504") from exc

    async def _resolve_unanswered(self, ref: str, trades: list[Any]) -> OrderReport:
        """No answer within the deadline: look the orderRef up at the venue once."""
        await self._ready()
        found = await self._scan(ref)
        if found is not None:
            self._doubtful.discard(ref)
            return self._report(found)
        self._abandon(trades)
        what = f"placement of {ref} (not found at the venue either)"
        raise VenueTimeout(what, self.timeout, "IB")

    def _abandon(self, trades: list[Any]) -> None:
        """Give up on unanswered order ids: cancel them (a late arrival must not live on
        beside a new placement) and stop counting them as this orderRef's order."""
        for trade in trades:
            self._abandoned.add(trade.order.orderId)
            if self.ib.isConnected() and not trade.order.permId:
                try:
                    self.ib.cancelOrder(trade.order)
                except ConnectionError:
                    log.warning("IB: could not cancel abandoned order id %s", trade.order.orderId)

    def _answered(self, entry: Any, ids: list[int]) -> bool:
        if any(i in self._order_errors for i in ids):
            return True
        return bool(entry.order.permId) and entry.orderStatus.status not in ("PendingSubmit", "")

    def _raise_order_error(self, ids: list[int]) -> None:
        """The entry's own error decides (the venue's verdict on the order); without one, a
        transient error on an exit leg wins over a permanent one on another, which the venue
        then gives only because that leg's group went missing (a retry may pass)."""
        entry = self._order_errors.get(ids[0]) if ids else None
        found = [entry] if entry is not None else [
            self._order_errors[i] for i in ids if i in self._order_errors]
        for code, text in found:
            if errors.classify(code) is errors.ErrorKind.TRANSIENT:
                raise errors.to_exception(code, text)
        for code, text in found:
            if errors.is_order_rejection(code):
                raise errors.to_exception(code, text)

    # ------------------------------------------------------------ queries

    def wire_messages(self, operation: str, *args: Any) -> int | None:
        """TWS API messages `operation` would send if called now (brokers.pacing charges
        them; None: its published cost). Reads between full reads are answered from the state
        TWS pushes and send nothing; an order the session knows is looked up locally."""
        if operation in ("status", "cancel"):
            ref = str(args[0]) if args else ""
            unsettled = self._unsettled(ref, self._best(self._local_trades(ref)))
            scan = 3 if unsettled else 0  # open orders, completed orders, executions
            return scan + (operation == "cancel")
        if operation in ("orders_since", "orders_and_open_orders"):
            return sum(self._full_read(r) is None for r in ("open", "completed"))
        if operation == "open_orders":
            return int(self._full_read("open") is None)
        if operation == "fills_since":
            return int(self._full_read("executions") is None)
        if operation == "instrument":
            symbol = str(args[0]) if args else ""
            borrow = bool(args[1]) if len(args) > 1 else True
            # the market-data request for shortability and its cancel, every call that asks
            return 2 * borrow + (symbol not in self._contracts) + (symbol not in self._rules)
        return None

    async def status(self, client_order_id: str) -> OrderReport:
        """The order now, by orderRef (UnknownOrder when IB has none)."""
        await self._ready()
        found = await self._find(client_order_id, remote=True)
        if found is None:
            raise UnknownOrder(f"no IB order with orderRef {client_order_id}")
        return self._report(found)

    async def cancel(self, client_order_id: str) -> OrderReport:
        """Cancel; NotCancellable when already finished; VenueTimeout when IB does not confirm
        within the deadline (cancelling again is harmless)."""
        await self._ready()
        trade = await self._find(client_order_id, remote=True)
        if trade is None:
            raise UnknownOrder(f"no IB order with orderRef {client_order_id}")
        if self._report(trade).status.is_terminal:
            raise NotCancellable(f"{client_order_id} is {self._report(trade).status}")
        order_id = trade.order.orderId
        self._order_errors.pop(order_id, None)
        try:
            self.ib.cancelOrder(trade.order)
        except ConnectionError as exc:
            raise TransientBrokerError(f"IB cancelOrder: {exc}", code="504") from exc
        if not await self._wait(lambda: trade.isDone() or order_id in self._order_errors):
            raise VenueTimeout(f"cancel of {client_order_id}", self.timeout, "IB")
        code_msg = self._order_errors.get(order_id)
        if code_msg and code_msg[0] in errors.CANCEL_REFUSALS:
            raise errors.to_exception(*code_msg)
        return self._report(trade)

    async def open_orders(self) -> list[OrderReport]:
        """Every live order of the account (all clients): asked of TWS at most every
        `full_read_seconds`, served from pushed state in between (see _open_trades). Ours are
        as fresh either way (TWS pushes their status to us); another client's order is seen
        at the next full read, and an order of theirs that ended since shows open until then.
        Asking every reconciliation pass would decode every resting order (each bracket's
        exits) twice a second: CPU that grows with the day's open orders."""
        await self._ready()
        return self._open_reports(await self._open_trades())

    def _open_reports(self, trades: list[Any]) -> list[OrderReport]:
        mine = [t for t in trades if (t.order.account or self.account_id) == self.account_id]
        reports = [self._report(t) for t in mine]
        return [r for r in reports if not r.status.is_terminal]

    async def account(self) -> AccountSnapshot:
        """Account figures fetched now (reqAccountUpdates), not a cache."""
        await self._ready()
        await self._refresh_account()
        return self._account_read()

    async def positions(self) -> list[Position]:
        """Positions with market value, fetched now."""
        await self._ready()
        await self._refresh_account()
        return self._positions_read()

    async def account_and_positions(self) -> tuple[AccountSnapshot, list[Position]]:
        """account() and positions() from one reqAccountUpdates (both are in its answer): a
        venue snapshot costs one message for the two (agents.venue_view asks for it)."""
        await self._ready()
        await self._refresh_account()
        return self._account_read(), self._positions_read()

    def _account_read(self) -> AccountSnapshot:
        values = {
            v.tag: v.value for v in self.ib.accountValues(self.account_id)
            if v.currency in ("USD", "BASE", "") and not v.modelCode
        }  # fmt: skip
        return account_snapshot(self.account_id, values)

    def _positions_read(self) -> list[Position]:
        return [mapping_position(p) for p in self.ib.portfolio(self.account_id) if p.position]

    async def fills_since(self, since: datetime) -> list[FillReport]:
        """Executions at or after `since`, oldest first, with commissions."""
        await self._ready()
        if self._full_read("executions") is not None:  # the session's, recent ones only
            fills = self._indexed().fills_for(since)
        else:
            fills = await self._executions()
        stored = getattr(self.ib.wrapper, "fills", {})
        out = []
        for fill in fills:
            when = fill.execution.time
            if isinstance(when, datetime) and when.tzinfo is not None and when < since:
                continue  # older than asked: no report to build
            known = stored.get(fill.execution.execId, fill)
            report = self._fill_report(fill, known.commissionReport)
            if report.account_id == self.account_id and report.executed_at >= since:
                out.append(report)
        return sorted(out, key=lambda f: (f.executed_at, f.execution_id))

    def _fill_report(self, fill: Any, commission: Any) -> FillReport:
        """An execution's report, built again only once its commission report arrives."""
        ex = fill.execution
        version = (ex.execId, ex.shares, ex.price, getattr(commission, "execId", None),
                   getattr(commission, "commission", None))
        held = self._fill_reports.get(ex.execId)
        if held is not None and held[0] == version:
            return held[1]
        report = mapping.fill_to_report(fill, commission)
        if len(self._fill_reports) >= REPORTS_HELD:
            self._fill_reports.clear()
        self._fill_reports[ex.execId] = (version, report)
        return report

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        """Every order of the account created at or after `since`, any status, oldest first:
        the session's trades the venue acknowledged (placed here, or reported by openOrder /
        completedOrder) after asking for all open and completed orders; only orders with an
        orderRef (ours), one per orderRef. IB has no creation time on the wire, so
        created_at is the Trade log's first entry (the placement, for orders placed in this
        session; first sight, for another client's open order) or else the completed order's
        completedTime (it never precedes creation, so a rate window is not under-counted)."""
        await self._ready()
        await self._open_trades()
        return await self._orders_since(since)

    async def orders_and_open_orders(self, since: datetime
                                     ) -> tuple[list[OrderReport], list[OrderReport]]:
        """orders_since(since) and open_orders() from one reqAllOpenOrders (and one
        reqCompletedOrders): a venue snapshot costs two messages for both, not three, and
        decodes the open orders once (agents.venue_view asks for it)."""
        await self._ready()
        open_now = self._open_reports(await self._open_trades())  # as that one read says
        return await self._orders_since(since), open_now

    async def _orders_since(self, since: datetime) -> list[OrderReport]:
        """orders_since after its open-orders read."""
        completed = await self._completed_trades()
        # the session's trades and the completed orders it does not know, less the orders
        # dated before `since` (brokers/ib/session_index.py)
        trades = self._indexed().trades_since(since, completed)
        by_ref: dict[str, list[Any]] = {}
        for trade in trades:
            order = trade.order
            if not order.orderRef or not self._at_venue(trade):
                continue
            if not self._mine(trade):
                continue
            by_ref.setdefault(order.orderRef, []).append(trade)
        out = []
        for group in by_ref.values():
            created = self._created_at(group)
            if created is not None and created < since:
                continue  # the day's older orders: no report to build
            report = self._report(self._best(group), created)
            if report.created_at >= since:
                out.append(report)
        return sorted(out, key=lambda r: (r.created_at, r.venue_order_id))

    async def instrument(self, symbol: str, borrow: bool = True) -> InstrumentRules | None:
        """The contract details' minTick / minSize / sizeIncrement (asked once per symbol) and
        whether IB lends the stock for a short sale now (generic tick 236, asked every call
        with `borrow`, None when IB does not say within shortable.WAIT_S, or when not asked);
        OrderRejected (200) for a symbol IB does not know."""
        from .shortable import WAIT_S, read_shortable

        await self._ready()
        contract = await self._contract(symbol)
        if symbol not in self._rules:
            details: list[Any] = await self._call(
                f"reqContractDetails {symbol}", lambda: self.ib.reqContractDetailsAsync(contract)
            )
            if not details:
                return None
            self._rules[symbol] = mapping.instrument_rules(symbol, details[0])
        if not borrow:
            return self._rules[symbol]
        lends = await read_shortable(self.ib, contract, min(self.timeout, WAIT_S))
        if lends.error is not None:
            log.info("IB shortable %s unanswered: error %s %s", symbol, *lends.error)
        return self._rules[symbol].model_copy(update={"shortable": lends.shortable})

    def _created_at(self, trades: list[Any]) -> datetime | None:
        """The earliest placement (Trade log) time of these trades, else completion time."""
        logged = [
            t.log[0].time.astimezone(UTC) for t in trades
            if t.log and isinstance(t.log[0].time, datetime)
        ]  # fmt: skip
        if logged:
            return min(logged)
        completed = [
            self._completed_at[t.order.permId] for t in trades
            if t.order.permId in self._completed_at
        ]  # fmt: skip
        return min(completed) if completed else None


def account_snapshot(account: str, values: dict[str, str]) -> AccountSnapshot:
    """Account values (NetLiquidation, TotalCashValue, ...) as the port's snapshot."""

    def num(tag: str) -> Decimal:
        text = values.get(tag, "")
        return Decimal(text) if text not in ("", None) else Decimal(0)

    return AccountSnapshot(
        account_id=account, kind=AccountKind.PAPER if account.startswith("D") else AccountKind.LIVE,
        equity=num("NetLiquidation"), cash=num("TotalCashValue"), buying_power=num("BuyingPower"),
        realized_pnl_today=num("RealizedPnL"), unrealized_pnl=num("UnrealizedPnL"),
        gross_position_value=num("GrossPositionValue"), as_of=datetime.now(UTC),
    )  # fmt: skip


def mapping_position(item: Any) -> Position:
    """A library PortfolioItem as the port's Position."""
    return Position(
        account_id=item.account, symbol=item.contract.symbol, quantity=mapping.dec(item.position),
        avg_cost=mapping.dec(item.averageCost), market_price=mapping.dec(item.marketPrice),
        market_value=mapping.dec(item.marketValue), unrealized_pnl=mapping.dec(item.unrealizedPNL),
    )  # fmt: skip


__all__ = ["IbOrderService", "OrderLeg"]
