"""Injected failures, so adapters meet latency, drops, outages and refusals before production does.

The core asks `check_order` (refused symbols, off-tick prices); front doors ask
the connectivity questions (latency, drop, outage, stall, transient error, commission delay).
Random answers come from a seeded RNG so a failing run can be replayed.

A stall is a wedged venue: connections stay open and requests are read, but nothing is answered
(unlike an outage, no 1100 announces it), so a client learns of it only through its own time
limits. A commission delay sends an execution's commissionReport that long after execDetails,
as IB does when the commission is computed later.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from brokers.port import OrderRequest
from brokers.sim.reasons import Reason, refusal
from brokers.sim.universe import on_tick


class OutageWindow(BaseModel):
    """A wall-clock span during which the venue is unreachable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered_and_aware(self) -> OutageWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("outage window times must carry a timezone")
        if self.end <= self.start:
            raise ValueError("outage window must end after it starts")
        return self

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


class FaultConfig(BaseModel):
    """Every knob is a plain field so settings/env/CLI flags can fill it later."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    latency_ms: int = Field(default=0, ge=0)
    drop_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    transient_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    outage_windows: tuple[OutageWindow, ...] = ()
    rejected_symbols: frozenset[str] = frozenset()
    enforce_tick: bool = True
    stall: bool = False
    commission_delay_ms: int = Field(default=0, ge=0)

    @field_validator("rejected_symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [s for s in value.split(",") if s.strip()]
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(str(s).strip().upper() for s in value)
        return value


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _order_prices(order: OrderRequest) -> list[Decimal]:
    candidates = (order.limit_price, order.stop_price, order.take_profit, order.stop_loss)
    return [p for p in candidates if p is not None]


class FaultInjector:
    """Run-time switchable faults; the query methods have no side effects beyond the RNG."""

    def __init__(
        self, config: FaultConfig | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._config = config or FaultConfig()
        self._clock = clock or _utcnow
        self._rng = random.Random(self._config.seed)
        self._outage_until: datetime | None = None
        self._stalled_requests = 0
        self._lock = threading.Lock()

    @property
    def config(self) -> FaultConfig:
        return self._config

    def set(self, **changes: Any) -> FaultConfig:
        """Change knobs while running (validated like the constructor); a new seed reseeds."""
        with self._lock:
            self._config = FaultConfig.model_validate({**self._config.model_dump(), **changes})
            if "seed" in changes:
                self._rng = random.Random(self._config.seed)
            return self._config

    def start_outage(self, seconds: float) -> datetime:
        """An outage from now on, for a while; returns when it ends."""
        with self._lock:
            self._outage_until = self._clock() + timedelta(seconds=seconds)
            return self._outage_until

    def end_outage(self) -> None:
        with self._lock:
            self._outage_until = None

    def in_outage(self, now: datetime | None = None) -> bool:
        moment = now or self._clock()
        if self._outage_until is not None and moment < self._outage_until:
            return True
        return any(w.covers(moment) for w in self._config.outage_windows)

    def latency_seconds(self) -> float:
        return self._config.latency_ms / 1000

    def stalled(self) -> bool:
        """Whether the venue is wedged: requests are read and left unanswered."""
        return self._config.stall

    def note_stalled(self) -> None:
        """Count a request a stalled front door swallowed (GET /faults shows the count)."""
        with self._lock:
            self._stalled_requests += 1

    @property
    def stalled_requests(self) -> int:
        return self._stalled_requests

    def commission_delay_seconds(self) -> float:
        return self._config.commission_delay_ms / 1000

    def _roll(self, probability: float) -> bool:
        if probability <= 0.0:
            return False
        if probability >= 1.0:
            return True
        with self._lock:
            return self._rng.random() < probability

    def should_drop(self) -> bool:
        """Whether a front door should cut the connection now."""
        return self._roll(self._config.drop_probability)

    def transient_error(self) -> bool:
        """Whether this request should fail with a retryable error."""
        return self._roll(self._config.transient_error_rate)

    def check_order(self, order: OrderRequest) -> None:
        """Refuse orders the way the venue would: a blocked symbol, an off-tick price."""
        if order.symbol.upper() in self._config.rejected_symbols:
            raise refusal(Reason.SYMBOL_NOT_ALLOWED, f"trading in {order.symbol} is not allowed")
        off = [p for p in _order_prices(order) if not on_tick(p)]
        if self._config.enforce_tick and off:
            raise refusal(Reason.OFF_TICK, f"price {off[0]} is off the instrument's tick")
