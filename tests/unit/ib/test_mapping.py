"""IB <-> port mapping and error classification (pure, library objects only)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import ib_async
import ib_insync
import pytest

from brokers.exceptions import NotCancellable, OrderRejected, TransientBrokerError, UnknownOrder
from brokers.ib import errors, mapping
from brokers.ib.service import account_snapshot
from brokers.port import AccountKind, OrderRequest
from schemas.events import OrderLeg, OrderStatus, OrderType, Side


@pytest.mark.parametrize(
    ("ib_status", "filled", "expected"),
    [
        ("PendingSubmit", 0, OrderStatus.SUBMITTED),
        ("PreSubmitted", 0, OrderStatus.SUBMITTED),
        ("Submitted", 0, OrderStatus.ACCEPTED),
        ("Submitted", 4, OrderStatus.PARTIALLY_FILLED),
        ("Filled", 10, OrderStatus.FILLED),
        # executions of the whole quantity read before the orderStatus that says Filled
        ("Submitted", 10, OrderStatus.FILLED),
        ("PreSubmitted", 10, OrderStatus.FILLED),
        ("Cancelled", 0, OrderStatus.CANCELLED),
        ("ApiCancelled", 0, OrderStatus.CANCELLED),
        ("Inactive", 0, OrderStatus.REJECTED),
    ],
)
def test_status_map(ib_status: str, filled: int, expected: OrderStatus) -> None:
    assert mapping.order_status(ib_status, Decimal(filled), Decimal(10)) is expected


@pytest.mark.parametrize(
    ("code", "kind"),
    [(1100, "transient"), (326, "transient"), (2104, "informational"), (110, "permanent"),
     (10243, "permanent"), (202, "cancelled"), (9999, "unknown")],
)  # fmt: skip
def test_classify(code: int, kind: str) -> None:
    assert errors.classify(code).value == kind


def test_to_exception() -> None:
    assert isinstance(errors.to_exception(1100, "x"), TransientBrokerError)
    assert isinstance(errors.to_exception(10147, "x"), UnknownOrder)
    assert isinstance(errors.to_exception(10148, "x"), NotCancellable)
    rejected = errors.to_exception(110, "x")
    assert isinstance(rejected, OrderRejected)
    assert rejected.code == "110"
    assert not errors.is_order_rejection(2104)
    assert errors.is_order_rejection(201)


@pytest.mark.parametrize("lib", [ib_async, ib_insync])
def test_bracket_orders(lib: object) -> None:
    req = OrderRequest(
        client_order_id="c1", symbol="AAPL", side=Side.BUY, quantity=Decimal(10),
        order_type=OrderType.LMT, limit_price=Decimal("150.00"), take_profit=Decimal(160),
        stop_loss=Decimal(140),
    )  # fmt: skip
    legs = mapping.build_orders(lib, req, "DU1", 20)
    assert [leg for leg, _ in legs] == [OrderLeg.ENTRY, OrderLeg.TAKE_PROFIT, OrderLeg.STOP_LOSS]
    entry, tp, sl = (o for _, o in legs)
    assert (entry.orderId, entry.transmit, entry.orderRef) == (20, False, "c1")
    assert (tp.parentId, tp.transmit, tp.orderRef, tp.lmtPrice, tp.action) == (
        20, False, "c1-tp", 160.0, "SELL",
    )  # fmt: skip
    assert (sl.parentId, sl.transmit, sl.orderType, sl.auxPrice) == (20, True, "STP", 140.0)
    assert tp.ocaGroup == sl.ocaGroup != ""


def test_trade_and_fill_reports() -> None:
    contract = ib_async.Stock("AAPL", "SMART", "USD")
    order = ib_async.LimitOrder("SELL", 5, 160.0, orderRef="c1-tp", parentId=20, permId=99,
                                account="DU1")  # fmt: skip
    status = ib_async.OrderStatus(orderId=21, status="Submitted", filled=2, avgFillPrice=160.0)
    trade = ib_async.Trade(contract, order, status, [], [])
    report = mapping.trade_to_report(trade, "DU1")
    assert (report.leg, report.parent_client_order_id, report.venue_order_id) == (
        OrderLeg.TAKE_PROFIT, "c1", "99",
    )  # fmt: skip
    assert report.status is OrderStatus.PARTIALLY_FILLED
    assert report.limit_price == Decimal(160)
    when = datetime(2026, 11, 21, tzinfo=UTC)
    ex = ib_async.Execution(execId="e1", time=when, acctNumber="DU1", side="SLD", shares=2.0,
                            price=160.0, permId=99, orderRef="c1-tp")  # fmt: skip
    fee = ib_async.CommissionReport(execId="e1", commission=1.0, currency="USD")
    fill = mapping.fill_to_report(ib_async.Fill(contract, ex, fee, when))
    assert (fill.side, fill.quantity, fill.commission, fill.executed_at) == (
        Side.SELL, Decimal(2), Decimal(1), when,
    )  # fmt: skip


def test_account_snapshot_from_values() -> None:
    snap = account_snapshot("DU1", {"NetLiquidation": "100.5", "TotalCashValue": "90",
                                    "BuyingPower": "200", "UnrealizedPnL": "-1.5"})  # fmt: skip
    assert snap.kind is AccountKind.PAPER
    assert snap.equity == Decimal("100.5")
    assert snap.unrealized_pnl == Decimal("-1.5")
    assert account_snapshot("U1", {}).kind is AccountKind.LIVE
