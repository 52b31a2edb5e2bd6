"""Approval keys on disk: development keys under JAX_HOME, the keyring the pipeline checks.

Layout (JAX_HOME/keys/, mode 0700):

    keyring.json                 the keys the pipeline accepts; public keys only, plus the
                                 file names of HMAC secrets (APPROVAL_KEYRING points here)
    approvers/<name>.ed25519.pem each approver's Ed25519 private key for the CLI (PKCS#8
                                 PEM, mode 0600, readable by `openssl pkeyutl -inkey`)
    secrets/<key id>.hex         an upstream system's HMAC-SHA256 secret, hex (mode 0600)

keyring.json: {"version": 1, "keys": [{"key_id", "algorithm", "signs_for": [names],
"public_key": PEM (ed25519) | "secret_file": path relative to the keyring (hmac-sha256),
"revoked": bool, "created_at"}]}. Nothing here prints or logs a private key or a secret.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretBytes

from agents.decisions.signatures import (
    ALGORITHMS,
    ED25519,
    HMAC_SHA256,
    KeyEntry,
    KeyRing,
    fingerprint,
    public_key_from_text,
    public_key_pem,
)
from schemas.errors import JaxError

KEYS_DIR = "keys"
KEYRING_FILE = "keyring.json"
KEYRING_VERSION = 1
DEV_APPROVERS = ("alice", "bob")
HMAC_SECRET_BYTES = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class KeyringError(JaxError):
    """The keyring or a key file is missing, malformed or unsafe; the message says which."""

    code = "keyring"


@dataclass(frozen=True)
class SigningKey:
    """An approver's own key, as the CLI uses it to sign."""

    key_id: str
    approver: str
    private_key: Ed25519PrivateKey
    path: Path

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r}, approver={self.approver!r}, path={self.path})"


# --- where -----------------------------------------------------------------------------------


def keys_dir(jax_home: Path) -> Path:
    return jax_home / KEYS_DIR


def keyring_path(jax_home: Path, configured: Path | None = None) -> Path:
    """APPROVAL_KEYRING when set, else JAX_HOME/keys/keyring.json."""
    return configured if configured is not None else keys_dir(jax_home) / KEYRING_FILE


def private_key_path(jax_home: Path, approver: str) -> Path:
    return keys_dir(jax_home) / "approvers" / f"{_checked_name(approver)}.ed25519.pem"


def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise KeyringError(
            f"{name!r} cannot name a key: use letters, digits and . _ @ - (at most 128)")
    return name


def _names(signs_for: Iterable[str]) -> list[str]:
    names = [_checked_name(n) for n in signs_for]
    if not names:
        raise KeyringError("a key must sign for at least one approver or system name")
    return names


# --- files -----------------------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> bool:
    """Create a 0600 file; False when it already exists (never overwrites a key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return True


def _read_private(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyringError(f"no key file at {path}") from exc
    if mode & 0o077:
        raise KeyringError(
            f"{path} is readable by others (mode {mode & 0o777:o}): run chmod 600 {path}")
    return path.read_bytes()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer of the keyring at a time (stages may start together)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_document(path: Path) -> dict[str, Any]:
    """The keyring file as JSON; an absent file is an empty keyring."""
    if not path.exists():
        return {"version": KEYRING_VERSION, "keys": []}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KeyringError(f"approval keyring {path} is not readable JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeyringError(f"approval keyring {path} has no \"keys\" list")
    if doc.get("version") != KEYRING_VERSION:
        raise KeyringError(f"approval keyring {path} is version {doc.get('version')!r}, "
                           f"this program reads version {KEYRING_VERSION}")
    return doc


def _write_document(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, path)


# --- the keyring -----------------------------------------------------------------------------


def load_keyring(path: Path) -> KeyRing:
    """The keys the pipeline accepts; a missing file is an error that says what to do."""
    if not path.exists():
        raise KeyringError(
            f"no approval keyring at {path}: `make run` creates development keys there, or "
            "set APPROVAL_KEYRING to your keyring file")
    doc = read_document(path)
    try:
        return KeyRing.of(*(_entry(item, path.parent) for item in doc["keys"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyringError(f"approval keyring {path}: {exc}") from exc


def _entry(item: dict[str, Any], base: Path) -> KeyEntry:
    key_id, algorithm = item["key_id"], item["algorithm"]
    if algorithm not in ALGORITHMS:
        raise ValueError(f"key {key_id!r}: algorithm {algorithm!r} is not one of {ALGORITHMS}")
    signs_for = [str(name) for name in item["signs_for"]]
    revoked = bool(item.get("revoked", False))
    if algorithm == ED25519:
        return KeyEntry.ed25519(key_id, public_key_from_text(item["public_key"]), signs_for,
                                revoked)
    secret_path = base / item["secret_file"]
    try:
        secret = bytes.fromhex(_read_private(secret_path).decode().strip())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"key {key_id!r}: {secret_path} is not a hex secret") from exc
    return KeyEntry.hmac_sha256(key_id, SecretBytes(secret), signs_for, revoked)


def _add(path: Path, item: dict[str, Any]) -> None:
    doc = read_document(path)
    if any(k.get("key_id") == item["key_id"] for k in doc["keys"]):
        raise KeyringError(f"key {item['key_id']!r} is already in {path}")
    doc["keys"].append({**item, "revoked": False,
                        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
    _write_document(path, doc)


def add_public_key(path: Path, key_id: str, public_key: str, signs_for: Iterable[str]) -> None:
    """Accept an Ed25519 public key (PEM or base64 of 32 bytes), e.g. an upstream producer's."""
    names = _names(signs_for)
    try:
        key = public_key_from_text(public_key)
    except ValueError as exc:
        raise KeyringError(str(exc)) from exc
    _checked_name(key_id)
    pem = public_key_pem(key)
    with _locked(path):
        _add(path, {"key_id": key_id, "algorithm": ED25519, "signs_for": names,
                    "public_key": pem})


