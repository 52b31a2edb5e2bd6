"""Signed approvals: who may approve, checked before anything is sized. Pure: no I/O, no clock.

An approval is signed over `schemas.canonical.signing_input` (RFC 8785 of the approval as
published, without `signature`) with the key named by its `key_id`. Ed25519 is the default:
the pipeline holds only public keys, so it can check an approval but never make one.
HMAC-SHA256 is for upstream systems that can only hold a shared secret. The signature is
carried as standard base64 (the URL-safe alphabet and missing padding are accepted).

`verify` returns `Verified` or a `Refusal` with one of the signature reason codes; a field
changed after signing is BAD_SIGNATURE. Secrets never appear in a repr, a message or a detail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import SecretBytes, TypeAdapter, ValidationError

from agents.decisions.reasons import ReasonCode, Refusal, Stage
from schemas.canonical import (
    SIGNATURE_FIELD,
    CanonicalError,
    loads,
    signing_input,
    to_json_value,
)
from schemas.events import UtcDatetime

Algorithm = Literal["ed25519", "hmac-sha256"]
ED25519: Algorithm = "ed25519"
HMAC_SHA256: Algorithm = "hmac-sha256"
ALGORITHMS: tuple[Algorithm, ...] = (ED25519, HMAC_SHA256)
SIGNATURE_BYTES = {ED25519: 64, HMAC_SHA256: 32}
MIN_HMAC_SECRET_BYTES = 32  # RFC 2104: a key shorter than the hash output weakens it

SigningKey = Ed25519PrivateKey | SecretBytes
_UTC_DATETIME: TypeAdapter[Any] = TypeAdapter(UtcDatetime)
R = ReasonCode


@dataclass(frozen=True)
class KeyEntry:
    """One key the pipeline accepts: what it is, whom it may sign for, whether it is revoked."""

    key_id: str
    algorithm: Algorithm
    signs_for: frozenset[str]
    public_key: Ed25519PublicKey | None = field(default=None, repr=False)
    secret: SecretBytes | None = field(default=None, repr=False)
    revoked: bool = False

    def __post_init__(self) -> None:
        if not self.key_id:
            raise ValueError("a key needs a key_id")
        if not self.signs_for:
            raise ValueError(f"key {self.key_id!r} signs for nobody: give it approver names")
        if self.algorithm == ED25519 and (self.public_key is None or self.secret is not None):
            raise ValueError(f"ed25519 key {self.key_id!r} needs a public key and no secret")
        if self.algorithm == HMAC_SHA256:
            if self.secret is None or self.public_key is not None:
                raise ValueError(f"hmac-sha256 key {self.key_id!r} needs a secret")
            if len(self.secret.get_secret_value()) < MIN_HMAC_SECRET_BYTES:
                raise ValueError(
                    f"hmac-sha256 key {self.key_id!r} is shorter than "
                    f"{MIN_HMAC_SECRET_BYTES} bytes")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"key {self.key_id!r}: unknown algorithm {self.algorithm!r}")

    @classmethod
    def ed25519(cls, key_id: str, public_key: Ed25519PublicKey, signs_for: Iterable[str],
                revoked: bool = False) -> KeyEntry:
        return cls(key_id, ED25519, frozenset(signs_for), public_key=public_key, revoked=revoked)

    @classmethod
    def hmac_sha256(cls, key_id: str, secret: bytes | SecretBytes, signs_for: Iterable[str],
                    revoked: bool = False) -> KeyEntry:
        wrapped = secret if isinstance(secret, SecretBytes) else SecretBytes(secret)
        return cls(key_id, HMAC_SHA256, frozenset(signs_for), secret=wrapped, revoked=revoked)

    def check(self, message: bytes, signature: bytes) -> bool:
        """True when `signature` is this key's over `message` (constant time for HMAC)."""
        if self.public_key is not None:
            try:
                self.public_key.verify(signature, message)
            except InvalidSignature:
                return False
            return True
        assert self.secret is not None
        expected = hmac.digest(self.secret.get_secret_value(), message, "sha256")
        return hmac.compare_digest(expected, signature)


