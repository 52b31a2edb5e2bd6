"""The order state machine: which venue report may follow which. Pure: no I/O.

States (schemas.events.OrderStatus):

- pending_submit: the submission stage is about to place the order; the venue may not know it.
- submitted: sent; the venue has not confirmed it is working (IB PreSubmitted).
- accepted: working at the venue, nothing filled.
- partially_filled: working, some quantity filled (0 < filled < quantity).
- pending_cancel: a cancel was asked for and not confirmed; fills may still arrive, and a
  refused cancel puts the order back to work (accepted / partially_filled).
- filled (final): filled == quantity.
- cancelled (final): cancelled by us, the venue or an OCA sibling; may carry a partial fill.
  The reconciler also uses it, with reason_code "vanished", for an order the venue forgot.
- rejected (final): refused by the venue, before or after it was working.
- expired (final): its time in force ran out; may carry a partial fill.

The venue reports cumulative figures (filled quantity, average price) as snapshots, so a poll
can skip states: any forward move in TRANSITIONS is legal. A final state is final: a report
that would move it is Illegal, as is a filled quantity that goes down. A report behind what is
known (a working state earlier than the known one, same filled quantity) is a stale copy:
Unchanged, not an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from schemas.events import OrderStatus

S = OrderStatus
_AFTER_SUBMIT = frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL,
                           S.CANCELLED, S.REJECTED, S.EXPIRED})

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_SUBMIT: _AFTER_SUBMIT | {S.SUBMITTED},
    S.SUBMITTED: _AFTER_SUBMIT,
    S.ACCEPTED: _AFTER_SUBMIT - {S.ACCEPTED},
    # Further fills keep an order partially filled; IB rejects only before any fill.
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED,
                                   S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED,
                                 S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}

# How far along its life a working status is: a report of a lower rank with the same filled
# quantity is an older snapshot (stale), not news.
_RANK = {S.PENDING_SUBMIT: 0, S.SUBMITTED: 1, S.ACCEPTED: 2, S.PARTIALLY_FILLED: 3,
         S.PENDING_CANCEL: 4}


class OrderFigures(Protocol):
    """What an OrderReport and an OrderEvent both carry."""

    @property
    def status(self) -> OrderStatus: ...

    @property
    def quantity(self) -> Decimal: ...

    @property
    def filled_quantity(self) -> Decimal: ...

    @property
    def avg_fill_price(self) -> Decimal | None: ...


@dataclass(frozen=True)
class OrderState:
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None

    @classmethod
    def of(cls, order: OrderFigures) -> OrderState:
        return cls(order.status, order.quantity, order.filled_quantity, order.avg_fill_price)

    @property
    def key(self) -> tuple[OrderStatus, Decimal]:
        """What makes a state news: its status and filled quantity (as event ids derive)."""
        return self.status, self.filled_quantity.normalize()


@dataclass(frozen=True)
class Accepted:
    """The report moves the order: publish it."""

    state: OrderState


@dataclass(frozen=True)
class Unchanged:
    """Nothing new: the same figures again, or a stale copy of an earlier working state."""

    reason: str


@dataclass(frozen=True)
class Illegal:
    """The report contradicts what is known (a final order moving, a fill taken back)."""

    reason: str


Outcome = Accepted | Unchanged | Illegal


def inconsistency(state: OrderState) -> str | None:
    """Why a state cannot be true on its own, or None."""
    filled, quantity = state.filled_quantity, state.quantity
    if filled < 0 or filled > quantity:
        return f"filled quantity {filled} outside 0..{quantity}"
    if state.status is S.FILLED and filled != quantity:
        return f"filled with {filled} of {quantity}"
    if state.status is S.PARTIALLY_FILLED and filled == 0:
        return "partially filled with nothing filled"
    return None


def transition(current: OrderState | None, report: OrderState) -> Outcome:
    """What a venue report does to the order as last published (None: never seen)."""
    wrong = inconsistency(report)
    if wrong is not None:
        return Illegal(f"inconsistent report: {wrong}")
    if current is None:
        return Accepted(report)
    if report.key == current.key:
        return Unchanged("same status and filled quantity")
    if current.status.is_terminal:
        return Illegal(f"{current.status} is final (report says {report.status}, "
                       f"filled {report.filled_quantity})")
    if report.filled_quantity < current.filled_quantity:
        return Illegal(f"filled quantity would go down from {current.filled_quantity} "
                       f"to {report.filled_quantity}")
    if report.status in TRANSITIONS[current.status]:
        return Accepted(report)
    working = not report.status.is_terminal
    same_fill = report.filled_quantity == current.filled_quantity
    if working and same_fill and _RANK[report.status] <= _RANK[current.status]:
        return Unchanged(f"stale {report.status} after {current.status}")
    if working and not same_fill:
        return Accepted(report)  # fills are facts, whatever word the venue puts on them
    return Illegal(f"{current.status} cannot become {report.status}")


def aggregate(fills: Iterable[tuple[Decimal, Decimal]]) -> tuple[Decimal, Decimal | None]:
    """Cumulative filled quantity and average price of (quantity, price) executions."""
    quantity, notional = Decimal(0), Decimal(0)
    for qty, price in fills:
        quantity += qty
        notional += qty * price
    return quantity, (notional / quantity if quantity else None)
