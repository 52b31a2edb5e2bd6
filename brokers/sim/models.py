"""The simulator's mutable state records and the pure money rules they obey.

Kept apart from the matching engine so the rules (commission, average cost, realized P&L,
buying power) can be tested and read on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from brokers.port import AccountKind, FillReport, OrderReport
from brokers.sim.faults import FaultConfig
from brokers.sim.prices import DEFAULT_SIGMA, DEFAULT_THETA
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

ZERO = Decimal(0)
CENTS = Decimal("0.01")
DEFAULT_ACCOUNT_ID = "DU0000001"  # IB paper accounts start with "D"


class SimConfig(BaseModel):
    """How the simulated venue behaves; frozen so a running exchange cannot drift."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 1
    starting_cash: Decimal = Decimal(100000)
    default_account_id: str = DEFAULT_ACCOUNT_ID
    commission_per_share: Decimal = Decimal("0.005")
    commission_min: Decimal = Decimal("1.00")
    commission_max_pct: Decimal = Decimal("0.01")
    # Largest share of one step's volume a single order may take; the rest waits a step.
    max_volume_fraction: Decimal = Field(default=Decimal("0.25"), gt=0, le=1)
    # Reg-T-like: positions may reach margin_multiplier x equity (1 behaves as a cash account).
    margin_multiplier: Decimal = Field(default=Decimal(2), ge=1)
    shorting_enabled: bool = True  # the account may sell short at all
    not_shortable: frozenset[str] = frozenset()  # symbols with no shares to borrow
    theta: float = DEFAULT_THETA
    sigma: float = DEFAULT_SIGMA
    replay_csv: Path | None = None
    universe_csv: Path | None = None
    faults: FaultConfig = FaultConfig()


def commission_for(config: SimConfig, quantity: Decimal, value: Decimal) -> Decimal:
    """IB fixed pricing for a whole order: per share, at least the minimum, at most a % of value."""
    if quantity <= 0:
        return ZERO
    fee = max(config.commission_per_share * quantity, config.commission_min)
    fee = min(fee, config.commission_max_pct * value)
    return fee.quantize(CENTS, rounding=ROUND_HALF_UP)


@dataclass(slots=True)
class Lot:
    """A signed position with its average cost (negative quantity is short). `fees` is the
    opening commission still carried by the open quantity: realized when that part closes."""

    quantity: Decimal
    avg_cost: Decimal
    fees: Decimal = ZERO


def apply_to_lot(
    lot: Lot | None, signed_qty: Decimal, price: Decimal, commission: Decimal = ZERO
) -> tuple[Lot | None, Decimal]:
    """New position after a fill plus the P&L realized by whatever part of it closed.

    Realized P&L is net of commissions, as IB reports it: (close price - open price) x closed
    quantity, less the opening commission of the closed shares and the closing commission. A
    fill that only opens realizes nothing; its commission waits in the lot's `fees` (the
    average cost stays the bare price, as the port's Position shows it). A fill that flips
    the position splits its commission by quantity between the closing and the opening part.
    """
    held = lot.quantity if lot else ZERO
    if held == 0 or (held > 0) == (signed_qty > 0):
        cost = (lot.avg_cost * abs(held) if lot else ZERO) + price * abs(signed_qty)
        total = held + signed_qty
        fees = (lot.fees if lot else ZERO) + commission
        return Lot(total, cost / abs(total), fees), ZERO
    assert lot is not None
    closing = min(abs(signed_qty), abs(held))
    direction = Decimal(1) if held > 0 else Decimal(-1)
    closing_fee = commission * closing / abs(signed_qty)
    released = lot.fees * closing / abs(held)
    realized = closing * (price - lot.avg_cost) * direction - released - closing_fee
    total = held + signed_qty
    if total == 0:
        return None, realized
    if (total > 0) == (held > 0):
        return Lot(total, lot.avg_cost, lot.fees - released), realized
    return Lot(total, price, commission - closing_fee), realized


@dataclass(slots=True)
class SimAccount:
    """One account's cash, positions and realized P&L today (net of commissions, as IB's
    RealizedPnL: see apply_to_lot; zeroed at the close)."""

    account_id: str
    kind: AccountKind
    cash: Decimal
    realized_pnl_today: Decimal = ZERO
    positions: dict[str, Lot] = field(default_factory=dict)


@dataclass(slots=True)
class SimOrder:
    """One order's whole life at the venue; `report()` is what crosses the port."""

    seq: int
    account_id: str
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    created_at: datetime
    updated_at: datetime
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    leg: OrderLeg = OrderLeg.ENTRY
    parent_client_order_id: str | None = None
    oca_group: str | None = None
    status: OrderStatus = OrderStatus.ACCEPTED
    active: bool = True  # bracket children wait inactive until the entry fills
    triggered: bool = False  # stop orders, once their stop price has traded
    filled_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    commission: Decimal = ZERO
    reason: str | None = None
    liquidity_epoch: int = -1
    liquidity_used: Decimal = ZERO
    # the last report and what it was built from (a snapshot reports every order of the day:
    # most are unchanged since the last read)
    reported: tuple[tuple[object, ...], OrderReport] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    @property
    def signed_side(self) -> Decimal:
        return Decimal(1) if self.side is Side.BUY else Decimal(-1)

    @property
    def avg_fill_price(self) -> Decimal | None:
        if self.filled_quantity == 0:
            return None
        return self.filled_notional / self.filled_quantity

    def report(self) -> OrderReport:
        """What crosses the port; built again only when a field it shows changed."""
        version = (self.status, self.filled_quantity, self.filled_notional, self.updated_at,
                   self.reason, self.quantity, self.limit_price, self.stop_price,
                   self.venue_order_id)
        if self.reported is not None and self.reported[0] == version:
            return self.reported[1]
        report = self._build_report()
        self.reported = (version, report)
        return report

    def _build_report(self) -> OrderReport:
        return OrderReport(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            parent_client_order_id=self.parent_client_order_id,
            leg=self.leg,
            account_id=self.account_id,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            quantity=self.quantity,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            time_in_force=self.time_in_force,
            status=self.status,
            filled_quantity=self.filled_quantity,
            avg_fill_price=self.avg_fill_price,
            reason=self.reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@dataclass(frozen=True, slots=True)
class SimUpdate:
    """What subscribers get: one order state change or one execution, with its account."""

    account_id: str
    order: OrderReport | None = None
    fill: FillReport | None = None
