"""TemplateOrderService: the OrderService port over the venue's client library (stubs)."""

from __future__ import annotations

from datetime import datetime

from brokers.port import (
    AccountSnapshot,
    FillReport,
    InstrumentRules,
    OrderReport,
    OrderRequest,
    Position,
)

from .settings import TemplateSettings


class TemplateOrderService:
    """Fill in each method over the real client library, every call under `timeout`."""

    venue = "template"

    def __init__(self, settings: TemplateSettings, timeout: float) -> None:
        self.settings = settings
        self.timeout = timeout

    async def connect(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def place(self, order: OrderRequest) -> OrderReport:
        raise NotImplementedError

    async def status(self, client_order_id: str) -> OrderReport:
        raise NotImplementedError

    async def cancel(self, client_order_id: str) -> OrderReport:
        raise NotImplementedError

    async def account(self) -> AccountSnapshot:
        raise NotImplementedError

    async def positions(self) -> list[Position]:
        raise NotImplementedError

    async def open_orders(self) -> list[OrderReport]:
        raise NotImplementedError

    async def fills_since(self, since: datetime) -> list[FillReport]:
        raise NotImplementedError

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        raise NotImplementedError

    async def instrument(self, symbol: str, borrow: bool = True) -> InstrumentRules | None:
        return None  # publishes nothing: configuration decides
