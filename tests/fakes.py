"""Fakes for the project's own ports: a venue that records every call."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from decimal import Decimal

from brokers.exceptions import DuplicateClientOrderId, UnknownOrder
from brokers.port import (
    AccountKind,
    AccountSnapshot,
    FillReport,
    OrderReport,
    OrderRequest,
    Position,
)
from schemas.events import OrderLeg, OrderStatus, Side

T0 = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)


class FakeVenue:
    """In-memory OrderService: orders rest until `fill()`; `fail_next` queues exceptions that
    the next place() calls raise; `now` is the creation time place() stamps (T0 unless set)."""

    venue = "fake"

    def __init__(self, equity: str = "100000", buying_power: str = "50000") -> None:
        self.calls: list[tuple[str, object]] = []
        self.orders: dict[str, OrderReport] = {}
        self.fills: list[FillReport] = []
        self.fail_next: deque[Exception] = deque()
        self.equity = Decimal(equity)
        self.buying_power = Decimal(buying_power)
        self.now = T0  # when place() says an order was created
        self.brackets = False  # True: a bracket also makes its exit orders

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.popleft()

    async def connect(self) -> None:
        self.calls.append(("connect", None))

    async def close(self) -> None:
        self.calls.append(("close", None))

    async def place(self, order: OrderRequest) -> OrderReport:
        self.calls.append(("place", order.client_order_id))
        self._maybe_fail()
        if order.client_order_id in self.orders:
            raise DuplicateClientOrderId(order.client_order_id)
        report = OrderReport(
            client_order_id=order.client_order_id, venue_order_id=str(len(self.orders) + 1),
            account_id="DU1", symbol=order.symbol, side=order.side,
            order_type=order.order_type, quantity=order.quantity, limit_price=order.limit_price,
            status=OrderStatus.ACCEPTED, created_at=self.now, updated_at=self.now,
        )
        self.orders[order.client_order_id] = report
        exits = ((OrderLeg.TAKE_PROFIT, order.take_profit), (OrderLeg.STOP_LOSS, order.stop_loss))
        for leg, price in exits:
            if price is not None and self.brackets:  # exits, as the venue names them
                coid = f"{order.client_order_id}:{leg.value}:{len(self.orders)}"
                side = Side.SELL if order.side is Side.BUY else Side.BUY
                self.orders[coid] = report.model_copy(update={
                    "client_order_id": coid, "venue_order_id": str(len(self.orders) + 1),
                    "parent_client_order_id": order.client_order_id, "leg": leg, "side": side,
                    "limit_price": price})
        return report

    async def instrument(self, symbol: str, borrow: bool = True) -> None:
        """The fake publishes no instrument rules: the configured ones apply."""
        return None

    def fill(self, coid: str, price: str, execution_id: str, at: datetime = T0) -> None:
        order = self.orders[coid]
        self.fills.append(FillReport(
            execution_id=execution_id, client_order_id=coid,
            venue_order_id=order.venue_order_id, account_id="DU1", symbol=order.symbol,
            side=order.side, quantity=order.quantity, price=Decimal(price),
            commission=Decimal("1.00"), executed_at=at,
        ))
        self.orders[coid] = order.model_copy(update={
            "status": OrderStatus.FILLED, "filled_quantity": order.quantity,
            "avg_fill_price": Decimal(price)})

    async def status(self, client_order_id: str) -> OrderReport:
        self.calls.append(("status", client_order_id))
        if client_order_id not in self.orders:
            raise UnknownOrder(client_order_id)
        return self.orders[client_order_id]

    async def cancel(self, client_order_id: str) -> OrderReport:
        report = await self.status(client_order_id)
        self.orders[client_order_id] = report.model_copy(update={"status": OrderStatus.CANCELLED})
        return self.orders[client_order_id]

    async def account(self) -> AccountSnapshot:
        self.calls.append(("account", None))
        return AccountSnapshot(account_id="DU1", kind=AccountKind.PAPER, equity=self.equity,
                               cash=self.equity, buying_power=self.buying_power, as_of=T0)

    async def positions(self) -> list[Position]:
        return []

    async def open_orders(self) -> list[OrderReport]:
        return [o for o in self.orders.values() if not o.status.is_terminal]

    async def fills_since(self, since: datetime) -> list[FillReport]:
        return [f for f in self.fills if f.executed_at >= since]

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        chosen = [o for o in self.orders.values() if o.created_at >= since]
        return sorted(chosen, key=lambda o: o.created_at)
