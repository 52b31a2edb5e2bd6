"""read_to never waits for good: no record and no partition at its end for stall_seconds
is a TimeoutError naming the topic."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from agents.readback import read_to


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
