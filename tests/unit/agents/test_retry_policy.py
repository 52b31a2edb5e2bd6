"""The one retry policy: transient failures retried with backoff, bounded; permanent once."""

from __future__ import annotations

import pytest

from agents.retry import Attempts, RetryPolicy
from brokers.exceptions import OrderRejected, TransientBrokerError


class Clock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_transient_errors_are_retried_with_growing_waits() -> None:
    clock, calls = Clock(), []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise TransientBrokerError("socket closed", code="1100")
        return "ok"

    tally = Attempts()
    policy = RetryPolicy(attempts=5, initial=0.1, jitter=0, sleep=clock.sleep)
    assert await policy.call(flaky, tally) == "ok"
    assert tally.count == 4
    assert len(tally.errors) == 3
    assert clock.slept == sorted(clock.slept)
    assert clock.slept[0] == pytest.approx(0.1)


async def test_a_permanent_error_is_attempted_once() -> None:
    calls = []

    async def refused() -> None:
        calls.append(1)
        raise OrderRejected("unknown symbol", code="200")

    with pytest.raises(OrderRejected):
        await RetryPolicy(sleep=Clock().sleep).call(refused)
    assert len(calls) == 1


async def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    tally = Attempts()

    async def down() -> None:
        raise TransientBrokerError(f"down {tally.count}", code="1100")

    with pytest.raises(TransientBrokerError, match="down 3"):
        await RetryPolicy(attempts=3, sleep=Clock().sleep).call(down, tally)
    assert tally.count == 3
