"""What was decided but is not yet visible at the venue, so a burst cannot talk past a limit.

The sizing stage decides one approval at a time, but the venue only learns of an order when
the submission stage places it, a few milliseconds to minutes later. Between the two, the
decision is a reservation: it counts as a pending entry order for every limit (same symbol,
open positions, gross / symbol / group exposure, order rate, buying power) until the venue
shows the order, the submission stage refuses it, or it ages out.

The book also remembers each approval's outcome (intent or rejection), so an approval
redelivered after a crash gets the same outcome again, never a second, different one.

Pure: the Kafka tailer that feeds it (agents.decision_memory) rebuilds it at start from
`order-intents` and `rejections`, so a worker restarted anywhere decides the same.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from brokers.port import AccountSnapshot, OrderReport
from schemas.events import OrderIntent, OrderLeg, OrderStatus, Rejection

ZERO = Decimal(0)


@dataclass(frozen=True)
class Outcome:
    """What an approval became: an intent or a rejection (kept verbatim to re-emit)."""

    topic: str
    event: OrderIntent | Rejection
    at: datetime


@dataclass
class ReservationBook:
    """Intents decided and not yet at the venue, and recent approvals' outcomes."""

    ttl: timedelta = timedelta(minutes=15)
    intents: dict[str, OrderIntent] = field(default_factory=dict)  # by client order id
    outcomes: dict[UUID, Outcome] = field(default_factory=dict)  # by approval event id
    resolved: dict[str, datetime] = field(default_factory=dict)  # coids refused at submission

    # ------------------------------------------------------------ feeding

    def on_intent(self, intent: OrderIntent) -> None:
        """An intent decided (by this process or read back from Kafka)."""
        if intent.causation_id is not None:
            self.outcomes.setdefault(
                intent.causation_id, Outcome("order-intents", intent, intent.occurred_at))
        if intent.client_order_id not in self.resolved:
            self.intents.setdefault(intent.client_order_id, intent)

    def on_rejection(self, rejection: Rejection) -> None:
        """A refusal: of an approval (its outcome), or of an intent at submission (which frees
        its reservation: the venue will never see that order)."""
        coid = rejection.details.get("client_order_id")
        if rejection.stage == "submission" and coid:
            self.resolved[coid] = rejection.occurred_at
            self.intents.pop(coid, None)
            return
        subject = rejection.subject_event_id
        if subject is not None:
            self.outcomes.setdefault(subject, Outcome("rejections", rejection,
                                                      rejection.occurred_at))

    # ------------------------------------------------------------ reading

    def outcome_of(self, approval_event_id: UUID) -> Outcome | None:
        return self.outcomes.get(approval_event_id)

    def intent_for(self, client_order_id: str) -> OrderIntent | None:
        return self.intents.get(client_order_id)

    def snapshot(self, now: datetime) -> list[OrderIntent]:
        """The live reservations now (taken BEFORE reading the venue: a reservation that turns
        visible in between is then counted once, by its client order id, never zero times)."""
        self.expire(now)
        return list(self.intents.values())

    def oldest(self, reservations: Iterable[OrderIntent]) -> datetime | None:
        return min((r.occurred_at for r in reservations), default=None)

    def settle(self, visible: Set[str]) -> None:
        """The venue shows these orders: it counts them itself from now on."""
        for coid in visible & self.intents.keys():
            del self.intents[coid]

    def expire(self, now: datetime) -> None:
        """Forget reservations and outcomes older than the ttl (bounded memory)."""
        cutoff = now - self.ttl
        for coid in [c for c, i in self.intents.items() if i.occurred_at < cutoff]:
            del self.intents[coid]
        # Outcomes and refusals arrive about in time order (dicts keep insertion order): the
        # old ones are at the front, so each decision looks at what expires, not at the last
        # ttl's thousands of outcomes. One that came out of order goes when those before it
        # have gone (kept longer, never forgotten early).
        while self.outcomes:
            key, first = next(iter(self.outcomes.items()))
            if first.at >= cutoff:
                break
            del self.outcomes[key]
        while self.resolved:
            coid, at = next(iter(self.resolved.items()))
            if at >= cutoff:
                break
            del self.resolved[coid]


def pending_orders(reservations: Iterable[OrderIntent], visible: Container[str],
                   exclude: str | None = None) -> list[OrderReport]:
    """Reservations the venue does not show yet, as pending entry orders the limits count."""
    return [as_pending_order(r) for r in reservations
            if r.client_order_id not in visible and r.client_order_id != exclude]


_PENDING: dict[UUID, tuple[OrderIntent, OrderReport]] = {}  # by intent event id
_PENDING_HELD = 100_000


def as_pending_order(intent: OrderIntent) -> OrderReport:
    """The intent as a pending entry order; made once per intent (a reservation is counted by
    every decision until the venue shows it)."""
    held = _PENDING.get(intent.event_id)
    if held is not None and held[0] is intent:
        return held[1]
    report = _pending_report(intent)
    if len(_PENDING) >= _PENDING_HELD:
        _PENDING.clear()
    _PENDING[intent.event_id] = (intent, report)
    return report


def _pending_report(intent: OrderIntent) -> OrderReport:
    return OrderReport(
        client_order_id=intent.client_order_id,
        venue_order_id="",
        leg=OrderLeg.ENTRY,
        account_id=intent.account_id,
        symbol=intent.symbol,
        side=intent.side,
        order_type=intent.order_type,
        quantity=intent.quantity,
        limit_price=intent.limit_price,
        stop_price=intent.stop_price,
        time_in_force=intent.time_in_force,
        status=OrderStatus.PENDING_SUBMIT,
        created_at=intent.occurred_at,
        updated_at=intent.occurred_at,
    )


def reserved_value(pending: Iterable[OrderReport]) -> Decimal:
    """What pending reservations will cost when placed (quantity x limit or stop price)."""
    return sum((abs(o.quantity) * (o.limit_price or o.stop_price or ZERO) for o in pending), ZERO)


def with_reservations(account: AccountSnapshot, pending: Iterable[OrderReport]) -> AccountSnapshot:
    """The account as it will be once the pending reservations are placed: buying power net
    of their value (the venue cannot know of them yet)."""
    value = reserved_value(pending)
    if value == 0:
        return account
    return account.model_copy(update={"buying_power": max(account.buying_power - value, ZERO)})
