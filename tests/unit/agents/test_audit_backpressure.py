"""The audit sink waits out ClickHouse failures instead of dropping or skipping a batch."""

from __future__ import annotations

import pytest

from agents.audit_sink import AuditSink
from store.exceptions import FlushError


class FlakyWriter:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def flush(self) -> dict[tuple[str, int], int]:
        self.calls += 1
        if self.calls <= self.failures:
            raise FlushError("ClickHouse unavailable", {})
        return {("signals", 0): 41}


async def test_flush_is_retried_until_clickhouse_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr("agents.audit_sink.asyncio.sleep", fake_sleep)
    writer = FlakyWriter(failures=3)
    await _sink(writer)._store()
    assert writer.calls == 4
    assert sleeps == [0.5, 1.0, 2.0]  # exponential back-off while holding the batch


async def test_a_bug_in_the_writer_is_not_swallowed() -> None:
    class Broken:
        async def flush(self) -> None:
            raise TypeError("not a store error")

    with pytest.raises(TypeError):
        await _sink(Broken())._store()


def _sink(writer: object) -> AuditSink:
    return AuditSink(writer, lambda: None, [], logical=str, physical=str)  # type: ignore[arg-type, return-value]
