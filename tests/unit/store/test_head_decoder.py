"""The audit writer's head decoder (msgspec, envelope fields only) against its general path
(the whole value parsed, the model deriving what is missing): wherever the head decoder takes
a value it gives the same envelope, and it raises where the general path raises."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from store.synthetic import TOPIC_OF, trading_day
from store.writer import (
    Envelope,
    EventRecord,
    _head_envelope,
    decode_envelope,
    general_envelope,
)

Edit = Callable[[dict[str, Any]], None]


def _set(key: str, value: Any) -> Edit:
    return lambda data: data.__setitem__(key, value)


def _drop(key: str) -> Edit:
    return lambda data: data.pop(key, None)


EDITS: dict[str, Edit] = {
    "as produced": lambda data: None,
    "upper-case id": lambda data: data.__setitem__("event_id", data["event_id"].upper()),
    "braced id": lambda data: data.__setitem__("event_id", "{" + data["event_id"] + "}"),
    "id without hyphens": lambda data: data.__setitem__(
        "correlation_id", data["correlation_id"].replace("-", "")
    ),
    "id not a uuid": _set("event_id", "not-a-uuid"),
    "id a number": _set("event_id", 12),
    "no causation": _drop("causation_id"),
    "empty causation": _set("causation_id", ""),
    "null causation": _set("causation_id", None),
    "offset timestamp": _set("occurred_at", "2026-03-02T16:30:00.5+02:00"),
    "space separator": _set("occurred_at", "2026-03-02 14:30:00Z"),
    "lower-case t and z": _set("occurred_at", "2026-03-02t14:30:00z"),
    "nine fraction digits": _set("occurred_at", "2026-03-02T14:30:00.123456789Z"),
    "naive timestamp": _set("occurred_at", "2026-03-02T14:30:00"),
    "timestamp a number": _set("occurred_at", 1772461800),
    "hour 24": _set("occurred_at", "2026-03-02T24:00:00Z"),
    "no recorded_at": _drop("recorded_at"),
    "empty recorded_at": _set("recorded_at", ""),
    "naive recorded_at": _set("recorded_at", "2026-03-02T14:30:00"),
    "schema version 0": _set("schema_version", 0),
    "schema version text": _set("schema_version", "2"),
    "schema version float": _set("schema_version", 2.0),
    "no event_type": _drop("event_type"),
    "empty event_type": _set("event_type", ""),
    "event_type a number": _set("event_type", 7),
    "unknown event_type": _set("event_type", "something_else"),
    "no event_id": _drop("event_id"),
    "no occurred_at": _drop("occurred_at"),
    "extra field": _set("note", {"nested": [1, 2.5, None, "x"]}),
    "huge number elsewhere": _set("note", 1e999),
}


def _cases() -> Iterator[Any]:
    seen: set[str] = set()
    for event in trading_day().events:
        kind = str(getattr(event, "event_type", ""))
        if kind in seen:
            continue
        seen.add(kind)
        for name, edit in EDITS.items():
            yield pytest.param(event.model_dump_json(), TOPIC_OF.get(kind, "audit"), edit,
                               id=f"{kind}-{name}")


def _text(env: Envelope) -> Envelope:
    payload = env.payload
    return env._replace(payload=payload.decode() if isinstance(payload, bytes) else payload)


def _outcome(decode: Callable[[EventRecord], Envelope | None], record: EventRecord) -> Any:
    try:
        env = decode(record)
    except (ValueError, TypeError) as exc:
        return type(exc), str(exc)
    return None if env is None else _text(env)


@pytest.mark.parametrize(("value", "topic", "edit"), list(_cases()))
def test_the_head_decoder_agrees_with_the_general_path(value: str, topic: str, edit: Edit) -> None:
    data = json.loads(value)
    edit(data)
    record = EventRecord(topic, 0, 1, None, json.dumps(data).encode(), None)
    head = _outcome(_head_envelope, record)
    if head is not None:  # taken (or refused) by the head decoder: as the general path does
        assert head == _outcome(general_envelope, record)
        assert _outcome(decode_envelope, record) == head


def test_the_head_decoder_takes_what_the_pipeline_produces() -> None:
    for event in trading_day().events:
        record = EventRecord("audit", 0, 1, None, event.model_dump_json().encode(), None)
        env = _head_envelope(record)
        assert env is not None
        assert env.payload == record.value  # stored byte for byte, as it came
