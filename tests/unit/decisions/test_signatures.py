"""Signed approvals: a genuine one verifies, every other one is refused with its reason."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import SecretBytes

from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.signatures import (
    KeyEntry,
    KeyRing,
    Verified,
    decode_signature,
    public_key_from_text,
    public_key_pem,
    sign,
    verify,
)
from schemas.canonical import dumps, signing_input
from schemas.events import Approval
from schemas.examples import SEED_SIGNAL

R = ReasonCode
NOW = datetime(2026, 11, 21, 14, 31, tzinfo=UTC)
ALICE = Ed25519PrivateKey.generate()
MALLORY = Ed25519PrivateKey.generate()
SECRET = bytes(range(32))
RING = KeyRing.of(
    KeyEntry.ed25519("alice-1", ALICE.public_key(), ["alice"]),
    KeyEntry.hmac_sha256("upstream-1", SECRET, ["strategy-desk", "alice"]),
)


def unsigned(**changes: Any) -> dict[str, Any]:
    """The seed approval as a producer builds it before signing."""
    return {"signal": dict(SEED_SIGNAL), "decision": "approved", "approved_by": "alice",
            "decided_at": "2026-11-21T14:30:00Z", "expires_at": "2026-11-21T14:40:00Z"} | changes


def signed(key: Ed25519PrivateKey | SecretBytes = ALICE, key_id: str = "alice-1",
           **changes: Any) -> dict[str, Any]:
    return sign(unsigned(**changes), key, key_id)


def wire(approval: dict[str, Any]) -> bytes:
    """The bytes a producer publishes."""
    return json.dumps(approval).encode()


def refused(outcome: Verified | Refusal, code: ReasonCode) -> Refusal:
    assert isinstance(outcome, Refusal), outcome
    assert outcome.code is code, outcome
    assert outcome.message
    return outcome


# --- genuine approvals -------------------------------------------------------------------------


def test_an_ed25519_signed_approval_verifies() -> None:
    outcome = verify(wire(signed()), RING, NOW)
    assert isinstance(outcome, Verified), outcome
    assert (outcome.key_id, outcome.algorithm, outcome.approved_by) == ("alice-1", "ed25519",
                                                                        "alice")
    assert outcome.expires_at == datetime(2026, 11, 21, 14, 40, tzinfo=UTC)
    assert outcome.canonical == signing_input(signed())


def test_an_hmac_signed_approval_verifies() -> None:
    approval = signed(SecretBytes(SECRET), "upstream-1", approved_by="strategy-desk")
    outcome = verify(wire(approval), RING, NOW)
    assert isinstance(outcome, Verified), outcome
    assert outcome.algorithm == "hmac-sha256"
    expected = hmac.digest(SECRET, signing_input(approval), "sha256")
    assert base64.b64decode(approval["signature"]) == expected


def test_verify_takes_bytes_text_or_a_parsed_mapping() -> None:
    approval = signed()
    for form in (wire(approval), wire(approval).decode(), json.loads(wire(approval))):
        assert isinstance(verify(form, RING, NOW), Verified)


def test_url_safe_base64_without_padding_is_accepted() -> None:
    approval = signed()
    raw = base64.b64decode(approval["signature"])
    approval["signature"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert isinstance(verify(wire(approval), RING, NOW), Verified)


def test_an_approval_without_expiry_does_not_expire_by_itself() -> None:
    approval = sign({k: v for k, v in unsigned().items() if k != "expires_at"}, ALICE, "alice-1")
    outcome = verify(wire(approval), RING, NOW + timedelta(days=3650))
    assert isinstance(outcome, Verified)
    assert outcome.expires_at is None


def test_sign_writes_model_values_as_the_json_the_pipeline_reads() -> None:
    """Decimals from a model dump are signed as exact numbers and published as such."""
    model = Approval.model_validate(unsigned())
    dumped = model.model_dump(mode="python", include={"signal", "decision", "approved_by",
                                                      "decided_at", "expires_at"})
    dumped["signal"] = {k: v for k, v in dumped["signal"].items() if k in SEED_SIGNAL}
    approval = sign(dumped, ALICE, "alice-1")
    assert approval["signal"]["entry_price"] == 150
    assert isinstance(verify(wire(approval), RING, NOW), Verified)
    decoded = Approval.model_validate_json(wire(approval))
    assert decoded.signal.entry_price == Decimal("150.00")
    assert decoded.key_id == "alice-1"
    assert decoded.signature == approval["signature"]


def test_signing_changes_neither_the_approval_id_nor_its_decoding() -> None:
    """Unsigned approvals still decode (and are refused by verify, not dead-lettered)."""
    plain = Approval.model_validate(unsigned())
    sealed = Approval.model_validate_json(wire(signed()))
    assert plain.signature is None
    assert plain.key_id is None
    assert sealed.event_id == plain.event_id
    assert sealed.algorithm == "ed25519"


# --- each refusal ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "missing"),
    [(("signature", "key_id", "algorithm"), "signature,key_id"), (("signature",), "signature"),
     (("key_id",), "key_id")],
)
def test_unsigned(drop: tuple[str, ...], missing: str) -> None:
    approval = {k: v for k, v in signed().items() if k not in drop}
    refusal = refused(verify(wire(approval), RING, NOW), R.UNSIGNED)
    assert refusal.details == {"missing": missing, "approved_by": "alice"}


def test_a_null_signature_is_unsigned() -> None:
    refused(verify(wire(signed() | {"signature": None}), RING, NOW), R.UNSIGNED)


def test_an_old_producer_with_a_lossy_number_is_told_it_is_unsigned() -> None:
    text = wire(unsigned()).replace(b'"entry_price": 150.0', b'"entry_price": 150.00000000000001')
    assert b"150.00000000000001" in text
    refused(verify(text, RING, NOW), R.UNSIGNED)


def test_unknown_key() -> None:
    refusal = refused(verify(wire(signed(MALLORY, "mallory-1")), RING, NOW), R.UNKNOWN_KEY)
    assert refusal.details["key_id"] == "mallory-1"


def test_revoked_key() -> None:
    refusal = refused(verify(wire(signed()), RING.revoke("alice-1"), NOW), R.REVOKED_KEY)
    assert refusal.details["key_id"] == "alice-1"


def test_a_signature_by_another_key_under_a_known_key_id() -> None:
    refused(verify(wire(signed(MALLORY, "alice-1")), RING, NOW), R.BAD_SIGNATURE)


@pytest.mark.parametrize(
    ("path", "value"),
    [(("signal", "entry_price"), 140), (("signal", "stop_loss"), 100), (("signal", "symbol"),
     "TSLA"), (("signal", "signal_type"), "SELL"), (("decision",), "rejected"),
     (("decided_at",), "2026-11-21T14:35:00Z"), (("expires_at",), "2027-11-21T14:40:00Z"),
     (("reason",), "added later")],
)
def test_a_tampered_field(path: tuple[str, ...], value: Any) -> None:
    approval = signed()
    target = approval
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    refusal = refused(verify(wire(approval), RING, NOW), R.BAD_SIGNATURE)
    assert "changed after signing" in refusal.message
    assert len(refusal.details["canonical_sha256"]) == 64


def test_a_claimed_algorithm_that_is_not_the_keys() -> None:
    """An Ed25519 key id with an HMAC claim is refused before any HMAC is computed."""
    approval = signed() | {"algorithm": "hmac-sha256"}
    refusal = refused(verify(wire(approval), RING, NOW), R.BAD_SIGNATURE)
    assert refusal.details["key_algorithm"] == "ed25519"


@pytest.mark.parametrize(
    ("signature", "match"),
    [("not base64!", "not base64"), (base64.b64encode(b"x" * 63).decode(), "64 bytes")],
)
def test_a_malformed_signature(signature: str, match: str) -> None:
    refusal = refused(verify(wire(signed() | {"signature": signature}), RING, NOW),
                      R.BAD_SIGNATURE)
    assert match in refusal.message


def test_a_non_string_key_id_or_signature() -> None:
    refused(verify(wire(signed() | {"signature": 7}), RING, NOW), R.BAD_SIGNATURE)


def test_a_signed_approval_with_a_lossy_number_is_refused() -> None:
    text = wire(signed()).replace(b'"entry_price": 150', b'"entry_price": 150.00000000000001')
    refusal = refused(verify(text, RING, NOW), R.BAD_SIGNATURE)
    assert "more digits" in refusal.message


def test_not_an_object() -> None:
    refused(verify(b"[1]", RING, NOW), R.BAD_SIGNATURE)


def test_expired() -> None:
    expiry = datetime(2026, 11, 21, 14, 40, tzinfo=UTC)
    assert isinstance(verify(wire(signed()), RING, expiry - timedelta(microseconds=1)), Verified)
    refusal = refused(verify(wire(signed()), RING, expiry), R.APPROVAL_EXPIRED)
    assert refusal.details["expires_at"] == "2026-11-21T14:40:00+00:00"


def test_a_malformed_expiry_under_a_genuine_signature() -> None:
    refusal = refused(verify(wire(signed(expires_at="tomorrow")), RING, NOW), R.INVALID_FIELD)
    assert refusal.details["field"] == "expires_at"


@pytest.mark.parametrize("approved_by", ["bob", "strategy-desk"])
def test_signer_mismatch(approved_by: str) -> None:
    """Alice's genuine signature on an approval in someone else's name."""
    refusal = refused(verify(wire(signed(approved_by=approved_by)), RING, NOW),
                      R.SIGNER_MISMATCH)
    assert refusal.details == {"key_id": "alice-1", "approved_by": approved_by,
                               "signs_for": "alice"}


def test_the_stage_is_the_callers() -> None:
    assert refused(verify(b"{}", RING, NOW, stage="submission"), R.UNSIGNED).stage == "submission"


# --- keys and secrets --------------------------------------------------------------------------


def test_secrets_never_show() -> None:
    hexed, b64 = SECRET.hex(), base64.b64encode(SECRET).decode()
    entry = RING.get("upstream-1")
    bad = verify(wire(signed(SecretBytes(SECRET), "upstream-1") | {"reason": "x"}), RING, NOW)
    for text in (repr(RING), repr(entry), str(entry), repr(bad), str(bad)):
        assert hexed not in text
        assert b64 not in text
        assert repr(SECRET) not in text


@pytest.mark.parametrize(
    ("make", "match"),
    [(lambda: KeyEntry.hmac_sha256("k", b"short", ["a"]), "shorter than 32 bytes"),
     (lambda: KeyEntry.ed25519("k", ALICE.public_key(), []), "signs for nobody"),
     (lambda: KeyEntry("", "ed25519", frozenset({"a"}), public_key=ALICE.public_key()),
      "needs a key_id"),
     (lambda: KeyEntry("k", "ed25519", frozenset({"a"})), "needs a public key"),
     (lambda: KeyRing.of(RING.entries["alice-1"], RING.entries["alice-1"]), "appears twice")],
)
def test_key_entries_are_checked(make: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_public_keys_read_from_pem_or_raw_base64() -> None:
    pem = public_key_pem(ALICE)
    raw = ALICE.public_key().public_bytes_raw()
    assert public_key_from_text(pem).public_bytes_raw() == raw
    assert public_key_from_text(base64.b64encode(raw).decode()).public_bytes_raw() == raw
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        public_key_from_text("AAAA")


def test_decode_signature_accepts_both_alphabets() -> None:
    raw = bytes(range(250, 256)) * 11
    assert decode_signature(base64.b64encode(raw).decode()) == raw
    assert decode_signature(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw


# --- property: any change to any signed field invalidates the signature ------------------------

json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))


def leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaf_paths(v, (*prefix, k))]
    return [prefix]


def replaced(approval: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    out = copy.deepcopy(approval)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


BASE = signed(reason="momentum confirmed")
SIGNED_PATHS = [p for p in leaf_paths(BASE) if p != ("signature",)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(SIGNED_PATHS), new=json_leaves)
def test_any_change_to_any_signed_field_is_refused(path: tuple[Any, ...], new: Any) -> None:
    old = BASE
    for key in path:
        old = old[key]
    assume(dumps(new) != dumps(old))  # 150 -> 150.0 is not a change
    outcome = verify(wire(replaced(BASE, path, new)), RING, NOW)
    assert isinstance(outcome, Refusal), (path, new)
    if path == ("key_id",):  # another key id names another (or no) key
        assert outcome.code in {R.UNKNOWN_KEY, R.UNSIGNED, R.BAD_SIGNATURE}
    else:
        assert outcome.code is R.BAD_SIGNATURE, (path, new, outcome)


@settings(max_examples=100, deadline=None)
@given(where=st.sampled_from([(), ("signal",)]), name=st.text(min_size=1, max_size=10),
       value=json_leaves)
def test_adding_a_member_is_refused(where: tuple[str, ...], name: str, value: Any) -> None:
    approval = copy.deepcopy(BASE)
    target = approval
    for key in where:
        target = target[key]
    assume(name not in target)
    target[name] = value
    assert refused(verify(wire(approval), RING, NOW), R.BAD_SIGNATURE)


@pytest.mark.parametrize("path", [p for p in SIGNED_PATHS if p not in {("key_id",)}])
def test_removing_a_signed_member_is_refused(path: tuple[str, ...]) -> None:
    approval = copy.deepcopy(BASE)
    target = approval
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    refused(verify(wire(approval), RING, NOW), R.BAD_SIGNATURE)


def test_the_signature_covers_the_sha256_the_refusal_names() -> None:
    approval = replaced(BASE, ("decision",), "rejected")
    refusal = refused(verify(wire(approval), RING, NOW), R.BAD_SIGNATURE)
    assert refusal.details["canonical_sha256"] == hashlib.sha256(
        signing_input(approval)).hexdigest()
