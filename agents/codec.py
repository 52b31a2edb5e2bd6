"""Bytes in, events out: the only place that turns Kafka payloads into Python objects."""

from __future__ import annotations

import json
from typing import Any

from schemas.errors import JaxError
from schemas.events import Event

MAX_MESSAGE_BYTES = 1_000_000


class DecodeError(JaxError):
    """The payload is not a JSON object: it goes to dead-letter, byte for byte."""

    code = "undecodable"


def decode_object(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise DecodeError("empty message (no value)")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise DecodeError(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        obj = json.loads(raw, parse_float=str, parse_constant=str)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()
