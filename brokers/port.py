"""The one port every venue implements, and the value types that cross it."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce, check_order_prices


class AccountKind(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderRequest(_Value):
    """What to place. With take_profit and/or stop_loss it is a bracket: the entry plus exit
    children in one OCA group. Reports know the exits by `leg` and `parent_client_order_id`;
    their own client ids are the venue's (IB and the simulator use `child_client_order_id`,
    Alpaca assigns its own), so never recognise a leg by its id."""

    client_order_id: str = Field(min_length=1, max_length=64)
    symbol: str
    side: Side
    quantity: Decimal = Field(gt=0)
    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None

    @model_validator(mode="after")
    def _prices_match_type(self) -> OrderRequest:
        check_order_prices(self.order_type, self.limit_price, self.stop_price)
        return self

    @property
    def is_bracket(self) -> bool:
        return self.take_profit is not None or self.stop_loss is not None


def orders_shown_within(service: object) -> timedelta:
    """How long after its creation time an order may first show in the venue's orders_since
    (`orders_shown_within`, optional beside the port: IB's adapter reads every order only so
    often; undeclared: at once). The wrappers pass their inner adapter's on."""
    found = getattr(service, "orders_shown_within", None)
    return found if isinstance(found, timedelta) else timedelta(0)


def read_afresh(service: object) -> None:
    """Have the venue's next reads ask the venue, not what the adapter holds between its full
    reads (`read_afresh`, optional beside the port: IB's adapter answers from the state TWS
    pushes to its own session, in which another process's orders show only at its next full
    read). The wrappers pass it on to their inner adapter."""
    ask = getattr(service, "read_afresh", None)
    if callable(ask):
        ask()


def child_client_order_id(parent: str, leg: OrderLeg) -> str:
    """The client id IB and the simulator give a bracket exit (`<id>-tp` / `<id>-sl`)."""
    suffix = {OrderLeg.TAKE_PROFIT: "tp", OrderLeg.STOP_LOSS: "sl"}[leg]
    return f"{parent}-{suffix}"


class OrderReport(_Value):
    """An order as the venue sees it now."""

    client_order_id: str
    venue_order_id: str
    parent_client_order_id: str | None = None
    leg: OrderLeg = OrderLeg.ENTRY
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    status: OrderStatus
    filled_quantity: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime


class FillReport(_Value):
    """One execution."""

    execution_id: str
    client_order_id: str
    venue_order_id: str
    parent_client_order_id: str | None = None
    leg: OrderLeg = OrderLeg.ENTRY
    account_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    commission: Decimal = Decimal(0)
    commission_known: bool = True  # False: the venue has not reported the commission yet
    currency: str = "USD"
    executed_at: datetime


class AccountSnapshot(_Value):
    """Account figures at the moment of asking. Sizing and limits read these, never a cache."""

    account_id: str
    kind: AccountKind
    currency: str = "USD"
    equity: Decimal  # net liquidation value
    cash: Decimal
    buying_power: Decimal
    realized_pnl_today: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    gross_position_value: Decimal = Decimal(0)
    shorting_enabled: bool = True
    as_of: datetime


class Position(_Value):
    account_id: str
    symbol: str
    quantity: Decimal  # signed: negative is short
    avg_cost: Decimal
    market_price: Decimal
    market_value: Decimal
    unrealized_pnl: Decimal


class InstrumentRules(_Value):
    """How a venue says one instrument trades. Every field None = the venue does not publish
    it: use the configured value (agents/decisions/instruments.py) instead."""

    symbol: str
    lot_size: Decimal | None = Field(default=None, gt=0)  # whole-order quantity step
    min_quantity: Decimal | None = Field(default=None, gt=0)
    max_quantity: Decimal | None = Field(default=None, gt=0)
    quantity_increment: Decimal | None = Field(default=None, gt=0)  # step when fractional
    tick_size: Decimal | None = Field(default=None, gt=0)  # price step (precision for FX)
    fractional: bool | None = None
    shortable: bool | None = None
    currency: str | None = None  # the quote currency
    # account-currency value of one unit of the quote currency (OANDA's homeConversions
    # accountLoss): sizing converts a pair's per-unit loss with it; None = 1
    home_conversion: Decimal | None = Field(default=None, gt=0)


@runtime_checkable
class OrderService(Protocol):
    """One venue account. Every method may raise brokers.exceptions.BrokerError subclasses:
    TransientBrokerError (retry later), OrderRejected / DuplicateClientOrderId / UnknownOrder /
    NotCancellable (permanent)."""

    venue: str

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def place(self, order: OrderRequest) -> OrderReport:
        """Place an order (a bracket when take_profit/stop_loss are set); return the entry."""
        ...

    async def status(self, client_order_id: str) -> OrderReport:
        """The order now; UnknownOrder when the venue has none with this client id."""
        ...

    async def cancel(self, client_order_id: str) -> OrderReport:
        """Ask to cancel; return the order after the request (cancelled or still pending)."""
        ...

    async def account(self) -> AccountSnapshot: ...

    async def positions(self) -> list[Position]: ...

    async def open_orders(self) -> list[OrderReport]: ...

    async def fills_since(self, since: datetime) -> list[FillReport]:
        """Every execution at or after `since`, oldest first."""
        ...

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        """Every order created (sent) at or after `since`, whatever its status now (open,
        filled, cancelled, expired, rejected after acceptance), oldest first; bracket exit
        children included. For rate limits and audits."""
        ...

    async def instrument(self, symbol: str, borrow: bool = True) -> InstrumentRules | None:
        """The instrument's rules as the venue publishes them; None when it publishes none
        (then configuration decides). OrderRejected when the venue does not know `symbol`.

        `borrow`: whether the answer must say if the venue lends the instrument for a short
        sale now (`shortable`). A venue that answers it only at a cost (IB: a market-data
        request and its cancel) skips it when False and leaves `shortable` None; one that
        publishes it with the rest answers it anyway. Only a sell can be a short sale."""
        ...