def add_hmac_key(path: Path, key_id: str, signs_for: Iterable[str]) -> Path:
    """Make a new HMAC-SHA256 secret for an upstream system; returns the file holding it."""
    names = _names(signs_for)
    relative = Path("secrets") / f"{_checked_name(key_id)}.hex"
    with _locked(path):
        if any(k.get("key_id") == key_id for k in read_document(path)["keys"]):
            raise KeyringError(f"key {key_id!r} is already in {path}")
        if not _write_private(path.parent / relative,
                              secrets.token_bytes(HMAC_SECRET_BYTES).hex().encode() + b"\n"):
            raise KeyringError(f"{path.parent / relative} already exists; remove it first")
        _add(path, {"key_id": key_id, "algorithm": HMAC_SHA256, "signs_for": names,
                    "secret_file": str(relative)})
    return path.parent / relative


def revoke_key(path: Path, key_id: str) -> None:
    """Mark a key revoked: from the next keyring load on, nothing it signs is accepted."""
    with _locked(path):
        doc = read_document(path)
        matches = [k for k in doc["keys"] if k.get("key_id") == key_id]
        if not matches:
            raise KeyringError(f"no key {key_id!r} in {path}")
        for item in matches:
            item["revoked"] = True
            item["revoked_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        _write_document(path, doc)


# --- approvers' own keys (development, and the CLI) ------------------------------------------


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = _read_private(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyringError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyringError(f"{path} is not an Ed25519 key but {type(key).__name__}")
    return key


def _key_id(approver: str, key: Ed25519PrivateKey) -> str:
    return f"{approver}-{fingerprint(key.public_key())}"


def ensure_approver_key(jax_home: Path, approver: str, keyring: Path | None = None) -> str:
    """An approver's private key (made once) with its public key in the keyring; its key id."""
    path = private_key_path(jax_home, approver)
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        _write_private(path, pem)  # loses a race harmlessly: the first key written is kept
    key = load_private_key(path)
    key_id = _key_id(approver, key)
    ring = keyring_path(jax_home, keyring)
    with _locked(ring):
        if not any(k.get("key_id") == key_id for k in read_document(ring)["keys"]):
            _add(ring, {"key_id": key_id, "algorithm": ED25519, "signs_for": [approver],
                        "public_key": public_key_pem(key)})
    return key_id


def generate_dev_keys(jax_home: Path, approvers: Iterable[str] = DEV_APPROVERS,
                      keyring: Path | None = None) -> list[str]:
    """Development keys for each approver (idempotent: existing keys are kept); key ids."""
    keys_dir(jax_home).mkdir(parents=True, exist_ok=True, mode=0o700)
    return [ensure_approver_key(jax_home, name, keyring) for name in approvers]


def signing_key(jax_home: Path, approver: str, keyring: Path | None = None) -> SigningKey:
    """The CLI's key for `approver`, refused when the keyring does not accept it."""
    path = private_key_path(jax_home, approver)
    if not path.exists():
        raise KeyringError(f"no signing key for {approver!r} at {path}")
    key = load_private_key(path)
    key_id = _key_id(approver, key)
    ring = load_keyring(keyring_path(jax_home, keyring))
    entry = ring.get(key_id)
    if entry is None or entry.revoked or approver not in entry.signs_for:
        state = "not in" if entry is None else "revoked in" if entry.revoked else "not for"
        raise KeyringError(f"key {key_id!r} of {approver!r} is {state} the approval keyring")
    return SigningKey(key_id, approver, key, path)


def describe(jax_home: Path, keyring: Path | None = None) -> str:
    """One line for the start-up banner: where the keys are, how many, no secrets."""
    ring = keyring_path(jax_home, keyring)
    try:
        doc = read_document(ring) if ring.exists() else None
    except KeyringError as exc:
        return f"approval keyring {ring}: unreadable ({exc})"
    if doc is None:
        return f"approval keyring {ring}: missing, every approval will be refused"
    keys = doc["keys"]
    revoked = sum(1 for k in keys if k.get("revoked"))
    approvers_dir = keys_dir(jax_home) / "approvers"
    mine = sorted(p.name.removesuffix(".ed25519.pem") for p in approvers_dir.glob("*.pem"))
    held = f"; signing keys of {', '.join(mine)} in {approvers_dir}" if mine else ""
    return f"approval keyring {ring}: {len(keys)} keys ({revoked} revoked){held}"
