"""SQLite persistence for the simulator, so a restart keeps accounts, orders, fills and prices.

Each exchange operation is saved in one transaction before it returns, so whatever a client
was told survives a killed process. WAL with synchronous=NORMAL: durable across process
crashes (only a power cut can lose the last commits), and cheap enough to write every step.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    account_id TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (account_id, client_order_id)
);
CREATE TABLE IF NOT EXISTS fills (
    execution_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quotes (
    symbol TEXT PRIMARY KEY,
    price TEXT NOT NULL,
    volume TEXT NOT NULL,
    held INTEGER NOT NULL
);
"""


@dataclass(slots=True)
class QuoteRow:
    symbol: str
    price: str
    volume: str
    held: bool


@dataclass(slots=True)
class StoreBatch:
    """Everything one operation changed, as JSON text the exchange already serialised."""

    meta: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)
    orders: list[tuple[str, str, int, str]] = field(default_factory=list)
    fills: list[tuple[str, str, int, str]] = field(default_factory=list)
    quotes: list[QuoteRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.meta or self.accounts or self.orders or self.fills or self.quotes)


@dataclass(slots=True)
class StoredState:
    meta: dict[str, str]
    accounts: list[str]
    orders: list[str]
    fills: list[str]
    quotes: list[QuoteRow]

    @property
    def empty(self) -> bool:
        return not self.accounts


class SimStore:
    """One SQLite file; thread-safe because front doors may call from their own threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def load(self) -> StoredState:
        """Everything saved, orders and fills in the order they happened."""
        with self._lock:
            db = self._db
            return StoredState(
                meta=dict(db.execute("SELECT key, value FROM meta").fetchall()),
                accounts=[r[0] for r in db.execute("SELECT data FROM accounts")],
                orders=[r[0] for r in db.execute("SELECT data FROM orders ORDER BY seq")],
                fills=[r[0] for r in db.execute("SELECT data FROM fills ORDER BY seq")],
                quotes=[
                    QuoteRow(s, p, v, bool(h))
                    for s, p, v, h in db.execute("SELECT symbol, price, volume, held FROM quotes")
                ],
            )

    def save(self, batch: StoreBatch) -> None:
        """Write one operation's changes atomically."""
        if not batch:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._write(db, batch)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def _write(db: sqlite3.Connection, batch: StoreBatch) -> None:
        db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", batch.meta.items())
        db.executemany(
            "INSERT OR REPLACE INTO accounts (account_id, data) VALUES (?, ?)",
            batch.accounts.items(),
        )
        db.executemany(
            "INSERT OR REPLACE INTO orders (account_id, client_order_id, seq, data) "
            "VALUES (?, ?, ?, ?)",
            batch.orders,
        )
        db.executemany(
            "INSERT OR REPLACE INTO fills (execution_id, account_id, seq, data) "
            "VALUES (?, ?, ?, ?)",
            batch.fills,
        )
        db.executemany(
            "INSERT OR REPLACE INTO quotes (symbol, price, volume, held) VALUES (?, ?, ?, ?)",
            [(q.symbol, q.price, q.volume, int(q.held)) for q in batch.quotes],
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
