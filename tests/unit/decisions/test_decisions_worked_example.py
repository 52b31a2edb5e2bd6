"""The seed's worked example must reproduce exactly: 133 shares, 665.00 risked, bound by 20%."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.decisions import Instrument, Sizing, decide, parse_signal, size_position
from schemas.events import OrderIntent, OrderType, Side, Signal, SizingBound, TimeInForce
from schemas.examples import SEED_SIGNAL
from tests.unit.decisions.decisions_factory import T0, Factory


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL], ids=["BUY", "SELL-mirror"])
def test_seed_sizing_figures_exact(f: Factory, side: Side) -> None:
    sizing = size_position(f.signal(side), f.account(), Instrument(), f.settings())
    assert isinstance(sizing, Sizing)
    fig = sizing.figures
    assert sizing.quantity == Decimal("133")
    assert fig.risk_amount == Decimal("665.00")
    assert fig.risk_percent == Decimal("0.00665")
    assert fig.position_value == Decimal("19950.00")
    assert fig.rr_ratio == Decimal("2.0")
    assert fig.bound_by == SizingBound.POSITION_PCT
    assert fig.uncapped_quantity == Decimal("200")
    assert fig.equity == Decimal("100000")
    assert fig.buying_power == Decimal("50000")
    assert fig.risk_per_trade == Decimal("0.01")
    assert fig.stop_distance == Decimal("5.00")
    assert fig.scale == Decimal(1)
    assert sizing.order_type is OrderType.LMT
    assert sizing.limit_price == Decimal("150.00")


def test_seed_json_through_decide(f: Factory) -> None:
    signal = parse_signal({**SEED_SIGNAL, "occurred_at": T0.isoformat()})
    assert isinstance(signal, Signal)
    approval = f.approval(signal)
    intent = decide(approval, f.account(), [], [], 0, T0, f.settings(), "ib")
    assert isinstance(intent, OrderIntent)
    assert (intent.symbol, intent.side, intent.quantity) == ("AAPL", Side.BUY, Decimal(133))
    assert intent.order_type is OrderType.LMT
    assert intent.limit_price == Decimal("150.00")
    assert intent.take_profit == Decimal("160.00")
    assert intent.stop_loss == Decimal("145.00")
    assert intent.time_in_force is TimeInForce.DAY
    assert intent.strategy_id == "ma_crossover_v1"
    assert intent.signal_id == SEED_SIGNAL["id"]
    assert intent.approved_by == "test_user"
    assert intent.account_id == "DU1234567"
    assert intent.venue == "ib"
    assert intent.occurred_at == T0
    assert intent.recorded_at == T0
    ids = OrderIntent.ids_for(approval)
    assert intent.event_id == ids["event_id"]
    assert intent.client_order_id == ids["client_order_id"]
    assert intent.correlation_id == approval.correlation_id
    assert intent.causation_id == approval.event_id
    fig = intent.sizing
    assert (fig.risk_amount, fig.risk_percent, fig.position_value, fig.rr_ratio) == (
        Decimal("665.00"),
        Decimal("0.00665"),
        Decimal("19950.00"),
        Decimal("2.0"),
    )
    assert fig.bound_by == SizingBound.POSITION_PCT


def test_decide_is_deterministic(f: Factory) -> None:
    approval = f.approval()
    first = decide(approval, f.account(), [], [], 0, T0, f.settings(), "ib")
    again = decide(approval, f.account(), [], [], 0, T0, f.settings(), "ib")
    assert first == again
    assert first.model_dump_json() == again.model_dump_json()
