"""The canonical form signatures cover: RFC 8785, one form per value, lossy input refused."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.canonical import (
    CanonicalError,
    dumps,
    loads,
    signed_content,
    signing_input,
    to_json_value,
)
from schemas.examples import SEED_SIGNAL

SAFE_INT = 2**53 - 1


def approval_text(price: str) -> str:
    """The seed approval as a producer might type it, with the entry price written as given."""
    return (
        '{"signal": {"id": "123e4567-e89b-12d3-a456-426614174000", "symbol": "AAPL", '
        f'"signal_type": "BUY", "entry_price": {price}, "stop_loss": 145.00, '
        '"take_profit": 160.00, "confidence": 0.85, "strategy_id": "ma_crossover_v1"}, '
        '"decision": "approved", "approved_by": "alice", "decided_at": "2026-11-21T14:30:00Z", '
        '"key_id": "alice-1", "signature": "c2lnbmF0dXJl"}'
    )


# --- RFC 8785 itself ---------------------------------------------------------------------------


def test_rfc8785_number_vector() -> None:
    """RFC 8785 section 3.2.2's example (as Python floats: the text has a lossy number)."""
    value = [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001]
    assert dumps(value) == b"[333333333.3333333,1e+30,4.5,0.002,1e-27]"


def test_rfc8785_sorts_keys_by_utf16_code_units() -> None:
    """RFC 8785 section 3.2.3's example: the emoji (a surrogate pair) sorts before U+FB33."""
    value = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    expected = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert list(json.loads(dumps(value))) == expected


def test_the_seed_approval_has_this_canonical_form() -> None:
    assert signing_input(approval_text("150.00")) == (
        b'{"approved_by":"alice","decided_at":"2026-11-21T14:30:00Z","decision":"approved",'
        b'"key_id":"alice-1","signal":{"confidence":0.85,"entry_price":150,'
        b'"id":"123e4567-e89b-12d3-a456-426614174000","signal_type":"BUY","stop_loss":145,'
        b'"strategy_id":"ma_crossover_v1","symbol":"AAPL","take_profit":160}}'
    )


# --- what is signed ----------------------------------------------------------------------------


def test_everything_but_the_signature_is_signed() -> None:
    approval = json.loads(approval_text("150"))
    approval |= {"event_id": "e", "recorded_at": "2026-11-21T14:30:01Z", "reason": None}
    content = signed_content(approval)
    assert set(approval) - set(content) == {"signature"}


@pytest.mark.parametrize("price", ["150", "150.0", "150.00", "1.5e2", "1.50E+2", "15000e-2",
                                  "150.000000000000000000"])
def test_one_canonical_form_whatever_the_number_formatting(price: str) -> None:
    assert signing_input(approval_text(price)) == signing_input(approval_text("150"))


def test_whitespace_and_key_order_do_not_matter() -> None:
    approval = json.loads(approval_text("150.00"))
    reordered = dict(reversed(list(approval.items())))
    pretty = json.dumps(reordered, indent=7, separators=(" ,\n", " :  "))
    assert signing_input(pretty) == signing_input(approval_text("150.00"))


def test_a_string_price_is_signed_as_a_string() -> None:
    """A price sent as "150.00" is signed byte for byte, so it differs from the number 150."""
    assert b'"entry_price":"150.00"' in signing_input(approval_text('"150.00"'))


# --- what has no single canonical form ---------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "match"),
    [
        ("150.00000000000001", "more digits than a JSON"),
        ("333333333.33333329", "more digits than a JSON"),
        ("1e-400", "more digits than a JSON"),
        ("1e400", "outside the range"),
        ("9007199254740993", r"beyond \+/-\(2\*\*53 - 1\)"),
        ("NaN", "is not a JSON number"),
        ("Infinity", "is not a JSON number"),
    ],
)
def test_a_number_the_pipeline_would_read_differently_is_refused(price: str, match: str) -> None:
    with pytest.raises(CanonicalError, match=match):
        signing_input(approval_text(price))


def test_the_largest_safe_integer_is_accepted() -> None:
    assert b"9007199254740991" in signing_input(approval_text(str(SAFE_INT)))


def test_duplicate_members_are_refused() -> None:
    """Parsers disagree on which duplicate wins, so the signed one might not be the used one."""
    text = approval_text("150").replace('"decision": "approved"',
                                        '"decision": "rejected", "decision": "approved"')
    with pytest.raises(CanonicalError, match="'decision' appears twice"):
        signing_input(text)


@pytest.mark.parametrize(
    ("raw", "match"),
    [(b"{not json", "not valid UTF-8 JSON"), (b'{"a": "\xff"}', "not valid UTF-8 JSON"),
     (b"[1, 2]", "is a JSON object, not list")],
)
def test_not_an_approval_object(raw: bytes, match: str) -> None:
    with pytest.raises(CanonicalError, match=match):
        signing_input(raw)


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(CanonicalError, match="non-UTF-8"):
        signing_input('{"reason": "\\ud800"}')


