"""Nothing escapes an agent: every failure becomes a dead-letter record with the raw bytes."""

from __future__ import annotations

from agents.app import run_handler
from agents.codec import decode_object
from agents.context import Output, Source, StageContext
from brokers.exceptions import TransientBrokerError
from schemas.events import DeadLetter, OrderIntent

SRC = Source("approvals", 1, 42)


async def decode_only(raw: bytes | None, source: Source, ctx: StageContext) -> list[Output]:
    decode_object(raw)
    return []


async def test_undecodable_bytes_go_to_dead_letter_verbatim(ctx: StageContext) -> None:
    (topic, dead), = await run_handler(decode_only, b"\x00garbage", SRC, ctx)
    assert topic == "dead-letter"
    assert isinstance(dead, DeadLetter)
    assert dead.raw == b"\x00garbage"
    assert (dead.source_topic, dead.partition, dead.offset) == ("approvals", 1, 42)
    assert "not valid UTF-8 JSON" in dead.error


async def test_json_that_is_not_an_object_is_undecodable(ctx: StageContext) -> None:
    (_, dead), = await run_handler(decode_only, b"[1, 2]", SRC, ctx)
    assert "expected a JSON object" in dead.error  # type: ignore[attr-defined]


async def test_schema_mismatch_on_an_internal_topic_is_dead_lettered(ctx: StageContext) -> None:
    async def intent(raw: bytes | None, source: Source, c: StageContext) -> list[Output]:
        OrderIntent.model_validate(decode_object(raw))
        return []

    (_, dead), = await run_handler(intent, b'{"symbol": "AAPL"}', SRC, ctx)
    assert "does not match the approvals schema" in dead.error  # type: ignore[attr-defined]


async def test_a_bug_is_dead_lettered_not_raised(ctx: StageContext) -> None:
    async def broken(raw: bytes | None, source: Source, c: StageContext) -> list[Output]:
        raise ZeroDivisionError("boom")

    (_, dead), = await run_handler(broken, b"{}", SRC, ctx)
    assert "internal error ZeroDivisionError: boom" in dead.error  # type: ignore[attr-defined]


async def test_transient_venue_errors_are_retried_before_giving_up(ctx: StageContext) -> None:
    attempts = []

    async def flaky(raw: bytes | None, source: Source, c: StageContext) -> list[Output]:
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientBrokerError("socket closed", code="1100")
        return []

    assert await run_handler(flaky, b"{}", SRC, ctx) == []
    assert len(attempts) == 3
