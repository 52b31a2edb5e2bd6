"""The canonical form an approval's signature covers: RFC 8785 (JCS) over the JSON as sent.

What is signed: every member of the approval object exactly as the producer publishes it,
except `signature` itself. That always includes the approved `signal` object as sent,
`decision`, `approved_by`, `decided_at`, `reason`, `expires_at`, `key_id` and `algorithm`
when present, and any envelope member the producer chose to send (`event_id`,
`correlation_id`, ...): what a producer sends is what it signs. The pipeline adds nothing
to the signed object: envelope fields a producer leaves out are derived by the model, and a
stage that passes an approval on carries its bytes as received, never a re-serialized copy
(a re-serialized copy writes Decimals as strings, which canonicalize differently).

Numbers: JCS treats every JSON number as an IEEE 754 double and writes it the ECMAScript
way, so 150, 150.0, 150.00 and 1.5e2 all canonicalize to `150`. The pipeline reads prices
as exact Decimals from the text, so a number is accepted only when its text and its double
are the same value (150.00 is; 0.1 is, as its shortest double form is 0.1;
150.00000000000001 is not) and integers only within +/-(2**53 - 1): beyond that, send it as
a JSON string (strings are signed byte for byte). So the value signed is the value traded.
Duplicate member names are refused, since parsers disagree about which one wins.

`python -m schemas.canonical < approval.json` prints the canonical form (no newline).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any
from uuid import UUID

import rfc8785

from schemas.errors import JaxError

SIGNATURE_FIELD = "signature"
UNSIGNED_FIELDS = frozenset({SIGNATURE_FIELD})
MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalError(JaxError, ValueError):
    """The content has no single canonical form (a lossy number, a duplicate key, ...)."""

    code = "not_canonical"


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise CanonicalError(f"number {text} is outside the range of a JSON (IEEE 754) number")
    if Decimal(text) != Decimal(repr(value)):
        raise CanonicalError(
            f"number {text} has more digits than a JSON (IEEE 754) number keeps "
            f"(it would be signed as {value!r}); send it as a string"
        )
    return value


def _parse_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise CanonicalError(
            f"integer {text} is beyond +/-(2**53 - 1), where JSON numbers lose digits; "
            "send it as a string"
        )
    return value


def _parse_constant(text: str) -> Any:
    raise CanonicalError(f"{text} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise CanonicalError(f"member {key!r} appears twice in one object")
        out[key] = value
    return out


def loads(raw: bytes | str) -> Any:
    """Parse JSON as a signer sees it: numbers stay numbers, lossy ones and duplicates refused."""
    try:
        return json.loads(
            raw,
            parse_float=_parse_float,
            parse_int=_parse_int,
            parse_constant=_parse_constant,
            object_pairs_hook=_no_duplicates,
        )
    except CanonicalError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise CanonicalError(f"not valid UTF-8 JSON: {exc}") from exc


def _decimal_number(value: Decimal) -> int | float:
    if not value.is_finite():
        raise CanonicalError(f"{value} is not a JSON number")
    if value == value.to_integral_value():
        return _parse_int(str(int(value)))
    try:
        return _parse_float(format(value, "f"))
    except InvalidOperation as exc:  # pragma: no cover - format() of a finite Decimal
        raise CanonicalError(str(exc)) from exc


def to_json_value(value: Any) -> Any:
    """A value as JSON carries it: Decimals become exact numbers, times ISO 8601 UTC strings."""
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, Enum):
        return to_json_value(value.value)
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return _parse_int(str(value))
    if isinstance(value, float):
        return _parse_float(repr(value))
    if isinstance(value, Decimal):
        return _decimal_number(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise CanonicalError("timestamp must carry a timezone (UTC offset)")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, UUID):
        return str(value)
    raise CanonicalError(f"{type(value).__name__} has no JSON form")


def dumps(value: Any) -> bytes:
    """RFC 8785 canonical JSON of a JSON value (dict, list, str, int, float, bool, None)."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalError(str(exc)) from exc


def signed_content(approval: Mapping[str, Any]) -> dict[str, Any]:
    """The members the signature covers: all but the signature."""
    return {k: v for k, v in approval.items() if k not in UNSIGNED_FIELDS}


def signing_input(approval: Mapping[str, Any] | bytes | str) -> bytes:
    """The bytes an approval's signature is made over.

    A mapping must hold JSON values as parsed by `loads` (numbers as int or float); bytes or
    a string are parsed with `loads` first, which is what the verifier does with a message.
    """
    if isinstance(approval, bytes | str):
        approval = loads(approval)
    if not isinstance(approval, Mapping):
        raise CanonicalError(f"an approval is a JSON object, not {type(approval).__name__}")
    return dumps(signed_content(approval))


def main() -> int:
    try:
        sys.stdout.buffer.write(signing_input(sys.stdin.buffer.read()))
    except CanonicalError as exc:
        print(f"not canonical: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
