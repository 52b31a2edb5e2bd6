"""Factories for the decision tests: the seed's worked example is the baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from agents.decisions.config import RiskSettings
from brokers.port import AccountKind, AccountSnapshot, OrderReport, Position
from schemas.events import (
    Approval,
    Decision,
    OrderLeg,
    OrderStatus,
    OrderType,
    Side,
    Signal,
)

# Friday 2026-02-06, 10:00 in New York.
T0 = datetime(2026, 2, 6, 15, 0, tzinfo=UTC)
DROP = object()

PRICES = {
    Side.BUY: {"entry_price": "150.00", "stop_loss": "145.00", "take_profit": "160.00"},
    Side.SELL: {"entry_price": "150.00", "stop_loss": "155.00", "take_profit": "140.00"},
}


class Factory:
    """Builds the worked example (and its SELL mirror) with targeted overrides."""

    now = T0

    def signal_dict(self, side: Side = Side.BUY, **over: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": "123e4567-e89b-12d3-a456-426614174000",
            "symbol": "AAPL",
            "signal_type": side.value,
            **PRICES[side],
            "confidence": "0.85",
            "strategy_id": "ma_crossover_v1",
            "occurred_at": T0.isoformat(),
        }
        data.update(over)
        return {k: v for k, v in data.items() if v is not DROP}

    def signal(self, side: Side = Side.BUY, **over: Any) -> Signal:
        return Signal.model_validate(self.signal_dict(side, **over))

    def approval_dict(self, signal: Signal | dict[str, Any] | None = None, **over: Any) -> dict:
        data: dict[str, Any] = {
            "signal": signal if signal is not None else self.signal_dict(),
            "decision": Decision.APPROVED.value,
            "approved_by": "test_user",
            "decided_at": T0.isoformat(),
        }
        data.update(over)
        return {k: v for k, v in data.items() if v is not DROP}

    def approval(self, signal: Signal | dict[str, Any] | None = None, **over: Any) -> Approval:
        return Approval.model_validate(self.approval_dict(signal, **over))

    def account(self, **over: Any) -> AccountSnapshot:
        data: dict[str, Any] = {
            "account_id": "DU1234567",
            "kind": AccountKind.PAPER,
            "equity": Decimal("100000"),
            "cash": Decimal("100000"),
            "buying_power": Decimal("50000"),
            "as_of": T0,
        }
        data.update(over)
        return AccountSnapshot(**data)

    def settings(self, **over: Any) -> RiskSettings:
        return RiskSettings(**over)

    def position(self, symbol: str, quantity: str, price: str) -> Position:
        qty, px = Decimal(quantity), Decimal(price)
        return Position(
            account_id="DU1234567",
            symbol=symbol,
            quantity=qty,
            avg_cost=px,
            market_price=px,
            market_value=qty * px,
            unrealized_pnl=Decimal(0),
        )

    def order(
        self,
        symbol: str,
        quantity: str,
        price: str | None,
        *,
        leg: OrderLeg = OrderLeg.ENTRY,
        status: OrderStatus = OrderStatus.ACCEPTED,
        filled: str = "0",
        side: Side = Side.BUY,
    ) -> OrderReport:
        return OrderReport(
            client_order_id=f"jx-{symbol}-{quantity}-{leg}",
            venue_order_id="1",
            leg=leg,
            account_id="DU1234567",
            symbol=symbol,
            side=side,
            order_type=OrderType.LMT if price is not None else OrderType.MKT,
            quantity=Decimal(quantity),
            limit_price=None if price is None else Decimal(price),
            status=status,
            filled_quantity=Decimal(filled),
            created_at=T0,
            updated_at=T0,
        )
