"""The simulator's TWS API front door: an asyncio TCP server that real IB client libraries
(ib_async, ib_insync) connect to unmodified. Encoding lives in codec.py, the order-id
translation in book.py; this module is the socket glue and the request handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from brokers.exceptions import BrokerError, DuplicateClientOrderId, NotCancellable, UnknownOrder
from brokers.port import FillReport, OrderReport, OrderRequest, child_client_order_id
from schemas.events import OrderLeg

from . import codec
from .book import (
    Binding,
    OrderBook,
    bracket_request,
    client_order_id_for,
    to_request,
)
from .codec import InMsg, OutMsg, PlaceOrderMsg
from .reasons import ib_error
from .views import account_values, details_view, exec_view, order_view, portfolio_view
from .views import wire_contract as contract_of

log = logging.getLogger(__name__)

OUTAGE_POLL_S = 0.02
MSG_1100 = "Connectivity between IB and Trader Workstation has been lost."
MSG_1102 = "Connectivity between IB and Trader Workstation has been restored - data maintained."
MSG_100 = "Max rate of messages per second has been exceeded"
MSG_326 = "Unable to connect as the client id is already in use. Retry with a unique client id."
MSG_321 = "Error validating request: snapshot market data is not applicable to generic ticks"
SHORTABLE_TICKS = "236"  # generic tick list entry: ticks 46 (shortable) and 89 (shares)
SHORTABLE, NOT_SHORTABLE = Decimal("3.0"), Decimal("1.0")  # tick 46: >2.5 lends, <=1.5 not
SHORTABLE_SHARES = Decimal(1_000_000)  # tick 89 when the stock lends


def _now() -> datetime:
    return datetime.now(UTC)


def _account_ids(exchange: Any) -> list[str]:
    """Account ids from Exchange.accounts(), whether it yields ids or account objects."""
    out: list[str] = []
    for item in exchange.accounts():
        out.append(item if isinstance(item, str) else str(getattr(item, "account_id", item)))
    return out


def _unpack_update(update: Any) -> tuple[OrderReport | None, FillReport | None]:
    """The OrderReport or FillReport a SimUpdate carries."""
    report = getattr(update, "order", None)
    fill = getattr(update, "fill", None)
    return (
        report if isinstance(report, OrderReport) else None,
        fill if isinstance(fill, FillReport) else None,
    )


class TwsServer:
    """One simulated TWS: many API client sessions over one Exchange."""

    def __init__(self, exchange: Any, faults: Any = None) -> None:
        self.exchange = exchange
        self.faults = faults if faults is not None else getattr(exchange, "faults", None)
        self.book = OrderBook()
        self.sessions: dict[int, Session] = {}
        self.all_sessions: set[Session] = set()
        self.serving = asyncio.Event()
        self.serving.set()
        self.unstalled = asyncio.Event()  # cleared while SIM_STALL holds outgoing messages
        self.unstalled.set()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._client_tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # executions whose commissionReport is still to come (SIM_COMMISSION_DELAY_MS)
        self.pending_commissions: dict[str, codec.ExecView] = {}
        self._commission_timers: dict[str, asyncio.TimerHandle] = {}

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 7497) -> None:
        """Listen, follow the exchange's updates, and watch the outage schedule."""
        self._loop = asyncio.get_running_loop()
        self.sync_book()
        self._unsubscribe = self.exchange.subscribe(self._on_update)
        self._server = await asyncio.start_server(self._on_client, host, port)
        self._spawn(self._watch_outages())

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        """The bound host."""
        assert self._server is not None
        return str(self._server.sockets[0].getsockname()[0])

    async def close(self) -> None:
        """Stop listening, drop every client, stop following the exchange."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._server is not None:
            self._server.close()
        for session in list(self.all_sessions):
            session.abort()
        for task in list(self._tasks):
            task.cancel()
        for timer in self._commission_timers.values():
            timer.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client_tasks:
            await asyncio.wait(list(self._client_tasks), timeout=2)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        assert self._server is not None
        await self._server.serve_forever()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        self.all_sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._client_tasks.add(task)
        try:
            await session.run()
        finally:
            self.all_sessions.discard(session)
            if self.sessions.get(session.client_id) is session:
                del self.sessions[session.client_id]
            if task is not None:
                self._client_tasks.discard(task)

    # ------------------------------------------------------------ outages

    async def _watch_outages(self) -> None:
        """Announce 1100 when an outage starts and 1102 when it ends; hold traffic between.
        Release what a stall held once it ends (silently: a stall announces nothing)."""
        while True:
            await asyncio.sleep(OUTAGE_POLL_S)
            if not self.unstalled.is_set() and not self.stalled():
                self.unstalled.set()
            down = bool(self.faults is not None and self.faults.in_outage())
            if down and self.serving.is_set():
                self._broadcast_now(codec.error(-1, 1100, MSG_1100))
                self.serving.clear()
            elif not down and not self.serving.is_set():
                self._broadcast_now(codec.error(-1, 1102, MSG_1102))
                self.serving.set()

    def _broadcast_now(self, fields: list[object]) -> None:
        for session in list(self.sessions.values()):
            session.write_now(fields)

    def latency(self) -> float:
        """Seconds to hold each outgoing message."""
        return float(self.faults.latency_seconds()) if self.faults is not None else 0.0

    def should_drop(self) -> bool:
        """Whether to cut a connection now."""
        return bool(self.faults is not None and self.faults.should_drop())

    def transient_error(self) -> bool:
        """Whether this placement should fail with a retryable error."""
        return bool(self.faults is not None and self.faults.transient_error())

    def stalled(self) -> bool:
        """Whether the venue is wedged (requests read, nothing answered)."""
        return bool(self.faults is not None and self.faults.stalled())

    def note_stalled(self) -> None:
        if self.faults is not None:
            self.faults.note_stalled()

    def commission_delay(self) -> float:
        """Seconds between an execution's execDetails and its commissionReport."""
        return float(self.faults.commission_delay_seconds()) if self.faults is not None else 0.0

    @property
    def placements(self) -> Any:
        """The exchange's PlacementLog (every placeOrder received, per orderRef)."""
        return self.exchange.placements

    # ------------------------------------------------------------ exchange state

    def accounts(self) -> list[str]:
        """Every account this login manages."""
        return _account_ids(self.exchange)

    def sync_book(self) -> None:
        """Bind every core order (orders from before a restart keep their ids)."""
        for account in self.accounts():
            for report in self.exchange.orders(account):
                self.book.adopt(report)

    def contract_for(self, symbol: str) -> codec.WireContract:
        """The wire contract of a symbol."""
        return contract_of(self.exchange.instrument(symbol))

    def view(self, report: OrderReport) -> codec.OrderView:
        """openOrder/orderStatus view of a core order."""
        binding = self.book.adopt(report)
        return order_view(binding, report, self.contract_for(report.symbol))

    def targets(self, client_id: int) -> list[Session]:
        """Sessions that see an order's events: its owner and the master client (id 0)."""
        out = [s for cid, s in self.sessions.items() if cid in (client_id, 0)]
        return out

    # ------------------------------------------------------------ pushed updates

    def _on_update(self, update: Any) -> None:
        """Exchange callback: forward order and fill changes to the owning clients."""
        loop = self._loop
        if loop is not None and loop.is_running() and not _in_loop(loop):
            loop.call_soon_threadsafe(self._handle_update, update)
        else:
            self._handle_update(update)

    def _handle_update(self, update: Any) -> None:
        report, fill = _unpack_update(update)
        try:
            if fill is not None:
                self.publish_fill(fill)
            if report is not None:
                self.publish(report)
        except Exception:  # a push must never break the exchange that called us
            log.exception("tws: could not forward %r", update)

    def publish(self, report: OrderReport) -> None:
        """openOrder + orderStatus to the order's clients when its state changed."""
        binding = self.book.adopt(report)
        state = (report.status.value, report.filled_quantity)
        if binding.last_sent == state:
            return
        binding.last_sent = state
        view = order_view(binding, report, self.contract_for(report.symbol))
        for session in self.targets(binding.client_id):
            session.send(codec.open_order(view))
            session.send(codec.order_status(view))

    def publish_fill(self, fill: FillReport) -> None:
        """execDetails + commissionReport to the owner, then positions and account values."""
        report = self.exchange.order(fill.account_id, fill.client_order_id)
        binding = self.book.adopt(report)
        if fill.execution_id in binding.seen_fills:
            return
        binding.seen_fills.add(fill.execution_id)
        cum = (report.filled_quantity, report.avg_fill_price or fill.price)
        ev = exec_view(binding, fill, self.contract_for(fill.symbol), cum)
        delay = self.commission_delay()
        for session in self.targets(binding.client_id):
            session.send(codec.exec_details(-1, ev))
            if delay <= 0 or self._loop is None:
                session.send(codec.commission_report(ev))
        if delay > 0 and self._loop is not None:
            self.pending_commissions[ev.exec_id] = ev
            self._commission_timers[ev.exec_id] = self._loop.call_later(
                delay, self._send_commission, ev.exec_id)
        for session in list(self.sessions.values()):
            session.after_fill(fill.account_id, fill.symbol)

    def _send_commission(self, exec_id: str) -> None:
        """The late commissionReport, to whoever owns the order now."""
        self._commission_timers.pop(exec_id, None)
        ev = self.pending_commissions.pop(exec_id, None)
        if ev is None:
            return
        for session in self.targets(ev.client_id):
            session.send(codec.commission_report(ev))

    def fill_views(self, account: str) -> Iterable[codec.ExecView]:
        """Every execution of an account, oldest first, as execDetails views."""
        for fill in self.exchange.fills(account):
            report = self.exchange.order(account, fill.client_order_id)
            binding = self.book.adopt(report)
            cum = (report.filled_quantity, report.avg_fill_price or fill.price)
            yield exec_view(binding, fill, self.contract_for(fill.symbol), cum)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class Session:
    """One API client connection: handshake, request handlers, ordered outgoing queue."""

    def __init__(
        self, server: TwsServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.exchange = server.exchange
        self.book = server.book
        self.reader = reader
        self.writer = writer
        self.client_id = -1
        self.started = False
        self._failed_groups: set[int] = set()  # brackets refused whole (transient refusals)
        self.positions_sub = False
        self.account_sub: str | None = None
        self.multi_subs: dict[int, str] = {}
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._closed = False
        self._handlers: dict[int, Callable[[list[str]], None]] = {
            InMsg.START_API: self.on_start_api,
            InMsg.REQ_IDS: self.on_req_ids,
            InMsg.REQ_MANAGED_ACCTS: self.on_managed_accounts,
            InMsg.REQ_CURRENT_TIME: self.on_current_time,
            InMsg.REQ_POSITIONS: self.on_positions,
            InMsg.CANCEL_POSITIONS: self.on_cancel_positions,
            InMsg.REQ_OPEN_ORDERS: self.on_open_orders,
            InMsg.REQ_ALL_OPEN_ORDERS: self.on_all_open_orders,
            InMsg.REQ_AUTO_OPEN_ORDERS: self.on_ignore,
            InMsg.REQ_COMPLETED_ORDERS: self.on_completed_orders,
            InMsg.REQ_ACCT_DATA: self.on_account_updates,
            InMsg.REQ_ACCOUNT_UPDATES_MULTI: self.on_account_updates_multi,
            InMsg.CANCEL_ACCOUNT_UPDATES_MULTI: self.on_cancel_multi,
            InMsg.REQ_ACCOUNT_SUMMARY: self.on_account_summary,
            InMsg.CANCEL_ACCOUNT_SUMMARY: self.on_ignore,
            InMsg.REQ_EXECUTIONS: self.on_executions,
            InMsg.REQ_CONTRACT_DATA: self.on_contract_details,
            InMsg.REQ_MKT_DATA: self.on_mkt_data,
            InMsg.CANCEL_MKT_DATA: self.on_ignore,
            InMsg.REQ_MARKET_DATA_TYPE: self.on_ignore,
            InMsg.PLACE_ORDER: self.on_place_order,
            InMsg.CANCEL_ORDER: self.on_cancel_order,
            InMsg.REQ_GLOBAL_CANCEL: self.on_global_cancel,
        }

    # ------------------------------------------------------------ transport

    def send(self, fields: list[object]) -> None:
        """Queue one message (delivered in order, after latency and outages)."""
        if not self._closed:
            self._out.put_nowait(codec.frame(fields))

    def write_now(self, fields: list[object]) -> None:
        """Write one message past the queue (connectivity notices during an outage)."""
        if not self._closed:
            self.writer.write(codec.frame(fields))

    def abort(self) -> None:
        """Cut the connection without a goodbye, as a crash or network drop would."""
        self._closed = True
        transport = self.writer.transport
        if transport is not None:
            transport.abort()

    async def _sender(self) -> None:
        while True:
            data = await self._out.get()
            delay = self.server.latency()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.server.serving.wait()
            if self.server.stalled():  # a wedged venue says nothing until it recovers
                self.server.unstalled.clear()
                await self.server.unstalled.wait()
            self.writer.write(data)
            await self.writer.drain()

    async def run(self) -> None:
        """Handshake, then read and dispatch until the client goes away."""
        try:
            if not await self._handshake():
                return
            sender = asyncio.ensure_future(self._sender())
            try:
                await self._read_loop()
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        except (ConnectionError, asyncio.IncompleteReadError, codec.ProtocolError) as exc:
            log.info("tws session %s ended: %s", self.client_id, exc)
        finally:
            self._closed = True
            self.writer.close()

    async def _handshake(self) -> bool:
        prefix = await self.reader.readexactly(len(codec.API_PREFIX))
        if prefix != codec.API_PREFIX:
            raise codec.ProtocolError(f"expected API\\0, got {prefix!r}")
        (size,) = codec._LEN.unpack(await self.reader.readexactly(4))
        shake = codec.parse_handshake(await self.reader.readexactly(size))
        codec.choose_version(shake)
        self.writer.write(codec.handshake_reply(_now()))
        await self.writer.drain()
        return True

    async def _read_loop(self) -> None:
        frames = codec.FrameReader()
        while not self._closed:
            data = await self.reader.read(65536)
            if not data:
                return
            for fields in frames.feed(data):
                self._dispatch(fields)

    def _dispatch(self, fields: list[str]) -> None:
        if self._closed or not fields:
            return
        msg_id = int(fields[0])
        if msg_id == InMsg.PLACE_ORDER:
            self._count_placement(fields)
        if self.server.stalled():
            self.server.note_stalled()
            return  # stalled: read, never answered
        if self.server.should_drop():
            self.abort()
            return
        if not self.server.serving.is_set() and msg_id != InMsg.START_API:
            return  # outage: requests go unanswered
        handler = self._handlers.get(msg_id)
        if handler is None:
            log.debug("tws: ignoring message %s", fields[:3])
            return
        try:
            handler(fields)
        except BrokerError as exc:
            self.send(codec.error(-1, *ib_error(exc, 321)))

    def _count_placement(self, fields: list[str]) -> None:
        """Every placeOrder received counts as an attempt, whatever happens to it next."""
        try:
            msg = codec.parse_place_order(fields)
        except (codec.ProtocolError, ValueError, IndexError, ArithmeticError):
            return  # the handler answers the malformed message
        self.server.placements.attempted(self._ref(msg))

    def _ref(self, msg: PlaceOrderMsg) -> str:
        return client_order_id_for(msg, self.client_id)

    def _refuse(self, msg: PlaceOrderMsg, code: int, text: str) -> None:
        """Answer a placement with an error, and count the refusal."""
        self.server.placements.refused(self._ref(msg), str(code))
        self.send(codec.error(msg.order_id, code, text))

    # ------------------------------------------------------------ session set-up

    def default_account(self) -> str:
        """The first managed account."""
        return self.server.accounts()[0]

    def on_start_api(self, fields: list[str]) -> None:
        """startApi: claim the clientId (326 if a live session holds it), then ready the client."""
        client_id = int(fields[2]) if len(fields) > 2 and fields[2] else 0
        if client_id in self.server.sessions:
            self.write_now(codec.error(-1, 326, MSG_326))
            self.abort()
            return
        self.client_id = client_id
        self.server.sessions[client_id] = self
        self.server.sync_book()
        self.send(codec.next_valid_id(self.book.next_order_id(client_id)))
        self.send(codec.managed_accounts(self.server.accounts()))

    def on_req_ids(self, fields: list[str]) -> None:
        """reqIds -> nextValidId."""
        self.send(codec.next_valid_id(self.book.next_order_id(self.client_id)))

    def on_managed_accounts(self, fields: list[str]) -> None:
        """reqManagedAccts -> managedAccounts."""
        self.send(codec.managed_accounts(self.server.accounts()))

    def on_current_time(self, fields: list[str]) -> None:
        """reqCurrentTime -> currentTime."""
        self.send(codec.current_time(_now()))

    def on_ignore(self, fields: list[str]) -> None:
        """Requests that need no answer here."""

    # ------------------------------------------------------------ positions and account

    def _send_positions(self, account: str, symbol: str | None = None) -> None:
        held = {p.symbol: p for p in self.exchange.positions(account)}
        if symbol is not None and symbol not in held:
            flat = self.server.contract_for(symbol)
            self.send(codec.position(account, flat, Decimal(0), Decimal(0)))
        for pos in held.values():
            if symbol is None or pos.symbol == symbol:
                contract = self.server.contract_for(pos.symbol)
                self.send(codec.position(account, contract, pos.quantity, pos.avg_cost))

    def on_positions(self, fields: list[str]) -> None:
        """reqPositions: every position of every account, then positionEnd; updates follow."""
        self.positions_sub = True
        for account in self.server.accounts():
            self._send_positions(account)
        self.send(codec.end_marker(OutMsg.POSITION_END))

    def on_cancel_positions(self, fields: list[str]) -> None:
        """cancelPositions: stop position updates."""
        self.positions_sub = False

    def _send_account(self, account: str) -> None:
        snap = self.exchange.account_snapshot(account)
        for key, value, ccy in account_values(snap):
            self.send(codec.account_value(key, value, ccy, account))
        for pos in self.exchange.positions(account):
            view = portfolio_view(pos, self.server.contract_for(pos.symbol))
            self.send(codec.portfolio_value(view))
        self.send(codec.account_time(_now()))

    def on_account_updates(self, fields: list[str]) -> None:
        """reqAccountUpdates [6, 2, subscribe, acct]: values, portfolio, accountDownloadEnd."""
        subscribe = len(fields) > 2 and fields[2] not in ("", "0")
        account = (fields[3] if len(fields) > 3 else "") or self.default_account()
        if not subscribe:
            self.account_sub = None
            return
        self.account_sub = account
        self._send_account(account)
        self.send(codec.end_marker(OutMsg.ACCT_DOWNLOAD_END, account))

    def _send_multi(self, req_id: int, account: str) -> None:
        snap = self.exchange.account_snapshot(account)
        for key, value, ccy in account_values(snap):
            self.send(codec.account_update_multi(req_id, account, key, value, ccy))

    def on_account_updates_multi(self, fields: list[str]) -> None:
        """reqAccountUpdatesMulti [76, 1, reqId, acct, model, ledgerAndNLV]."""
        req_id = int(fields[2])
        account = (fields[3] if len(fields) > 3 else "") or self.default_account()
        self.multi_subs[req_id] = account
        self._send_multi(req_id, account)
        self.send(codec.end_marker(OutMsg.ACCOUNT_UPDATE_MULTI_END, req_id))

    def on_cancel_multi(self, fields: list[str]) -> None:
        """cancelAccountUpdatesMulti."""
        self.multi_subs.pop(int(fields[2]), None)

    def on_account_summary(self, fields: list[str]) -> None:
        """reqAccountSummary [62, 1, reqId, group, tags] for every account."""
        req_id = int(fields[2])
        tags = set((fields[4] if len(fields) > 4 else "").split(","))
        for account in self.server.accounts():
            for key, value, ccy in account_values(self.exchange.account_snapshot(account)):
                if key in tags or not tags - {""}:
                    self.send(codec.account_summary(req_id, account, key, value, ccy))
        self.send(codec.end_marker(OutMsg.ACCOUNT_SUMMARY_END, req_id))

    def after_fill(self, account: str, symbol: str) -> None:
        """Push the position and account figures a fill changed, to subscribers."""
        if self.positions_sub:
            self._send_positions(account, symbol)
        if self.account_sub == account:
            self._send_account(account)
        for req_id, acct in self.multi_subs.items():
            if acct == account:
                self._send_multi(req_id, account)

    # ------------------------------------------------------------ orders and executions

    def _send_open_orders(self, mine_only: bool) -> None:
        for account in self.server.accounts():
            for report in self.exchange.orders(account, open_only=True):
                view = self.server.view(report)
                if mine_only and self.client_id != 0 and view.client_id != self.client_id:
                    continue
                self.send(codec.open_order(view))
                self.send(codec.order_status(view))
        self.send(codec.end_marker(OutMsg.OPEN_ORDER_END))

    def on_open_orders(self, fields: list[str]) -> None:
        """reqOpenOrders: this client's live orders (all of them for client 0)."""
        self._send_open_orders(mine_only=True)

    def on_all_open_orders(self, fields: list[str]) -> None:
        """reqAllOpenOrders: every live order, whichever client placed it."""
        self._send_open_orders(mine_only=False)

    def on_completed_orders(self, fields: list[str]) -> None:
        """reqCompletedOrders: finished orders (filled, cancelled, rejected), then the end."""
        for account in self.server.accounts():
            for report in self.exchange.orders(account):
                if report.status.is_terminal:
                    self.send(codec.completed_order(self.server.view(report)))
        self.send(codec.end_marker(OutMsg.COMPLETED_ORDERS_END))

    def on_executions(self, fields: list[str]) -> None:
        """reqExecutions: matching execDetails + commissionReport rows, then execDetailsEnd."""
        flt = codec.parse_exec_filter(fields)
        for account in self.server.accounts():
            if flt.account and flt.account != account:
                continue
            for ev in self.server.fill_views(account):
                if _matches(flt, ev):
                    self.send(codec.exec_details(flt.req_id, ev))
                    if ev.exec_id not in self.server.pending_commissions:
                        self.send(codec.commission_report(ev))
        self.send(codec.end_marker(OutMsg.EXECUTION_DATA_END, flt.req_id))

    def on_contract_details(self, fields: list[str]) -> None:
        """reqContractDetails -> contractDetails + end, or error 200 for unknown symbols."""
        req_id, wanted = codec.parse_contract_request(fields)
        try:
            instrument = self._instrument(wanted)
        except BrokerError as exc:
            self.send(codec.error(req_id, *ib_error(exc, 200)))
            return
        self.send(codec.contract_details(req_id, details_view(instrument)))
        self.send(codec.end_marker(OutMsg.CONTRACT_DATA_END, req_id))

    def _instrument(self, wanted: codec.WireContract) -> Any:
        if wanted.symbol:
            return self.exchange.instrument(wanted.symbol)
        for instrument in self.exchange.instruments():
            if int(instrument.con_id) == wanted.con_id:
                return instrument
        return self.exchange.instrument(f"conId:{wanted.con_id}")

    def on_mkt_data(self, fields: list[str]) -> None:
        """reqMktData: bid/ask/last around the exchange's last price (snapshot end if asked);
        generic tick 236 adds ticks 46 and 89 (shortability), refused on a snapshot as TWS
        refuses any generic tick there (321)."""
        msg = codec.parse_mkt_data_request(fields)
        req_id = msg.req_id
        if msg.snapshot and msg.generic_ticks:
            self.send(codec.error(req_id, 321, MSG_321))
            return
        try:
            instrument = self._instrument(msg.contract)
            price = Decimal(self.exchange.last_price(instrument.symbol))
        except BrokerError as exc:
            self.send(codec.error(req_id, *ib_error(exc, 200)))
            return
        tick = Decimal(instrument.min_tick)
        for tick_type, value in ((1, price - tick), (2, price + tick), (4, price)):
            self.send(codec.tick_price(req_id, tick_type, value))
        if SHORTABLE_TICKS in msg.generic_ticks:
            self._send_shortable(req_id, instrument)
        if msg.snapshot:
            self.send(codec.end_marker(OutMsg.TICK_SNAPSHOT_END, req_id))

    def _send_shortable(self, req_id: int, instrument: Any) -> None:
        """Tick 46 (3.0 shares to borrow, 1.0 none) and tick 89 (shares available): the
        account's shorting switch and the instrument's own `shortable`, as the Alpaca door
        computes its asset's `shortable`."""
        lends = self.exchange.config.shorting_enabled and bool(
            getattr(instrument, "shortable", True)
        )
        indicator, shares = (SHORTABLE, SHORTABLE_SHARES) if lends else (NOT_SHORTABLE, Decimal(0))
        self.send(codec.tick_generic(req_id, 46, indicator))
        self.send(codec.tick_size(req_id, 89, shares))

    def on_place_order(self, fields: list[str]) -> None:
        """placeOrder: modify a live id, 103 a finished one, hold or assemble brackets, place."""
        msg = codec.parse_place_order(fields)
        cid = self.client_id
        existing = self.book.by_key(cid, msg.order_id)
        if existing is not None:
            self._modify(existing, msg)
        elif self.book.held(cid, msg.order_id) is not None:
            self._rehold_or_send(msg)
        elif self.book.is_used(cid, msg.order_id):
            self._refuse(msg, 103, f"Duplicate order id {msg.order_id}")
        elif self._group_failed(msg) or self.server.transient_error():
            # A bracket is refused whole: a transient refusal of one leg refuses the legs
            # still to come and drops those held, so no group transmits without a leg.
            self.book.mark_used(cid, msg.order_id)
            self._fail_group(msg)
            self._refuse(msg, 100, MSG_100)
        elif not msg.transmit:
            self.book.hold(cid, msg)
        elif msg.parent_id:
            self._place_group(msg.parent_id, msg)
        else:
            self._place([msg], None)

    def _group_failed(self, msg: PlaceOrderMsg) -> bool:
        return (msg.parent_id or msg.order_id) in self._failed_groups

    def _fail_group(self, msg: PlaceOrderMsg) -> None:
        group = msg.parent_id or msg.order_id
        if msg.transmit and not msg.parent_id:
            return  # a single order: nothing else belongs to it
        self._failed_groups.add(group)
        if self.book.held(self.client_id, group) is not None:
            self.book.release(self.client_id, group)

    def _rehold_or_send(self, msg: PlaceOrderMsg) -> None:
        if msg.transmit:
            self._place_group(msg.order_id, msg)
        else:
            self.book.hold(self.client_id, msg)

    def _place_group(self, parent_id: int, last: PlaceOrderMsg) -> None:
        try:
            parent, children = self.book.release(self.client_id, parent_id)
        except BrokerError as exc:
            self.book.mark_used(self.client_id, last.order_id)
            self._refuse(last, *ib_error(exc, 201, placing=True))
            return
        if last.order_id == parent.order_id:
            parent = last
        else:
            children.append(last)
        self._place([parent, *children], parent)

    def _place(self, msgs: list[PlaceOrderMsg], parent: PlaceOrderMsg | None) -> None:
        """Place one order or one bracket in the core, binding wire ids first."""
        head = msgs[0]
        account = head.account or self.default_account()
        coid = client_order_id_for(head, self.client_id)
        for msg in msgs:
            self.book.mark_used(self.client_id, msg.order_id)
        try:
            reports = self._place_core(account, coid, head, msgs[1:] if parent else [])
        except DuplicateClientOrderId:
            coid = f"{coid[:50]}#{self.client_id}.{head.order_id}"
            try:
                reports = self._place_core(account, coid, head, msgs[1:] if parent else [])
            except BrokerError as exc:
                return self._reject(msgs, exc)
        except BrokerError as exc:
            return self._reject(msgs, exc)
        for msg in msgs:
            self.server.placements.accepted(self._ref(msg))
        for report in reports:
            self.server.publish(report)

    def _place_core(
        self, account: str, coid: str, head: PlaceOrderMsg, children: list[PlaceOrderMsg]
    ) -> list[OrderReport]:
        request: OrderRequest
        if children:
            request, legs = bracket_request(head, children, coid)
        else:
            request, legs = to_request(head, coid), {OrderLeg.ENTRY: head}
        bindings = self._bind(account, coid, legs)
        venue_ids = {leg: b.venue_order_id for leg, b in bindings.items()}
        try:
            return list(self.exchange.place(account, request, venue_order_ids=venue_ids))
        except BaseException:
            for binding in bindings.values():
                self.book.remove(binding)
            raise

    def _bind(
        self, account: str, coid: str, legs: dict[OrderLeg, PlaceOrderMsg]
    ) -> dict[OrderLeg, Binding]:
        entry = legs[OrderLeg.ENTRY]
        entry_perm = self.book.new_perm_id()
        out: dict[OrderLeg, Binding] = {}
        for leg, msg in legs.items():
            is_entry = leg is OrderLeg.ENTRY
            core_id = coid if is_entry else child_client_order_id(coid, leg)
            binding = Binding(
                account=account, client_order_id=core_id, client_id=self.client_id,
                order_id=msg.order_id, perm_id=entry_perm if is_entry else self.book.new_perm_id(),
                order_ref=msg.order_ref or core_id, leg=leg,
                parent_id=0 if is_entry else entry.order_id,
                parent_perm_id=0 if is_entry else entry_perm, oca_group=msg.oca_group,
            )  # fmt: skip
            self.book.add(binding)
            out[leg] = binding
        return out

    def _reject(self, msgs: list[PlaceOrderMsg], exc: BrokerError) -> None:
        code, text = ib_error(exc, 201, placing=True)
        for msg in msgs:
            self._refuse(msg, code, text)

    def _modify(self, binding: Binding, msg: PlaceOrderMsg) -> None:
        """Re-sent live order id: change quantity/prices; finished order: error 103."""
        report = self.exchange.order(binding.account, binding.client_order_id)
        if report.status.is_terminal:
            self._refuse(msg, 103, f"Duplicate order id {msg.order_id}")
            return
        modify = getattr(self.exchange, "modify", None)
        if modify is None:
            self._refuse(msg, 201, "Order rejected - reason: modify unsupported")
            return
        try:
            updated = modify(
                binding.account, binding.client_order_id, quantity=msg.quantity,
                limit_price=msg.lmt_price, stop_price=msg.aux_price,
            )  # fmt: skip
        except BrokerError as exc:
            self._refuse(msg, *ib_error(exc, 201, placing=True))
            return
        self.server.placements.accepted(self._ref(msg))
        binding.last_sent = None
        self.server.publish(updated)

    def on_cancel_order(self, fields: list[str]) -> None:
        """cancelOrder [4, 1, orderId]: orderStatus Cancelled + error 202, or 10147/10148."""
        order_id = int(fields[2])
        binding = self.book.by_key(self.client_id, order_id)
        if binding is None:
            self._cancel_held_or_unknown(order_id)
            return
        self._cancel(binding)

    def _cancel_held_or_unknown(self, order_id: int) -> None:
        held = self.book.held(self.client_id, order_id)
        if held is None:
            text = f"OrderId {order_id} that needs to be cancelled is not found."
            self.send(codec.error(order_id, 10147, text))
            return
        self.book.release(self.client_id, order_id)
        self.send(codec.error(order_id, 202, "Order Canceled - reason:"))

    def _cancel(self, binding: Binding) -> None:
        try:
            report = self.exchange.cancel(binding.account, binding.client_order_id)
        except (NotCancellable, UnknownOrder) as exc:
            code, _ = ib_error(exc, 10147 if isinstance(exc, UnknownOrder) else 10148)
            text = f"OrderId {binding.order_id} that needs to be cancelled cannot be cancelled"
            self.send(codec.error(binding.order_id, code, f"{text}: {exc.message}"))
            return
        self.server.publish(report)
        if report.status.is_terminal:
            self.send(codec.error(binding.order_id, 202, "Order Canceled - reason:"))

    def on_global_cancel(self, fields: list[str]) -> None:
        """reqGlobalCancel: cancel every live order of every account."""
        for account in self.server.accounts():
            for report in self.exchange.orders(account, open_only=True):
                self._cancel(self.book.adopt(report))


def _matches(flt: codec.ExecFilter, ev: codec.ExecView) -> bool:
    """reqExecutions filter semantics: empty/zero fields match everything."""
    if flt.client_id and flt.client_id != ev.client_id:
        return False
    if flt.symbol and flt.symbol != ev.contract.symbol:
        return False
    return not (flt.side and flt.side[:1] != ev.side[:1])


async def run_tws_server(
    exchange: Any, host: str = "127.0.0.1", port: int = 7497, faults: Any = None
) -> TwsServer:
    """Start a TWS front door on host:port (0 picks a free port); close() stops it."""
    server = TwsServer(exchange, faults)
    await server.start(host, port)
    return server


async def serve(
    exchange: Any, host: str = "127.0.0.1", port: int = 7497, faults: Any = None
) -> None:
    """Run a TWS front door until cancelled (what `jax-exec sim` awaits)."""
    server = await run_tws_server(exchange, host, port, faults)
    try:
        await server.serve_forever()
    finally:
        await server.close()
