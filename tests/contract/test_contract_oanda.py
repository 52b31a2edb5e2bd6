"""The OrderService contract over OANDA's official `v20` client talking to the simulator's
OANDA door, over a real socket.

The shared suite is written in equities (AAPL at 150.00, 10 shares); OANDA trades currency
pairs. An instrument map translates at the port: AAPL -> EUR_USD and MSFT -> GBP_USD, prices
x 0.001 (150.00 -> 0.15000, and the suite's off-tick 150.005 -> 0.150005, past EUR_USD's five
decimals) and quantities x 1000 (10 shares -> 10,000 units), so notionals (1,500 USD) and
P&L are the suite's own figures. The real client, door and core run untranslated.

Overridden where OANDA differs by design: refusal codes are OANDA's reject reasons; opening a
position moves no cash (balance + unrealized P&L = NAV); a market order never rests (the
partial-fill case uses a limit order); an order refused for margin is created and cancelled
at once, so it exists afterwards (REJECTED).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from brokers.exceptions import OrderRejected
from brokers.oanda.service import OandaOrderService
from brokers.port import AccountSnapshot, FillReport, OrderReport, OrderRequest, Position
from brokers.sim.core import Exchange
from brokers.sim.oanda import DEFAULT_TOKEN, start_oanda_door
from brokers.sim.reasons import Reason
from schemas.events import OrderStatus, OrderType
from tests.contract.contract import ExchangeMarket, OrderServiceContract, eventually, order_request

PRICE = Decimal("0.001")
UNITS = Decimal(1000)


@dataclass(frozen=True)
class InstrumentMap:
    """Equity symbols and scales of the shared suite -> the venue's instruments."""

    symbols: dict[str, str]
    price: Decimal
    quantity: Decimal

    def out_symbol(self, symbol: str) -> str:
        return self.symbols.get(symbol, symbol)

    def in_symbol(self, symbol: str) -> str:
        back = {v: k for k, v in self.symbols.items()}
        return back.get(symbol, symbol)


FX = InstrumentMap({"AAPL": "EUR_USD", "MSFT": "GBP_USD"}, PRICE, UNITS)


def _px(value: Decimal | None, scale: Decimal) -> Decimal | None:
    return None if value is None else value * scale


class MappedService:
    """The port, with the suite's equities translated to pairs and back."""

    def __init__(self, inner: OandaOrderService, mapping: InstrumentMap) -> None:
        self.inner, self.map = inner, mapping
        self.venue, self.lib = inner.venue, inner.lib

    def _request(self, order: OrderRequest) -> OrderRequest:
        m = self.map
        return order.model_copy(update={
            "symbol": m.out_symbol(order.symbol), "quantity": order.quantity * m.quantity,
            "limit_price": _px(order.limit_price, m.price),
            "stop_price": _px(order.stop_price, m.price),
            "take_profit": _px(order.take_profit, m.price),
            "stop_loss": _px(order.stop_loss, m.price),
        })  # fmt: skip

    def _report(self, r: OrderReport) -> OrderReport:
        m = self.map
        return r.model_copy(update={
            "symbol": m.in_symbol(r.symbol), "quantity": r.quantity / m.quantity,
            "filled_quantity": r.filled_quantity / m.quantity,
            "limit_price": _px(r.limit_price, 1 / m.price),
            "stop_price": _px(r.stop_price, 1 / m.price),
            "avg_fill_price": _px(r.avg_fill_price, 1 / m.price),
        })  # fmt: skip

    def _fill(self, f: FillReport) -> FillReport:
        m = self.map
        return f.model_copy(update={"symbol": m.in_symbol(f.symbol),
                                    "quantity": f.quantity / m.quantity,
                                    "price": f.price / m.price})  # fmt: skip

    def _position(self, p: Position) -> Position:
        m = self.map
        return p.model_copy(update={"symbol": m.in_symbol(p.symbol),
                                    "quantity": p.quantity / m.quantity,
                                    "avg_cost": p.avg_cost / m.price,
                                    "market_price": p.market_price / m.price})  # fmt: skip

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def place(self, order: OrderRequest) -> OrderReport:
        return self._report(await self.inner.place(self._request(order)))

    async def status(self, client_order_id: str) -> OrderReport:
        return self._report(await self.inner.status(client_order_id))

    async def cancel(self, client_order_id: str) -> OrderReport:
        return self._report(await self.inner.cancel(client_order_id))

    async def account(self) -> AccountSnapshot:
        return await self.inner.account()

    async def positions(self) -> list[Position]:
        return [self._position(p) for p in await self.inner.positions()]

    async def open_orders(self) -> list[OrderReport]:
        return [self._report(r) for r in await self.inner.open_orders()]

    async def fills_since(self, since: datetime) -> list[FillReport]:
        return [self._fill(f) for f in await self.inner.fills_since(since)]

    async def orders_since(self, since: datetime) -> list[OrderReport]:
        return [self._report(r) for r in await self.inner.orders_since(since)]

    async def instrument(self, symbol: str, borrow: bool = True) -> Any:
        return await self.inner.instrument(self.map.out_symbol(symbol), borrow)


