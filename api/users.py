"""API users: a name, a role and a bearer token stored only as its SHA-256 under JAX_HOME.

File JAX_HOME/api/users.json (mode 0600): {"version": 1, "users": [{"name", "role",
"token_sha256", "created_at", "revoked"}]}. A token is 256 random bits, so an unsalted
SHA-256 is enough to make the file useless to a reader; comparison is constant-time.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from schemas.errors import JaxError

USERS_FILE = "users.json"
TOKEN_PREFIX = "jxa_"  # noqa: S105 - a prefix that makes tokens greppable
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class UserError(JaxError):
    """A user cannot be added, found or revoked; the message says why."""

    code = "users"


class Role(StrEnum):
    VIEWER = "viewer"  # reads everything
    APPROVER = "approver"  # + approve / reject / execute (signs with the user's key)
    ADMIN = "admin"  # + the kill switch

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.APPROVER: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created_at: str
    revoked: bool = False


def users_path(jax_home: Path) -> Path:
    return jax_home / "api" / USERS_FILE


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """The users file; read on every authentication (a revoke takes effect at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[float, list[dict[str, Any]]] | None = None

    @classmethod
    def under(cls, jax_home: Path) -> UserStore:
        return cls(users_path(jax_home))

    def _read(self) -> list[dict[str, Any]]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return []
        if self._cache is not None and self._cache[0] == mtime:
            return self._cache[1]
        try:
            doc = json.loads(self.path.read_text())
            users = list(doc["users"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"users file {self.path} is not readable: {exc}") from exc
        self._cache = (mtime, users)
        return users

    def _write(self, users: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps({"version": 1, "users": users}, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)
        self._cache = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def add(self, name: str, role: Role) -> str:
        """A new user; returns the token (shown once, never stored)."""
        if not _NAME.match(name):
            raise UserError(f"{name!r} cannot name a user: letters, digits and . _ @ - "
                            "(at most 128)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._locked():
            users = self._read()
            if any(u["name"] == name and not u.get("revoked") for u in users):
                raise UserError(f"user {name!r} exists; revoke it first to issue a new token")
            users = [*users, {"name": name, "role": role.value, "token_sha256": token_hash(token),
                              "created_at": datetime.now(UTC).isoformat(), "revoked": False}]
            self._write(users)
        return token

    def revoke(self, name: str) -> int:
        """Revoke every token of `name`; how many were active."""
        with self._locked():
            users = self._read()
            active = [u for u in users if u["name"] == name and not u.get("revoked")]
            if not active:
                raise UserError(f"no active user {name!r}")
            for user in active:
                user["revoked"] = True
                user["revoked_at"] = datetime.now(UTC).isoformat()
            self._write(users)
        return len(active)

    def list(self) -> list[User]:
        return [User(u["name"], Role(u["role"]), u["created_at"], bool(u.get("revoked")))
                for u in self._read()]

    def authenticate(self, token: str) -> User | None:
        """The active user holding this token, or None."""
        digest = token_hash(token)
        found = None
        for u in self._read():
            if hmac.compare_digest(u["token_sha256"], digest) and not u.get("revoked"):
                found = User(u["name"], Role(u["role"]), u["created_at"])
        return found
