"""Errors the store raises, so callers can tell a retryable outage from a bug."""

from __future__ import annotations

from schemas.errors import JaxError


class StoreError(JaxError):
    """Root of every ClickHouse-layer error."""

    code = "store_error"


class StoreConfigError(StoreError):
    """The DSN or settings cannot work (bad scheme, relative chdb path, path locked)."""

    code = "store_config"


class StoreUnavailableError(StoreError):
    """ClickHouse could not be reached or timed out: retry later."""

    code = "store_unavailable"
    transient = True


class StoreQueryError(StoreError):
    """ClickHouse refused a statement: a bug or a schema mismatch, retrying will not help."""

    code = "store_query"


class MigrationError(StoreError):
    """A migration file could not be applied."""

    code = "store_migration"


class FlushError(StoreUnavailableError):
    """Some batches could not be stored; `stored` holds the offsets that were, safe to commit."""

    code = "store_flush"

    def __init__(self, message: str, stored: dict[tuple[str, int], int]) -> None:
        super().__init__(message)
        self.stored = stored