class MappedMarket(ExchangeMarket):
    def __init__(self, exchange: Exchange, mapping: InstrumentMap) -> None:
        super().__init__(exchange)
        self.map = mapping

    def set_price(self, symbol: str, price: Decimal) -> None:
        super().set_price(self.map.out_symbol(symbol), Decimal(price) * self.map.price)

    def set_liquidity(self, symbol: str, shares: Decimal | None) -> None:
        units = None if shares is None else shares * self.map.quantity
        super().set_liquidity(self.map.out_symbol(symbol), units)


class TestOandaV20OrderService(OrderServiceContract):
    venue_codes: ClassVar[dict[Reason, str]] = {
        Reason.UNKNOWN_INSTRUMENT: "INSTRUMENT_UNKNOWN",
        Reason.OFF_TICK: "PRICE_PRECISION_EXCEEDED",
        Reason.INSUFFICIENT_BUYING_POWER: "INSUFFICIENT_MARGIN",
        Reason.DUPLICATE_CLIENT_ID: "duplicate_client_order_id",
    }

    @pytest.fixture
    def market(self, exchange: Exchange) -> MappedMarket:
        return MappedMarket(exchange, FX)

    @pytest.fixture
    async def service(self, exchange: Exchange) -> AsyncIterator[Any]:
        door = await start_oanda_door(exchange, "127.0.0.1", 0)
        svc = OandaOrderService("127.0.0.1", door.port, DEFAULT_TOKEN, ssl=False, timeout=4.0)
        mapped = MappedService(svc, FX)
        await mapped.connect()
        yield mapped
        await mapped.close()
        await door.close()

    async def test_instrument_rules_where_published(self, service: Any) -> None:
        rules = await service.instrument("AAPL")  # EUR_USD, untranslated
        print(f"[oanda] {rules}")
        assert rules.symbol == "EUR_USD"
        assert (rules.tick_size, rules.lot_size, rules.min_quantity) == (
            Decimal("0.00001"), Decimal(1), Decimal(1)
        )
        assert rules.currency == "USD"
        assert rules.home_conversion == Decimal(1)
        jpy = await service.instrument("USD_JPY")
        assert jpy.tick_size == Decimal("0.001")
        assert jpy.home_conversion is not None
        assert jpy.home_conversion < Decimal("0.01")
        with pytest.raises(OrderRejected) as caught:
            await service.instrument("NOSUCHSYM")
        assert caught.value.code == "INSTRUMENT_UNKNOWN"

    async def test_insufficient_buying_power_is_permanent(self, service: Any, market: Any) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        with pytest.raises(OrderRejected) as caught:  # 90M units: below the maximum order units
            await service.place(order_request("c-huge", quantity=Decimal(90_000)))
        self.assert_code(caught.value, Reason.INSUFFICIENT_BUYING_POWER)
        assert caught.value.transient is False
        assert (await service.status("c-huge")).status is OrderStatus.REJECTED

    async def test_account_after_fill(self, service: Any, market: Any) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(order_request("c-acct"))
        await self.wait_status(service, "c-acct", OrderStatus.FILLED)
        market.set_price("AAPL", Decimal("151.00"))
        snap = await eventually(
            service.account, lambda s: s.unrealized_pnl != 0, what="unrealized P&L"
        )
        print(f"[oanda] after 10,000 EUR_USD @ 0.15000 -> 0.15100: {snap}")
        assert snap.cash == Decimal(100000)  # OANDA: opening moves no cash
        assert snap.unrealized_pnl == Decimal(10)
        assert snap.gross_position_value == Decimal(1510)
        assert snap.equity == snap.cash + snap.unrealized_pnl

    async def test_partial_fill_under_volume_cap(self, service: Any, market: Any) -> None:
        market.set_price("MSFT", Decimal("415.50"))
        market.set_liquidity("MSFT", Decimal(10))
        await service.place(order_request("c-part", symbol="MSFT", quantity=Decimal(25),
                                          order_type=OrderType.LMT,
                                          limit_price=Decimal("415.50")))  # fmt: skip
        first = await self.wait_status(service, "c-part", OrderStatus.PARTIALLY_FILLED)
        assert first.filled_quantity == Decimal(10)
        market.advance()
        market.advance()
        done = await self.wait_status(service, "c-part", OrderStatus.FILLED)
        assert done.filled_quantity == Decimal(25)
        fills = await service.fills_since(datetime.now(UTC) - timedelta(hours=1))
        assert [f.quantity for f in fills if f.client_order_id == "c-part"] == [
            Decimal(10), Decimal(10), Decimal(5)
        ]  # fmt: skip
