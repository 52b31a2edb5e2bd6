"""The one retry policy of the pipeline: stages retry, adapters try once.

Only transient venue failures are retried (connectivity, timeouts, rate limits, outages):
exponential backoff with jitter, bounded both in attempts and in total time. A permanent
failure (unknown symbol, venue refusal, insufficient funds, off-tick price) is raised at the
first attempt. The sleep is injectable, so unit tests do not sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from brokers.exceptions import TransientBrokerError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Attempts:
    """How many times a call was tried, and the transient errors met on the way."""

    count: int = 0
    errors: list[str] = field(default_factory=list)

    def note(self, state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            self.errors.append(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: initial, doubling to max_wait, within total_seconds."""

    attempts: int = 8
    total_seconds: float = 60.0
    initial: float = 0.1
    max_wait: float = 5.0
    jitter: float = 0.1
    sleep: Sleep = asyncio.sleep

    def retrying(self, attempts: Attempts | None = None, spent: float = 0.0) -> AsyncRetrying:
        """The policy as tenacity's loop; `spent`: seconds of the total time already gone."""
        tally = attempts if attempts is not None else Attempts()
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts)
            | stop_after_delay(self.total_seconds - spent),
            wait=wait_exponential_jitter(multiplier=self.initial, max=self.max_wait,
                                         jitter=self.jitter),
            retry=retry_if_exception_type(TransientBrokerError),
            before=lambda state: setattr(tally, "count", state.attempt_number),
            after=tally.note,
            sleep=self.sleep,
            reraise=True,
        )

    async def call(self, fn: Callable[[], Awaitable[T]], attempts: Attempts | None = None) -> T:
        """fn() until it succeeds, fails permanently, or the policy gives up (re-raising the
        last transient error).

        The first attempt is made outside tenacity's loop: almost every call succeeds at once,
        and the loop costs about 24 us a call (measured), on several calls per approval. A
        transient failure enters the loop as its first attempt (counted, noted, waited after
        and bounded there as any other), and the loop makes the rest."""
        started = time.monotonic()
        try:
            result = await fn()
        except TransientBrokerError as exc:
            failed: TransientBrokerError | None = exc
        else:
            if attempts is not None:
                attempts.count = 1
            return result
        async for attempt in self.retrying(attempts, time.monotonic() - started):
            with attempt:
                if failed is not None:  # the first attempt's failure, as the loop's first
                    first, failed = failed, None
                    raise first
                return await fn()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


NO_RETRY = RetryPolicy(attempts=1, total_seconds=0.0)
