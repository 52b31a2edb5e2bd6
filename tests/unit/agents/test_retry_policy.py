"""The one retry policy: transient failures retried with backoff, bounded; permanent once."""

from __future__ import annotations

from dataclasses import replace

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


async def test_a_call_that_succeeds_at_once_is_one_attempt_and_no_wait() -> None:
    clock, calls, tally = Clock(), [], Attempts(count=7)

    async def fine() -> str:
        calls.append(1)
        return "ok"

    assert await RetryPolicy(sleep=clock.sleep).call(fine, tally) == "ok"
    assert (len(calls), tally.count, tally.errors, clock.slept) == (1, 1, [], [])


@pytest.mark.parametrize("failures", [1, 2])
async def test_a_first_attempt_made_outside_the_loop_counts_as_the_loops_first(
        failures: int) -> None:
    """The first attempt is made directly (no tenacity loop when it succeeds); its transient
    failure is the loop's first: counted, noted, and waited after as before."""
    clock, calls, tally = Clock(), [], Attempts()

    async def flaky() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise TransientBrokerError(f"blip {len(calls)}", code="1100")
        return "ok"

    policy = RetryPolicy(attempts=5, initial=0.1, jitter=0, sleep=clock.sleep)
    assert await policy.call(flaky, tally) == "ok"
    assert tally.count == failures + 1
    assert tally.errors == [f"TransientBrokerError: blip {n}" for n in range(1, failures + 1)]
    assert clock.slept == pytest.approx([0.1, 0.2][:failures])


@pytest.mark.parametrize("policy", [RetryPolicy(attempts=1), RetryPolicy(total_seconds=0.0)],
                         ids=["one attempt", "no time"])
async def test_a_policy_without_a_second_attempt_raises_the_first_failure(
        policy: RetryPolicy) -> None:
    clock, calls, tally = Clock(), [], Attempts()

    async def down() -> None:
        calls.append(1)
        raise TransientBrokerError("down", code="1100")

    with pytest.raises(TransientBrokerError, match="down"):
        await replace(policy, sleep=clock.sleep).call(down, tally)
    assert (len(calls), tally.count, len(tally.errors), clock.slept) == (1, 1, 1, [])