# --- values from Python (the project's own signer) ---------------------------------------------


def test_to_json_value_writes_decimals_as_exact_numbers_and_times_in_utc() -> None:
    at = datetime(2026, 11, 21, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    value = to_json_value({"p": Decimal("150.00"), "c": Decimal("0.85"), "q": Decimal("1E+2"),
                           "at": at, "l": (1, True, None)})
    assert value == {"p": 150, "c": 0.85, "q": 100, "at": "2026-11-21T14:30:00Z",
                     "l": [1, True, None]}
    assert type(value["p"]) is int


@pytest.mark.parametrize(
    ("value", "match"),
    [(Decimal("0.12345678901234567890"), "more digits"), (Decimal("NaN"), "not a JSON number"),
     (datetime(2026, 1, 1), "timezone"), (object(), "has no JSON form"),
     (2**60, "beyond")],
)
def test_to_json_value_refuses_what_json_cannot_carry(value: Any, match: str) -> None:
    with pytest.raises(CanonicalError, match=match):
        to_json_value(value)


def test_the_module_prints_the_canonical_form() -> None:
    """`python -m schemas.canonical < approval.json`: the shell path for producers."""
    out = subprocess.run([sys.executable, "-m", "schemas.canonical"],
                         input=approval_text("1.5e2").encode(), capture_output=True,
                         check=True, timeout=60)
    assert out.stdout == signing_input(approval_text("150"))
    bad = subprocess.run([sys.executable, "-m", "schemas.canonical"],
                         input=approval_text("0.1000000000000000000001").encode(),
                         capture_output=True, check=False, timeout=60)
    assert bad.returncode == 1
    assert b"more digits" in bad.stderr


# --- properties --------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
leaves = st.one_of(st.none(), st.booleans(), st.integers(-SAFE_INT, SAFE_INT), finite,
                   st.text(max_size=8))
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20,
)


def spellings(value: float) -> list[str]:
    """Exact spellings of one double, as different producers write it."""
    shortest = Decimal(repr(value))
    forms = [repr(value), format(shortest, "e"), format(shortest, ".25e"), format(shortest, "E")]
    plain = format(shortest, "f")
    forms.append(plain + ("0" if "." in plain else ".000"))
    return forms


def render(value: Any, rng: random.Random) -> str:
    """JSON text of `value` with shuffled keys, random whitespace and number spelling."""
    space = rng.choice(["", " ", "\n  ", "\t"])
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        body = f",{space}".join(f"{json.dumps(k)}{space}:{space}{render(v, rng)}"
                                for k, v in items)
        return "{" + space + body + space + "}"
    if isinstance(value, list):
        return "[" + f",{space}".join(render(v, rng) for v in value) + "]"
    if isinstance(value, float):
        return rng.choice(spellings(value))
    return json.dumps(value)


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(st.text(max_size=6), json_values, max_size=6),
       seed=st.integers(0, 2**32))
def test_canonical_form_is_stable_under_order_whitespace_and_number_spelling(
    value: dict[str, Any], seed: int
) -> None:
    rng = random.Random(seed)
    expected = dumps(signed_content(value))
    assert signing_input(render(value, rng)) == expected
    assert signing_input(render(value, rng)) == expected


@settings(max_examples=300, deadline=None)
@given(number=finite)
def test_the_pipeline_reads_the_value_that_was_signed(number: float) -> None:
    """The pipeline reads numbers as Decimal(text): for accepted text that is the signed value."""
    for text in spellings(number):
        signed = dumps(loads(text))
        pipeline = Decimal(json.loads(text, parse_float=str, parse_int=str))
        assert Decimal(signed.decode()) == pipeline


@settings(max_examples=200, deadline=None)
@given(digits=st.integers(1, 10**30), exponent=st.integers(-40, 40))
def test_a_decimal_is_either_signed_exactly_or_refused(digits: int, exponent: int) -> None:
    text = f"{digits}e{exponent}"
    try:
        signed = dumps(loads(text))
    except CanonicalError:
        return
    assert Decimal(signed.decode()) == Decimal(text)


def test_timestamps_in_other_offsets_are_signed_as_sent() -> None:
    """A time is a string: 14:30Z and 09:30-05:00 are the same instant but sign differently."""
    zulu = approval_text("150")
    other = zulu.replace("2026-11-21T14:30:00Z", "2026-11-21T09:30:00-05:00")
    assert signing_input(zulu) != signing_input(other)
    assert datetime.fromisoformat("2026-11-21T09:30:00-05:00").astimezone(UTC).hour == 14
    assert SEED_SIGNAL["entry_price"] == 150.0
