"""Core values (OrderReport, FillReport, Position, AccountSnapshot) as TWS message fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from brokers.port import AccountSnapshot, FillReport, OrderReport, Position
from schemas.events import OrderLeg, Side

from . import codec
from .book import Binding, wire_order_type, wire_status
from .codec import DetailsView, ExecView, OrderView, PortfolioView, WireContract


def wire_contract(instrument: Any) -> WireContract:
    """An instrument (brokers.sim.universe.Instrument) as the contract block."""
    symbol = str(instrument.symbol)
    return WireContract(
        con_id=int(instrument.con_id), symbol=symbol,
        sec_type=str(getattr(instrument, "sec_type", "STK")),
        exchange=str(getattr(instrument, "exchange", "SMART")),
        primary_exchange=str(getattr(instrument, "primary_exchange", "")),
        currency=str(getattr(instrument, "currency", "USD")),
        local_symbol=symbol, trading_class=symbol,
    )  # fmt: skip


def details_view(instrument: Any) -> DetailsView:
    """Contract details: what qualifyContracts and tick-size checks read."""
    lot = Decimal(getattr(instrument, "lot_size", 1))
    return DetailsView(
        contract=wire_contract(instrument), min_tick=Decimal(instrument.min_tick),
        long_name=str(getattr(instrument, "name", "")), min_size=lot, size_increment=lot,
    )  # fmt: skip


def _oca(binding: Binding, report: OrderReport) -> str:
    """Exit legs of a bracket share one OCA group named after the entry."""
    if binding.oca_group:
        return binding.oca_group
    if report.leg is OrderLeg.ENTRY:
        return ""
    return f"oca-{report.parent_client_order_id or report.client_order_id}"


def order_view(binding: Binding, report: OrderReport, contract: WireContract) -> OrderView:
    """An order's openOrder/orderStatus/completedOrder view."""
    status = wire_status(report.status)
    done = report.status.is_terminal
    avg = report.avg_fill_price or Decimal(0)
    return OrderView(
        order_id=binding.order_id, client_id=binding.client_id, perm_id=binding.perm_id,
        contract=contract, action=report.side.value, quantity=report.quantity,
        order_type=wire_order_type(report.order_type), status=status,
        account=report.account_id, order_ref=binding.order_ref, lmt_price=report.limit_price,
        aux_price=report.stop_price, tif=report.time_in_force.value,
        oca_group=_oca(binding, report),
        parent_id=binding.parent_id, parent_perm_id=binding.parent_perm_id,
        filled=report.filled_quantity, avg_fill_price=avg, last_fill_price=avg,
        completed_time=codec.ib_time(report.updated_at) if done else "",
        completed_status=status if done else "",
    )  # fmt: skip


def exec_view(
    binding: Binding, fill: FillReport, contract: WireContract, cum: tuple[Decimal, Decimal]
) -> ExecView:
    """One fill as execDetails + commissionReport; `cum` is (cumQty, avgPrice) of its order."""
    return ExecView(
        exec_id=fill.execution_id, order_id=binding.order_id, client_id=binding.client_id,
        perm_id=binding.perm_id, contract=contract, time=fill.executed_at,
        account=fill.account_id, side="BOT" if fill.side is Side.BUY else "SLD",
        shares=fill.quantity, price=fill.price, cum_qty=cum[0], avg_price=cum[1],
        order_ref=binding.order_ref, commission=fill.commission, currency=fill.currency,
    )  # fmt: skip


def portfolio_view(pos: Position, contract: WireContract) -> PortfolioView:
    """A position as a reqAccountUpdates portfolio row."""
    return PortfolioView(
        contract=contract, position=pos.quantity, market_price=pos.market_price,
        market_value=pos.market_value, avg_cost=pos.avg_cost, unrealized_pnl=pos.unrealized_pnl,
        realized_pnl=Decimal(0), account=pos.account_id,
    )  # fmt: skip


def account_values(snap: AccountSnapshot) -> list[tuple[str, str, str]]:
    """(key, value, currency) rows for reqAccountUpdates / Multi / Summary."""
    ccy = snap.currency
    money = {
        "NetLiquidation": snap.equity,
        "EquityWithLoanValue": snap.equity,
        "TotalCashValue": snap.cash,
        "SettledCash": snap.cash,
        "CashBalance": snap.cash,
        "BuyingPower": snap.buying_power,
        "AvailableFunds": snap.buying_power,
        "ExcessLiquidity": snap.buying_power,
        "GrossPositionValue": snap.gross_position_value,
        "RealizedPnL": snap.realized_pnl_today,
        "UnrealizedPnL": snap.unrealized_pnl,
    }
    rows = [(key, codec.fmt(value), ccy) for key, value in money.items()]
    rows.append(("AccountCode", snap.account_id, ""))
    rows.append(("AccountType", "INDIVIDUAL", ""))
    rows.append(("Currency", ccy, ccy))
    return rows
