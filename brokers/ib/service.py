"""IbOrderService: the OrderService port over an IB client library (ib_async by default,
ib_insync injectable). orderRef carries the client order id, which makes placement
idempotent: after an ambiguous outcome the adapter looks the ref up before placing again."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from brokers.exceptions import (
    BrokerError,
    DuplicateClientOrderId,
    NotCancellable,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
)
from brokers.port import (
    AccountKind,
    AccountSnapshot,
    FillReport,
    OrderReport,
    OrderRequest,
    Position,
)
from schemas.events import OrderLeg, OrderStatus

from . import errors, mapping

log = logging.getLogger(__name__)
POLL_S = 0.01


def _default_lib() -> ModuleType:
    import ib_async

    return ib_async


class _Ambiguous(Exception):
    """The placement may or may not have reached the venue (timeout, disconnect)."""


class IbOrderService:
    """One IB account through TWS / IB Gateway (or the simulator's TWS front door)."""

    venue = "ib"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 7497, client_id: int = 1, account: str = "",
        ib_module: ModuleType | None = None, timeout: float = 4.0, attempts: int = 4,
    ) -> None:  # fmt: skip
        self.host, self.port, self.client_id, self.account_id = host, port, client_id, account
        self.lib = ib_module or _default_lib()
        self.timeout = timeout
        self.attempts = attempts
        self.ib: Any = self.lib.IB()
        self.ib.errorEvent += self._on_error
        self._order_errors: dict[int, tuple[int, str]] = {}
        self._contracts: dict[str, Any] = {}
        self._outage = False
        self._closing = False
        self._completed_at: dict[int, datetime] = {}
        self._keep_completed_times()

    # ------------------------------------------------------------ connection

    def _on_error(self, req_id: int, code: int, message: str, *_: Any) -> None:
        """Record order errors by order id and track connectivity (1100 / 1101 / 1102)."""
        if code == errors.CONNECTION_LOST:
            self._outage = True
        elif code in errors.CONNECTION_RESTORED:
            self._outage = False
        if req_id > 0 and errors.classify(code) is not errors.ErrorKind.INFORMATIONAL:
            self._order_errors[req_id] = (code, message)

    async def connect(self) -> None:
        """Connect with the configured client id, retrying with backoff."""
        self._closing = False
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts), reraise=True,
            wait=wait_exponential(multiplier=0.05, max=1.0),
            retry=retry_if_exception_type((OSError, TimeoutError, ConnectionError)),
        )  # fmt: skip
        try:
            async for attempt in retrying:
                with attempt:
                    await self._connect_once()
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise TransientBrokerError(f"IB connect failed: {exc!r}", code="502") from exc

    async def _connect_once(self) -> None:
        if self.ib.isConnected():
            return
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

    async def close(self) -> None:
        """Disconnect."""
        self._closing = True
        self.ib.disconnect()

    async def _ready(self) -> None:
        """Connected and out of any outage, or TransientBrokerError."""
        if not self.ib.isConnected():
            await self.connect()
        if self._outage:
            await self._wait(lambda: not self._outage)
            if self._outage:
                raise TransientBrokerError("IB connectivity lost (1100)", code="1100")

    async def _wait(self, done: Any, limit: float | None = None) -> bool:
        """Poll `done()` until true or timeout (no fixed sleeps)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + (self.timeout if limit is None else limit)
        while not done():
            if loop.time() >= end or not self.ib.isConnected():
                return bool(done())
            await asyncio.sleep(POLL_S)
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

    # ------------------------------------------------------------ look-ups

    def _never_placed(self, trade: Any) -> bool:
        """Refused before the venue took it (no permId, an error on its id): not an order."""
        return not trade.order.permId and trade.order.orderId in self._order_errors

    def _local_trades(self, ref: str) -> list[Any]:
        return [
            t for t in self.ib.trades() if t.order.orderRef == ref and not self._never_placed(t)
        ]

    def _report(self, trade: Any) -> OrderReport:
        """A trade's report, with its status decided by error codes where IB sent one."""
        code_msg = self._order_errors.get(trade.order.orderId) if trade.order.orderId else None
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

    async def _scan(self, ref: str) -> Any | None:
        """Ask the venue: open orders, completed orders, then executions, for this orderRef."""
        await self.ib.reqAllOpenOrdersAsync()
        await self.ib.reqCompletedOrdersAsync(False)
        found = self._best(self._local_trades(ref))
        if found is None:
            fills = await self.ib.reqExecutionsAsync()
            if any(f.execution.orderRef == ref for f in fills):
                found = self._best(self._local_trades(ref))
        return found

    async def _find(self, ref: str, *, remote: bool) -> Any | None:
        found = self._best(self._local_trades(ref))
        if found is None and remote:
            found = await self._scan(ref)
        return found

    # ------------------------------------------------------------ placing

    async def _contract(self, symbol: str) -> Any:
        if symbol not in self._contracts:
            contract = mapping.stock(self.lib, symbol)
            qualified = await self.ib.qualifyContractsAsync(contract)
            if not qualified or qualified[0] is None or not contract.conId:
                text = f"IB error 200: no security definition for {symbol}"
                raise OrderRejected(text, code="200")
            self._contracts[symbol] = contract
        return self._contracts[symbol]

    async def place(self, order: OrderRequest) -> OrderReport:
        """Place (a bracket via parentId/transmit); idempotent on the client order id."""
        await self._ready()
        if await self._find(order.client_order_id, remote=False) is not None:
            raise DuplicateClientOrderId(f"orderRef {order.client_order_id} exists at IB")
        contract = await self._contract(order.symbol)
        ambiguous = False
        last: BrokerError | None = None
        for attempt in range(self.attempts):
            if ambiguous or attempt:
                await self._recover(attempt)
                found = await self._find(order.client_order_id, remote=True)
                if found is not None:
                    return self._report(found)
            try:
                return await self._submit(order, contract)
            except _Ambiguous:
                ambiguous = True
            except TransientBrokerError as exc:
                last = exc
        raise last or TransientBrokerError(f"IB placement of {order.client_order_id} unresolved")

    async def _recover(self, attempt: int) -> None:
        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        try:
            await self._ready()
        except TransientBrokerError:
            await self._wait(lambda: not self._outage)

    async def _submit(self, order: OrderRequest, contract: Any) -> OrderReport:
        """Send the order(s) with fresh ids and wait for the venue's answer."""
        first = self.ib.client.getReqId()
        legs = mapping.build_orders(self.lib, order, self.account_id, first)
        for _ in legs[1:]:
            self.ib.client.getReqId()
        trades = [self.ib.placeOrder(contract, ib_order) for _, ib_order in legs]
        ids = [t.order.orderId for t in trades]
        answered = await self._wait(lambda: self._answered(trades[0], ids))
        self._raise_order_error(ids)
        if not answered:
            raise _Ambiguous(order.client_order_id)
        return self._report(trades[0])

    def _answered(self, entry: Any, ids: list[int]) -> bool:
        if any(i in self._order_errors for i in ids):
            return True
        return bool(entry.order.permId) and entry.orderStatus.status not in ("PendingSubmit", "")

    def _raise_order_error(self, ids: list[int]) -> None:
        for order_id in ids:
            code_msg = self._order_errors.get(order_id)
            if code_msg is None:
                continue
            code, text = code_msg
            if errors.classify(code) is errors.ErrorKind.TRANSIENT:
                raise errors.to_exception(code, text)
            if errors.is_order_rejection(code):
                raise errors.to_exception(code, text)

    # ------------------------------------------------------------ queries

    async def status(self, client_order_id: str) -> OrderReport:
        """The order now, by orderRef (UnknownOrder when IB has none)."""
        await self._ready()
        found = await self._find(client_order_id, remote=True)
        if found is None:
            raise UnknownOrder(f"no IB order with orderRef {client_order_id}")
        return self._report(found)

    async def cancel(self, client_order_id: str) -> OrderReport:
        """Cancel; NotCancellable when already finished."""
        await self._ready()
        trade = await self._find(client_order_id, remote=True)
        if trade is None:
            raise UnknownOrder(f"no IB order with orderRef {client_order_id}")
        if self._report(trade).status.is_terminal:
            raise NotCancellable(f"{client_order_id} is {self._report(trade).status}")
        self._order_errors.pop(trade.order.orderId, None)
        self.ib.cancelOrder(trade.order)
        await self._wait(lambda: trade.isDone() or trade.order.orderId in self._order_errors)
        code_msg = self._order_errors.get(trade.order.orderId)
        if code_msg and code_msg[0] in (10147, 10148):
            raise errors.to_exception(*code_msg)
        return self._report(trade)

    async def open_orders(self) -> list[OrderReport]:
        """Every live order of the account (all clients)."""
        await self._ready()
        trades = await self.ib.reqAllOpenOrdersAsync()
        mine = [t for t in trades if (t.order.account or self.account_id) == self.account_id]
        reports = [self._report(t) for t in mine]
        return [r for r in reports if not r.status.is_terminal]

    async def _refresh_account(self) -> None:
        portfolio = getattr(self.ib.wrapper, "portfolio", None)
        if portfolio is not None and self.account_id in portfolio:
            portfolio[self.account_id].clear()
        await asyncio.wait_for(self.ib.reqAccountUpdatesAsync(self.account_id), self.timeout)

    async def account(self) -> AccountSnapshot:
        """Account figures fetched now (reqAccountUpdates), not a cache."""
        await self._ready()
        await self._refresh_account()
        values = {
            v.tag: v.value for v in self.ib.accountValues(self.account_id)
            if v.currency in ("USD", "BASE", "") and not v.modelCode
        }  # fmt: skip
        return account_snapshot(self.account_id, values)

    async def positions(self) -> list[Position]:
        """Positions with market value, fetched now."""
        await self._ready()
        await self._refresh_account()
        return [mapping_position(p) for p in self.ib.portfolio(self.account_id) if p.position]

    async def fills_since(self, since: datetime) -> list[FillReport]:
        """Executions at or after `since`, oldest first, with commissions."""
        await self._ready()
        fills = await self.ib.reqExecutionsAsync()
        stored = getattr(self.ib.wrapper, "fills", {})
        out = []
        for fill in fills:
            known = stored.get(fill.execution.execId, fill)
            report = mapping.fill_to_report(fill, known.commissionReport)
            if report.account_id == self.account_id and report.executed_at >= since:
                out.append(report)
        return sorted(out, key=lambda f: (f.executed_at, f.execution_id))

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        """Every order of the account created at or after `since`, any status, oldest first:
        the session's trades (placed here, or reported by openOrder / completedOrder) after
        asking for all open and completed orders; only orders with an orderRef (ours), one
        per orderRef. IB has no creation time on the wire, so created_at is the Trade log's
        first entry (the placement, for orders placed in this session; first sight, for
        another client's open order) or else the completed order's completedTime (it never
        precedes creation, so a rate window is not under-counted)."""
        await self._ready()
        try:
            await asyncio.wait_for(self.ib.reqAllOpenOrdersAsync(), self.timeout)
            completed = await asyncio.wait_for(
                self.ib.reqCompletedOrdersAsync(False), self.timeout
            )
        except TimeoutError as exc:
            text = "IB open/completed orders not answered"
            raise TransientBrokerError(text, code="1100") from exc
        trades = list(self.ib.trades())
        known = {t.order.permId for t in trades if t.order.permId}
        trades += [t for t in completed if t.order.permId not in known]
        by_ref: dict[str, list[Any]] = {}
        for trade in trades:
            order = trade.order
            if not order.orderRef or self._never_placed(trade):
                continue
            if (order.account or self.account_id) != self.account_id:
                continue
            by_ref.setdefault(order.orderRef, []).append(trade)
        out = []
        for group in by_ref.values():
            report = self._report(self._best(group))
            created = self._created_at(group)
            if created is not None:
                updated = max(report.updated_at, created)
                report = report.model_copy(update={"created_at": created, "updated_at": updated})
            if report.created_at >= since:
                out.append(report)
        return sorted(out, key=lambda r: (r.created_at, r.venue_order_id))

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