@dataclass(frozen=True)
class KeyRing:
    """The keys the pipeline accepts, by key id."""

    entries: Mapping[str, KeyEntry] = field(default_factory=dict)

    @classmethod
    def of(cls, *entries: KeyEntry) -> KeyRing:
        by_id: dict[str, KeyEntry] = {}
        for entry in entries:
            if entry.key_id in by_id:
                raise ValueError(f"key id {entry.key_id!r} appears twice in the keyring")
            by_id[entry.key_id] = entry
        return cls(by_id)

    def get(self, key_id: str) -> KeyEntry | None:
        return self.entries.get(key_id)

    def revoke(self, key_id: str) -> KeyRing:
        """The same ring with `key_id` revoked."""
        entry = self.entries[key_id]
        return KeyRing({**self.entries, key_id: replace(entry, revoked=True)})

    def __iter__(self) -> Iterator[KeyEntry]:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={sorted(self.entries)!r})"


@dataclass(frozen=True)
class Verified:
    """An approval whose signature checked out, with what was signed."""

    key_id: str
    algorithm: Algorithm
    approved_by: str
    expires_at: datetime | None
    content: dict[str, Any]  # the approval as parsed by schemas.canonical.loads
    canonical: bytes  # the exact bytes the signature covers


# --- keys as text ---------------------------------------------------------------------------


def public_key_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """SubjectPublicKeyInfo PEM, what `openssl pkey -pubout` writes."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM or from the base64 of its 32 raw bytes."""
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError(f"not an Ed25519 public key but {type(key).__name__}")
            return key
        return Ed25519PublicKey.from_public_bytes(decode_signature(text))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an Ed25519 public key (PEM or base64 of 32 bytes): {exc}") from exc


