"""Versioned SQL migrations, applied once each at start; safe to run again and again."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from store.client import ClickHouse
from store.exceptions import MigrationError, StoreError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SPLIT = re.compile(r";\s*(?:\n|$)")

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(6, 'UTC') DEFAULT now64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """Detects a migration edited after it was applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def statements(self) -> list[str]:
        """The file's statements; a ';' ends a statement only at the end of a line."""
        parts = (_strip_comments(p) for p in _SPLIT.split(self.sql))
        return [p for p in parts if p]


def _strip_comments(text: str) -> str:
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    return "\n".join(lines).strip()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read NNNN_name.sql files in version order (packaged ones by default)."""
    root = directory or Path(str(resources.files("store").joinpath("migrations")))
    found: list[Migration] = []
    for path in sorted(root.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {root}: {versions}")
    return found


async def applied_versions(ch: ClickHouse) -> dict[int, str]:
    """Version -> checksum of what this database already has."""
    await ch.command(SCHEMA_MIGRATIONS_DDL)
    rows = await ch.query(
        "SELECT version, any(checksum) AS checksum FROM schema_migrations GROUP BY version"
    )
    return {int(r["version"]): str(r["checksum"]) for r in rows}


async def _apply(ch: ClickHouse, migration: Migration) -> None:
    for statement in migration.statements:
        try:
            await ch.command(statement)
        except StoreError as exc:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}"
            ) from exc
    await ch.insert(
        "schema_migrations",
        [[migration.version, migration.name, migration.checksum]],
        ["version", "name", "checksum"],
        dedup_token=f"migration-{migration.version}-{migration.checksum}",
    )


async def migrate(ch: ClickHouse, directory: Path | None = None) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now."""
    done = await applied_versions(ch)
    applied: list[int] = []
    for migration in load_migrations(directory):
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                log.warning(
                    "migration %04d_%s changed after it was applied",
                    migration.version,
                    migration.name,
                )
            continue
        log.info("applying migration %04d_%s", migration.version, migration.name)
        await _apply(ch, migration)
        applied.append(migration.version)
    return applied
