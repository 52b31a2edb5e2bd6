"""The ClickHouse layer: audit log, trade history and SQL analytics (chdb or a server)."""

from store.client import ClickHouse
from store.exceptions import (
    FlushError,
    MigrationError,
    StoreBusyError,
    StoreConfigError,
    StoreDataError,
    StoreError,
    StoreQueryError,
    StoreUnavailableError,
)
from store.migrate import migrate
from store.queries import Queries
from store.writer import AuditWriter, EventRecord

__all__ = [
    "AuditWriter",
    "ClickHouse",
    "EventRecord",
    "FlushError",
    "MigrationError",
    "Queries",
    "StoreBusyError",
    "StoreConfigError",
    "StoreDataError",
    "StoreError",
    "StoreQueryError",
    "StoreUnavailableError",
    "migrate",
]
