"""Approval keys on disk: development keys, the keyring, revocation, and nothing secret shown."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretBytes

from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.signatures import Verified, public_key_pem, sign, verify
from jax_exec.keys import (
    KeyringError,
    add_hmac_key,
    add_public_key,
    describe,
    generate_dev_keys,
    keyring_path,
    load_keyring,
    load_private_key,
    private_key_path,
    read_document,
    revoke_key,
    signing_key,
)
from schemas.examples import SEED_SIGNAL

NOW = datetime(2026, 11, 21, 14, 31, tzinfo=UTC)


def approval(by: str) -> dict[str, object]:
    return {"signal": SEED_SIGNAL, "decision": "approved", "approved_by": by,
            "decided_at": "2026-11-21T14:30:00Z"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_dev_keys_are_made_once_with_private_files_0600(tmp_path: Path) -> None:
    ids = generate_dev_keys(tmp_path)
    assert [i.split("-")[0] for i in ids] == ["alice", "bob"]
    assert generate_dev_keys(tmp_path) == ids  # idempotent: make run calls it every time
    assert mode(tmp_path / "keys") == 0o700
    for name in ("alice", "bob"):
        assert mode(private_key_path(tmp_path, name)) == 0o600
    ring = keyring_path(tmp_path)
    assert ring == tmp_path / "keys" / "keyring.json"
    doc = read_document(ring)
    assert [k["key_id"] for k in doc["keys"]] == ids
    assert "PRIVATE" not in ring.read_text()


def test_the_cli_key_signs_what_the_keyring_verifies(tmp_path: Path) -> None:
    generate_dev_keys(tmp_path)
    key = signing_key(tmp_path, "alice")
    assert "PRIVATE" not in repr(key)
    ring = load_keyring(keyring_path(tmp_path))
    outcome = verify(json.dumps(sign(approval("alice"), key.private_key, key.key_id)), ring, NOW)
    assert isinstance(outcome, Verified), outcome
    bob = verify(json.dumps(sign(approval("bob"), key.private_key, key.key_id)), ring, NOW)
    assert isinstance(bob, Refusal)
    assert bob.code is ReasonCode.SIGNER_MISMATCH


def test_revoking_a_key(tmp_path: Path) -> None:
    (alice_id, _) = generate_dev_keys(tmp_path)
    key = signing_key(tmp_path, "alice")
    signed = json.dumps(sign(approval("alice"), key.private_key, key.key_id))
    revoke_key(keyring_path(tmp_path), alice_id)
    outcome = verify(signed, load_keyring(keyring_path(tmp_path)), NOW)
    assert isinstance(outcome, Refusal)
    assert outcome.code is ReasonCode.REVOKED_KEY
    with pytest.raises(KeyringError, match="revoked in the approval keyring"):
        signing_key(tmp_path, "alice")
    generate_dev_keys(tmp_path)  # regenerating does not bring a revoked key back
    assert load_keyring(keyring_path(tmp_path)).entries[alice_id].revoked
    with pytest.raises(KeyringError, match="no key 'nobody'"):
        revoke_key(keyring_path(tmp_path), "nobody")


def test_an_upstream_public_key_is_added(tmp_path: Path) -> None:
    ring = keyring_path(tmp_path)
    theirs = Ed25519PrivateKey.generate()
    add_public_key(ring, "desk-2026", public_key_pem(theirs), ["strategy-desk"])
    with pytest.raises(KeyringError, match="already in"):
        add_public_key(ring, "desk-2026", public_key_pem(theirs), ["strategy-desk"])
    with pytest.raises(KeyringError, match="not an Ed25519 public key"):
        add_public_key(ring, "desk-2027", "garbage", ["strategy-desk"])
    with pytest.raises(KeyringError, match="at least one"):
        add_public_key(ring, "desk-2027", public_key_pem(theirs), [])
    signed = json.dumps(sign(approval("strategy-desk"), theirs, "desk-2026"))
    assert isinstance(verify(signed, load_keyring(ring), NOW), Verified)


def test_an_hmac_key_lives_in_its_own_0600_file(tmp_path: Path) -> None:
    ring = keyring_path(tmp_path)
    secret_file = add_hmac_key(ring, "upstream-1", ["strategy-desk"])
    assert mode(secret_file) == 0o600
    secret = bytes.fromhex(secret_file.read_text())
    assert len(secret) == 32
    assert secret.hex() not in ring.read_text()
    assert secret.hex() not in describe(tmp_path)
    loaded = load_keyring(ring)
    assert secret.hex() not in repr(loaded.entries)
    signed = json.dumps(sign(approval("strategy-desk"), SecretBytes(secret), "upstream-1"))
    assert isinstance(verify(signed, loaded, NOW), Verified)
    with pytest.raises(KeyringError, match="already in"):
        add_hmac_key(ring, "upstream-1", ["x"])


def test_key_files_readable_by_others_are_refused(tmp_path: Path) -> None:
    generate_dev_keys(tmp_path, ["alice"])
    path = private_key_path(tmp_path, "alice")
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        load_private_key(path)


def test_a_missing_keyring_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="APPROVAL_KEYRING"):
        load_keyring(tmp_path / "nope.json")
    assert "missing, every approval will be refused" in describe(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [("{", "not readable JSON"), ('{"version": 1}', 'no "keys" list'),
     ('{"version": 2, "keys": []}', "version 2"),
     ('{"version": 1, "keys": [{"key_id": "k", "algorithm": "rsa", "signs_for": ["a"]}]}',
      "algorithm 'rsa'"),
     ('{"version": 1, "keys": [{"key_id": "k", "algorithm": "ed25519", "signs_for": ["a"],'
      ' "public_key": "AAAA"}]}', "not an Ed25519 public key"),
     ('{"version": 1, "keys": [{"key_id": "k", "algorithm": "hmac-sha256", "signs_for": ["a"],'
      ' "secret_file": "none.hex"}]}', "no key file")],
)
def test_a_malformed_keyring_is_refused_with_its_problem(tmp_path: Path, content: str,
                                                         match: str) -> None:
    path = tmp_path / "keyring.json"
    path.write_text(content)
    with pytest.raises(KeyringError, match=match):
        load_keyring(path)


def test_the_keyring_path_can_be_configured(tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc" / "ring.json"
    generate_dev_keys(tmp_path, ["carol"], keyring=elsewhere)
    assert elsewhere.exists()
    assert not keyring_path(tmp_path).exists()
    assert signing_key(tmp_path, "carol", keyring=elsewhere).approver == "carol"


def test_names_that_are_not_file_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot name a key"):
        generate_dev_keys(tmp_path, ["../etc/passwd"])


def test_describe_says_where_the_keys_are(tmp_path: Path) -> None:
    ids = generate_dev_keys(tmp_path)
    revoke_key(keyring_path(tmp_path), ids[1])
    line = describe(tmp_path)
    print(line)
    assert str(keyring_path(tmp_path)) in line
    assert "2 keys (1 revoked)" in line
    assert "signing keys of alice, bob in" in line
    assert "PRIVATE" not in line
