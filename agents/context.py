"""What every stage handler gets: settings, the venue port and a clock. No faust here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from schemas.events import Event

if TYPE_CHECKING:
    from agents.decisions.config import RiskSettings
    from brokers.port import OrderService


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Source:
    """Where an input message came from (logical topic name, without any prefix)."""

    topic: str
    partition: int
    offset: int


Output = tuple[str, Event]


@dataclass
class StageContext:
    risk: RiskSettings
    venue: OrderService
    clock: Callable[[], datetime] = field(default=utc_now)
    venue_retry_attempts: int = 5


class NoVenue:
    """The venue of a process whose stages never trade (validation, audit): using it is a bug."""

    venue = "none"

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"this process runs no stage that uses a venue (asked for {name!r})")