def fingerprint(key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of SHA-256 over the raw public key: short, stable, public."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def encode_signature(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def decode_signature(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional; ValueError on anything else."""
    normal = text.replace("-", "+").replace("_", "/")
    normal += "=" * (-len(normal) % 4)
    try:
        return base64.b64decode(normal, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"signature is not base64: {exc}") from exc


# --- signing (the project's own CLI and API) -------------------------------------------------


def sign(approval: Mapping[str, Any], key: SigningKey, key_id: str) -> dict[str, Any]:
    """The approval as it is to be published: JSON values, `key_id`, `algorithm`, `signature`.

    Publish the returned dict as it is (json.dumps); Decimals become exact JSON numbers and
    times ISO 8601 strings, so the bytes on the topic canonicalize to what was signed.
    """
    algorithm: Algorithm = ED25519 if isinstance(key, Ed25519PrivateKey) else HMAC_SHA256
    content = to_json_value({k: v for k, v in approval.items() if k != SIGNATURE_FIELD})
    content["key_id"] = key_id
    content["algorithm"] = algorithm
    message = signing_input(content)
    if isinstance(key, Ed25519PrivateKey):
        raw = key.sign(message)
    else:
        raw = hmac.digest(key.get_secret_value(), message, "sha256")
    return {**content, SIGNATURE_FIELD: encode_signature(raw)}


# --- verification ----------------------------------------------------------------------------


def verify(raw_approval: Mapping[str, Any] | bytes | str, keyring: KeyRing, now: datetime,
           *, stage: Stage = "sizing") -> Verified | Refusal:
    """Check an approval's signature, key, signer and expiry, in that order.

    Pass the message's bytes (or a dict from `schemas.canonical.loads`): the canonical form
    is computed from what the producer sent, never from a decoded model.
    """
    parsed: Any = raw_approval
    if isinstance(raw_approval, bytes | str):
        try:
            parsed = loads(raw_approval)
        except CanonicalError as exc:
            return _unsigned(_lenient(raw_approval), stage) or _not_canonical(exc, stage)
    if not isinstance(parsed, Mapping):
        return Refusal.of(R.BAD_SIGNATURE, "an approval is a JSON object", stage,
                          got=type(parsed).__name__)
    content = dict(parsed)
    found = _signed_by(content, keyring, stage)
    if isinstance(found, Refusal):
        return found
    entry, signature = found
    try:
        message = signing_input(content)
    except CanonicalError as exc:
        return _not_canonical(exc, stage, key_id=entry.key_id)
    if not entry.check(message, signature):
        return _mismatch(content, entry, message, stage)
    return _authorised(content, entry, message, now, stage)


def _signed_by(content: dict[str, Any], keyring: KeyRing,
               stage: Stage) -> tuple[KeyEntry, bytes] | Refusal:
    """The key that claims the approval and the signature's bytes, or why there are none."""
    approved_by = content.get("approved_by")
    unsigned = _unsigned(content, stage)
    if unsigned is not None:
        return unsigned
    key_id, text = content["key_id"], content[SIGNATURE_FIELD]
    if not isinstance(key_id, str) or not isinstance(text, str):
        return Refusal.of(R.BAD_SIGNATURE, "key_id and signature must be JSON strings", stage)
    entry = keyring.get(key_id)
    if entry is None:
        return Refusal.of(
            R.UNKNOWN_KEY, f"the approval is signed with key {key_id!r}, which is not in the "
            "approval keyring", stage, key_id=key_id, approved_by=approved_by,
            keyring_size=len(keyring))
    if entry.revoked:
        return Refusal.of(R.REVOKED_KEY, f"key {key_id!r} is revoked: nothing it signs is "
                          "accepted", stage, key_id=key_id, approved_by=approved_by)
    claimed = content.get("algorithm")
    if claimed is not None and claimed != entry.algorithm:
        return Refusal.of(
            R.BAD_SIGNATURE, f"the approval says it is signed with {claimed!r} but key "
            f"{key_id!r} is an {entry.algorithm} key", stage, key_id=key_id,
            algorithm=claimed, key_algorithm=entry.algorithm)
    try:
        signature = decode_signature(text)
    except ValueError as exc:
        return Refusal.of(R.BAD_SIGNATURE, str(exc), stage, key_id=key_id)
    if len(signature) != SIGNATURE_BYTES[entry.algorithm]:
        return Refusal.of(
            R.BAD_SIGNATURE, f"an {entry.algorithm} signature is "
            f"{SIGNATURE_BYTES[entry.algorithm]} bytes, this one is {len(signature)}", stage,
            key_id=key_id)
    return entry, signature


def _lenient(raw: bytes | str) -> Any:
    """The message as the pipeline's decoder reads it, or None when it is not JSON at all."""
    try:
        return json.loads(raw, parse_float=str, parse_constant=str)
    except ValueError:
        return None


def _unsigned(content: Any, stage: Stage) -> Refusal | None:
    """UNSIGNED when the approval has no signature or no key id (an older producer)."""
    if not isinstance(content, Mapping):
        return None
    missing = [n for n in (SIGNATURE_FIELD, "key_id") if content.get(n) is None]
    if not missing:
        return None
    return Refusal.of(
        R.UNSIGNED,
        f"the approval is not signed: it has no {' and no '.join(missing)}; an approval must "
        "be signed with a key in the approval keyring (see the README, signed approvals)",
        stage, missing=",".join(missing), approved_by=content.get("approved_by"))


def _authorised(content: dict[str, Any], entry: KeyEntry, message: bytes, now: datetime,
                stage: Stage) -> Verified | Refusal:
    """A genuine signature: is the key allowed to sign for this approver, is it still valid?"""
    approved_by = content.get("approved_by")
    if not isinstance(approved_by, str) or approved_by not in entry.signs_for:
        return Refusal.of(
            R.SIGNER_MISMATCH, f"key {entry.key_id!r} may sign for "
            f"{', '.join(sorted(entry.signs_for))}, not for approved_by {approved_by!r}", stage,
            key_id=entry.key_id, approved_by=approved_by,
            signs_for=",".join(sorted(entry.signs_for)))
    expires_at = None
    if content.get("expires_at") is not None:
        try:
            expires_at = _UTC_DATETIME.validate_python(content["expires_at"])
        except ValidationError as exc:
            return Refusal.of(R.INVALID_FIELD, f"expires_at: {exc.errors()[0]['msg']}", stage,
                              field="expires_at", value=content["expires_at"])
        if now >= expires_at:
            return Refusal.of(
                R.APPROVAL_EXPIRED, f"the approval expired at {expires_at.isoformat()}, "
                f"{now - expires_at} before it was checked", stage, key_id=entry.key_id,
                approved_by=approved_by, expires_at=expires_at.isoformat(),
                checked_at=now.isoformat())
    return Verified(entry.key_id, entry.algorithm, approved_by, expires_at, content, message)


def _mismatch(content: dict[str, Any], entry: KeyEntry, message: bytes,
              stage: Stage) -> Refusal:
    return Refusal.of(
        R.BAD_SIGNATURE,
        f"the signature does not match the approval's content for key {entry.key_id!r}: a "
        "signed field was changed after signing, or it was signed over another form than "
        "RFC 8785 of the approval without `signature`", stage, key_id=entry.key_id,
        algorithm=entry.algorithm, approved_by=content.get("approved_by"),
        canonical_sha256=hashlib.sha256(message).hexdigest())


def _not_canonical(exc: CanonicalError, stage: Stage, key_id: str | None = None) -> Refusal:
    return Refusal.of(
        R.BAD_SIGNATURE, f"the approval has no single canonical form, so no signature can "
        f"cover it: {exc}", stage, key_id=key_id)
