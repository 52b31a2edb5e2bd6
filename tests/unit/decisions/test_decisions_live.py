"""The live guard: a live account trades only when named by LIVE_TRADING_ACCOUNT."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.decisions import (
    LiveTradingRefused,
    ReasonCode,
    account_kind_from_id,
    check_account_mode,
    decide,
    reject_signal,
    rejection_from,
)
from agents.decisions.reasons import Refusal
from brokers.port import AccountKind
from schemas.errors import JaxError
from schemas.events import OrderIntent, Rejection, SizingBound
from schemas.ids import derive_id
from tests.unit.decisions.decisions_factory import T0, Factory


@pytest.mark.parametrize(
    ("account_id", "kind"),
    [
        ("DU1234567", AccountKind.PAPER),
        ("DF1234567", AccountKind.PAPER),
        ("du1234567", AccountKind.PAPER),
        ("U1234567", AccountKind.LIVE),
        ("F1234567", AccountKind.LIVE),
        ("", AccountKind.LIVE),
    ],
)
def test_account_kind_from_id(account_id: str, kind: AccountKind) -> None:
    assert account_kind_from_id(account_id) is kind


@pytest.mark.parametrize(
    ("account_id", "kind", "enabled", "refused"),
    [
        pytest.param("DU1", AccountKind.PAPER, "", False, id="paper"),
        pytest.param("DU1", None, "", False, id="paper-from-id"),
        pytest.param("U1", AccountKind.LIVE, "", True, id="live-not-enabled"),
        pytest.param("U1", None, "", True, id="live-from-id"),
        pytest.param("U1", AccountKind.LIVE, "U2", True, id="live-other-enabled"),
        pytest.param("U1", AccountKind.LIVE, "U1", False, id="live-enabled"),
    ],
)
def test_check_account_mode(
    f: Factory, account_id: str, kind: AccountKind | None, enabled: str, refused: bool
) -> None:
    settings = f.settings(live_trading_account=enabled)
    if refused:
        with pytest.raises(LiveTradingRefused, match=f"LIVE_TRADING_ACCOUNT={account_id}") as info:
            check_account_mode(account_id, kind, settings)
        assert isinstance(info.value, JaxError)
        assert info.value.account_id == account_id
    else:
        check_account_mode(account_id, kind, settings)


def test_live_account_not_enabled_is_rejected(f: Factory) -> None:
    approval = f.approval()
    account = f.account(account_id="U7654321", kind=AccountKind.LIVE)
    result = decide(approval, account, [], [], 0, T0, f.settings(), "ib")
    assert isinstance(result, Rejection)
    assert result.reason_code == ReasonCode.LIVE_TRADING_NOT_ENABLED
    assert result.stage == "live_guard"
    assert result.event_id == derive_id("rejection", approval.event_id, result.reason_code)
    assert result.causation_id == approval.event_id
    assert result.correlation_id == approval.correlation_id
    assert result.subject_event_id == approval.event_id
    assert (result.signal_id, result.symbol, result.strategy_id) == (
        approval.signal.id,
        "AAPL",
        "ma_crossover_v1",
    )
    assert result.occurred_at == T0


def test_live_account_enabled_is_ramped(f: Factory) -> None:
    account = f.account(account_id="U7654321", kind=AccountKind.LIVE)
    settings = f.settings(live_trading_account="U7654321")
    result = decide(f.approval(), account, [], [], 0, T0, settings, "ib")
    assert isinstance(result, OrderIntent)
    assert result.quantity == Decimal(6)  # 1,000 live cap / 150
    assert result.sizing.bound_by == SizingBound.LIVE_NOTIONAL_CAP
    assert result.sizing.scale == Decimal("0.1")
    assert result.sizing.position_value <= Decimal(1000)


def test_reject_signal_for_the_validation_stage(f: Factory) -> None:
    signal = f.signal(symbol="aapl")
    refusal = Refusal.of(ReasonCode.INVALID_SYMBOL, "bad symbol", "validation", symbol="aapl")
    rejection = reject_signal(signal, refusal, T0)
    assert rejection.event_id == derive_id("rejection", signal.event_id, "INVALID_SYMBOL")
    assert rejection.causation_id == signal.event_id
    assert rejection.correlation_id == signal.correlation_id
    assert rejection.subject_event_id == signal.event_id
    assert rejection.details == {"symbol": "aapl"}
    assert rejection.stage == "validation"
    assert rejection.recorded_at == T0


def test_rejection_without_causing_event(f: Factory) -> None:
    refusal = Refusal.of(ReasonCode.MISSING_FIELD, "no entry", "validation", fields="entry_price")
    signal = f.signal()
    rejection = rejection_from(
        refusal, correlation_id=signal.correlation_id, causation_id=None, now=T0, signal_id="x"
    )
    assert rejection.causation_id is None
    assert rejection.event_id == derive_id("rejection", signal.correlation_id, "MISSING_FIELD")
