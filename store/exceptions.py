"""Errors the store raises, so callers can tell a retryable outage from a bug from bad data.

Three kinds of insert failure, three different answers:

- transient (`StoreUnavailableError`, `StoreBusyError`): the server is down, slow or
  overloaded; retry the same batch with the same dedup token, holding Kafka offsets.
- row-dependent data (`StoreDataError`): these values can never be stored with this schema
  (a decimal overflow in a view, an unparsable value, a client-side encoding failure);
  retrying the batch fails forever, so the writer isolates the rows instead.
- statement-level (`StoreQueryError`, `StoreConfigError`): a missing table, a syntax error,
  no privilege; every row fails alike, so nothing is skipped and the sink stalls, loudly,
  until an operator fixes the schema or configuration.
"""

from __future__ import annotations

from schemas.errors import JaxError


class StoreError(JaxError):
    """Root of every ClickHouse-layer error; `clickhouse_code` is the server's code if known."""

    code = "store_error"

    def __init__(
        self,
        message: str,
        *,
        clickhouse_code: int | None = None,
        clickhouse_name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.clickhouse_code = clickhouse_code
        self.clickhouse_name = clickhouse_name


class StoreConfigError(StoreError):
    """The DSN or settings cannot work (bad scheme, relative chdb path, path locked)."""

    code = "store_config"


class StoreUnavailableError(StoreError):
    """ClickHouse could not be reached, dropped the connection or timed out: retry later."""

    code = "store_unavailable"
    transient = True


class StoreBusyError(StoreUnavailableError):
    """ClickHouse answered but is overloaded (too many parts, memory, query slots): retry later."""

    code = "store_busy"


class StoreQueryError(StoreError):
    """ClickHouse refused a statement: a bug or a schema mismatch, retrying will not help."""

    code = "store_query"


class StoreDataError(StoreQueryError):
    """Some rows of an insert can never be stored as they are; the rest of the batch can."""

    code = "store_data"


class MigrationError(StoreError):
    """A migration file could not be applied."""

    code = "store_migration"


class FlushError(StoreUnavailableError):
    """Some batches could not be stored; `stored` holds the offsets that were, safe to commit."""

    code = "store_flush"

    def __init__(self, message: str, stored: dict[tuple[str, int], int]) -> None:
        super().__init__(message)
        self.stored = stored
