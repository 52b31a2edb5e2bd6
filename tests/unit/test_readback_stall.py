"""read_to never waits for good: no record and no partition at its end for stall_seconds
is a TimeoutError naming the topic. partitions_of asks again what a broker going away makes
fail, within its time, and nothing else."""

from __future__ import annotations

from typing import ClassVar

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)

from agents.readback import partitions_of, read_to


class StalledConsumer:
    """A consumer whose broker stopped answering: no records, the position never moves."""

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0
                      ) -> dict[TopicPartition, list[object]]:
        return {}

    async def position(self, tp: TopicPartition) -> int:
        return 3


async def test_a_read_back_that_stops_advancing_raises() -> None:
    ends = {TopicPartition("fills", 0): 10, TopicPartition("fills", 1): 2}
    with pytest.raises(TimeoutError, match="reading back fills: no record for 0 s with 1 "):
        await read_to(StalledConsumer(), ends, lambda topic, raw: 1,  # type: ignore[arg-type]
                      stall_seconds=0.05)


class FlakyAdmin:
    """An admin client whose first calls fail as a cluster losing a broker makes them fail."""

    errors: ClassVar[list[Exception]] = []
    started = 0

    def __init__(self, **kwargs: object) -> None:
        pass

    async def start(self) -> None:
        FlakyAdmin.started += 1

    async def close(self) -> None:
        pass

    async def describe_topics(self, topics: list[str]) -> list[dict[str, object]]:
        if FlakyAdmin.errors:
            raise FlakyAdmin.errors.pop(0)
        return [{"error_code": 0, "partitions": [{"partition": 2}, {"partition": 0}]}]


@pytest.fixture
def flaky_admin(monkeypatch: pytest.MonkeyPatch) -> type[FlakyAdmin]:
    monkeypatch.setattr("agents.readback.AIOKafkaAdminClient", FlakyAdmin)
    FlakyAdmin.started = 0
    return FlakyAdmin


async def test_a_broker_gone_mid_look_up_is_asked_again(flaky_admin: type[FlakyAdmin]) -> None:
    """A stopped broker that the metadata still names (NodeNotReadyError), a closed
    connection, a timed-out request: each asked again, and the partitions come back."""
    flaky_admin.errors = [NodeNotReadyError("node 2"), KafkaConnectionError("closed"),
                          RequestTimedOutError()]
    assert await partitions_of("b:9092", "fills") == [0, 2]
    assert flaky_admin.started == 4


async def test_an_error_no_retry_clears_is_raised_at_once(flaky_admin: type[FlakyAdmin]) -> None:
    flaky_admin.errors = [TopicAuthorizationFailedError()]
    with pytest.raises(TopicAuthorizationFailedError):
        await partitions_of("b:9092", "fills")
    assert flaky_admin.started == 1


async def test_a_broker_that_stays_gone_is_given_up_on(flaky_admin: type[FlakyAdmin]) -> None:
    flaky_admin.errors = [NodeNotReadyError("node 2")] * 100
    with pytest.raises(NodeNotReadyError):
        await partitions_of("b:9092", "fills", within=0.3)
