from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agents.context import StageContext
from agents.decisions.config import RiskSettings
from agents.retry import RetryPolicy
from schemas.events import Approval, OrderIntent, OrderType, SizingBound, SizingFigures
from tests.fakes import T0, FakeVenue

SEED = {
    "id": "123e4567-e89b-12d3-a456-426614174000", "symbol": "AAPL", "signal_type": "BUY",
    "entry_price": 150.00, "stop_loss": 145.00, "take_profit": 160.00, "confidence": 0.85,
    "strategy_id": "ma_crossover_v1",
}


def approval(decision: str = "approved", **signal: object) -> Approval:
    return Approval.model_validate({
        "signal": {**SEED, **signal}, "decision": decision, "approved_by": "alice",
        "decided_at": datetime.now(UTC),
    })


def intent_for(a: Approval) -> OrderIntent:
    return OrderIntent(
        **OrderIntent.ids_for(a), account_id="DU1", venue="fake", symbol="AAPL",
        side=a.signal.side, quantity=Decimal(133), order_type=OrderType.LMT,
        limit_price=Decimal("150.00"), take_profit=Decimal("160.00"),
        stop_loss=Decimal("145.00"), strategy_id="ma_crossover_v1", signal_id=a.signal.id,
        approved_by="alice",
        sizing=SizingFigures(
            equity=Decimal(100000), buying_power=Decimal(50000), risk_per_trade=Decimal("0.01"),
            stop_distance=Decimal(5), risk_amount=Decimal(665), risk_percent=Decimal("0.00665"),
            position_value=Decimal(19950), rr_ratio=Decimal(2),
            bound_by=SizingBound.POSITION_PCT, uncapped_quantity=Decimal(200)),
    )


def raw(obj: object) -> bytes:
    if hasattr(obj, "model_dump_json"):
        return obj.model_dump_json().encode()
    return json.dumps(obj).encode()


@pytest.fixture
def venue() -> FakeVenue:
    return FakeVenue()


@pytest.fixture
def ctx(venue: FakeVenue) -> StageContext:
    return StageContext(risk=RiskSettings(), venue=venue, clock=lambda: T0,
                        retry=RetryPolicy(attempts=3, sleep=no_sleep))


async def no_sleep(seconds: float) -> None:
    """The retry policy's sleep in unit tests: none."""
