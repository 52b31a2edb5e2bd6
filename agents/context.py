"""What every stage handler gets: settings, the venue port and a clock. No faust here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agents.decisions.ledger import SignalLedger
from agents.decisions.reservations import ReservationBook
from agents.decisions.signatures import KeyRing
from agents.retry import RetryPolicy
from agents.venue_view import InstrumentRulesCache, VenueView
from brokers.port import read_afresh
from schemas.events import Event

if TYPE_CHECKING:
    from agents.control import TradingGate
    from agents.decisions.config import RiskSettings
    from agents.decisions.rollout import LiveGrants
    from brokers.port import OrderService


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Source:
    """Where an input message came from (logical topic name, without any prefix)."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime | None = None  # the record's Kafka timestamp, when known


Output = tuple[str, Event]


@dataclass
class StageContext:
    risk: RiskSettings
    venue: OrderService
    clock: Callable[[], datetime] = field(default=utc_now)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    book: ReservationBook = field(default_factory=ReservationBook)
    gate: TradingGate | None = None  # the kill switch's latched trading state
    # The signed go-live decisions (agents.rollout_reader); None: live accounts never trade.
    grants: LiveGrants | None = None
    ledger: SignalLedger = field(default_factory=SignalLedger)
    keyring: KeyRing = field(default_factory=KeyRing)  # who may approve (public keys only)
    signal_grace: timedelta = timedelta(seconds=5)  # how long an approval waits for its signal
    snapshot_max_age: timedelta = timedelta(seconds=0.5)
    lookback: timedelta = timedelta(hours=24)
    rules_max_age: timedelta = timedelta(minutes=1)
    view: VenueView = field(init=False)  # the account and orders, for sizing
    orders_view: VenueView = field(init=False)  # the orders only, for submission
    rules: InstrumentRulesCache = field(init=False)  # what the venue says of instruments

    def __post_init__(self) -> None:
        self.view = VenueView(self.venue, self.snapshot_max_age, self.lookback)
        self.orders_view = VenueView(self.venue, self.snapshot_max_age, self.lookback,
                                     accounts=False)
        self.rules = InstrumentRulesCache(self.venue, self.rules_max_age)

    @property
    def venue_retry_attempts(self) -> int:
        return self.retry.attempts

    def partitions_moved(self) -> None:
        """This process was given partitions (a worker's start, or another's death or stop):
        an intent redelivered here may have been placed by the process that held it before,
        through a session of its own. The next snapshots are full reads asked of the venue,
        so that order shows and the intent is not placed twice."""
        self.view.invalidate()
        self.orders_view.invalidate()
        read_afresh(self.venue)


class NoVenue:
    """The venue of a process whose stages never trade (validation, audit): using it is a bug."""

    venue = "none"

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"this process runs no stage that uses a venue (asked for {name!r})")
