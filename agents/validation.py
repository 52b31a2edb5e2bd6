"""Validation stage: refuse a bad signal as soon as it arrives, before anyone approves it, and
record a valid one's first sighting in the signal ledger (an approval must name a signal seen
here; a signal without its own time is aged from this sighting)."""

from __future__ import annotations

from datetime import datetime

from agents.codec import decode_object
from agents.context import Output, Source, StageContext
from agents.decisions.decide import reject_signal, rejection_from
from agents.decisions.reasons import Refusal
from agents.decisions.validation import parse_signal, validate_signal
from schemas.events import Rejection, SignalRecord
from schemas.ids import derive_id, signal_event_id


async def handle_signal(raw: bytes | None, source: Source, ctx: StageContext) -> list[Output]:
    """Valid signals wait for a human; invalid ones are refused with a reason on record."""
    obj = decode_object(raw)
    now = ctx.clock()
    parsed = parse_signal(obj)
    if isinstance(parsed, Refusal):
        return [("rejections", refusal_without_event(parsed, obj, source, now))]
    refusal = validate_signal(parsed, ctx.risk, now)
    if refusal is not None:
        return [("rejections", reject_signal(parsed, refusal, now))]
    if ctx.ledger.get(parsed.correlation_id) is not None:
        return []  # seen before (a re-publication): its first sighting stands
    record = SignalRecord.seen(parsed, source.timestamp or now)
    ctx.ledger.on_record(record)
    return [("signal-ledger", record)]


def refusal_without_event(
    refusal: Refusal, obj: dict[str, object], source: Source, now: datetime
) -> Rejection:
    """A refusal of input that did not become an event: correlate by its id when it has one."""
    raw_id = obj.get("id")
    if isinstance(raw_id, str) and raw_id:
        correlation = signal_event_id(raw_id)
    else:
        correlation = derive_id("input", source.topic, source.partition, source.offset)
    return rejection_from(refusal, correlation_id=correlation, causation_id=None, now=now,
                          signal_id=raw_id if isinstance(raw_id, str) else None)
