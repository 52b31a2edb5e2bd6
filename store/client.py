"""One DSN, one ClickHouse: embedded chdb or a server, behind the same async wrapper."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import accumulate
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlparse

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DataError, OperationalError

from store.exceptions import (
    StoreBusyError,
    StoreConfigError,
    StoreDataError,
    StoreError,
    StoreQueryError,
    StoreUnavailableError,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

# Arrow's buffers from the C library's allocator, not mimalloc (pyarrow's default): the writer
# makes and drops a table of about 60 MB per 100,000 events, and mimalloc gave that memory
# back to the system and faulted it in again each time (twice the system CPU; 75,000 against
# 87,000 events/s ingested, alternating runs). ARROW_DEFAULT_MEMORY_POOL still decides.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    pa.set_memory_pool(pa.system_memory_pool())

DEFAULT_DATABASE = "jax"
# parallel_view_processing: the materialized views of one insert run on several threads.
# optimize_on_insert = 0: a part is written as its block came, not first collapsed the way a
# merge of its table's engine would (Replacing, Aggregating, Summing). Every reader already
# collapses (FINAL, or the aggregate functions over the parts), because rows of one key also
# come in different inserts. The collapse cost the engine 0.85 us of CPU per events row with
# its views (8.13 against 7.28, 100,000-row inserts, four runs each).
INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "insert_deduplicate": 1,
    "parallel_view_processing": 1,
    "optimize_on_insert": 0,
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)")
# ClickHouse error codes (names as in system.errors), by what the writer should do about them.
# Try again later: the network, timeouts, an unknown insert outcome (retry with the same token).
UNAVAILABLE_CODES = frozenset({95, 96, 159, 209, 210, 319, 425, 999, 1000, 1019, 1020})
# Try again later: the server is overloaded (parts, memory, query slots, read-only for now).
BUSY_CODES = frozenset({160, 164, 173, 202, 203, 241, 242, 252, 364, 745, 777, 778})
TRANSIENT_CODES = UNAVAILABLE_CODES | BUSY_CODES
# Never, for these values: parse, conversion, overflow, out-of-range and throwIf failures that
# a row's content causes (in the insert or in a materialized view it feeds). Provoked on chdb
# 26.9: toDecimal32('1e30', 2) -> 69, toDecimal64(1e30, 6) and Decimal math -> 407,
# toDecimal64('abc', 6) and toUInt8('x') -> 6, parseDateTime64BestEffort('x') -> 41,
# toUUID('x') -> 376, throwIf -> 395, intDiv(1, 0) -> 153, toFixedString -> 131,
# accurateCast(300, 'UInt8') -> 70, an unknown enum element -> 691.
_CANNOT_PARSE = (6, 25, 26, 27, 38, 41, 72, 376, 441, 467, 632, 675, 676)
_OUT_OF_RANGE = (69, 70, 131, 321, 407)  # out of bounds, cannot convert, too long, overflow
_BAD_VALUE = (117, 153, 190, 349, 395, 691)  # incorrect, x/0, NULL, throwIf, unknown enum
DATA_CODES = frozenset((*_CANNOT_PARSE, *_OUT_OF_RANGE, *_BAD_VALUE))
# Code 252 is also "Too many partitions for single INSERT block": a smaller batch fits.
_TOO_MANY_PARTITIONS = "too many partitions for single insert block"
# Tables whose rows the client sends as one Arrow table, built column by column in C++
# (clickhouse-connect's Native encoder costs microseconds per value in Python). Column name ->
# Arrow type; a UUID column is a string (ClickHouse parses it), a DateTime64(3) column is
# TIMESTAMP_MS (truncated as the Native encoder truncates). Registered by the table's writer.
ARROW_TYPES: dict[str, dict[str, Any]] = {}
TIMESTAMP_MS = pa.timestamp("ms", tz="UTC")
_BINARY = pa.binary()
_TIMESTAMP_US = pa.timestamp("us", tz="UTC")


def arrow_table(
    rows: Sequence[Sequence[Any]], column_names: Sequence[str], types: dict[str, Any]
) -> pa.Table:
    """Rows as an Arrow table of the given column types; raises on a value it cannot hold.
    Rows may be longer than column_names: their first len(column_names) values are taken."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in column_names]
    arrays: list[pa.Array] = []
    for name, values in zip(column_names, columns, strict=False):
        arrays.append(_arrow_column(values, types[name], columns, arrays))
    return pa.Table.from_arrays(arrays, names=list(column_names))


def _arrow_column(
    values: tuple[Any, ...], kind: Any, columns: Sequence[Sequence[Any]], made: list[pa.Array]
) -> pa.Array:
    """One column as Arrow. A text or time column of one value throughout (a batch's topic,
    the time it was taken in), or equal to the nearest column before it of its type (a
    producer's recorded_at is often its occurred_at), is converted once, not value by value
    (a Python datetime costs about 0.25 us): equal strings, and equal datetimes (the same
    instant), make equal Arrow values. Not numbers: 0.0 == -0.0, and True == 1. `made` are
    the arrays of the first columns, in order."""
    if not (pa.types.is_timestamp(kind) or pa.types.is_string(kind)):
        return _convert(values, kind)
    first = values[0] if values else None
    if first is not None and values[-1] == first and values.count(first) == len(values):
        return pa.repeat(_convert((first,), kind)[0], len(values))
    for index in range(len(made) - 1, -1, -1):
        if made[index].type == kind:
            return made[index] if columns[index] == values else _convert(values, kind)
    return _convert(values, kind)


def _convert(values: Sequence[Any], kind: Any) -> pa.Array:
    if kind == TIMESTAMP_MS:
        return pa.array(values, _TIMESTAMP_US).cast(TIMESTAMP_MS, safe=False)
    if kind == _BINARY:
        joined = _joined_binary(values)
        if joined is not None:
            return joined
    return pa.array(values, kind)


def _joined_binary(values: Sequence[Any]) -> pa.Array | None:
    """Bytes values as one binary array from their concatenation and its offsets: two C loops
    (an events payload column: 0.3 against 0.7 us a value, as pa.array copies each value
    into a buffer it grows as it goes). None when a value is not bytes (None, a str) or the
    values pass binary's 2 GiB of offsets: pa.array decides those."""
    offsets = array("i", [0])  # binary's offsets: int32
    if offsets.itemsize != 4 or not all(type(v) is bytes for v in values):
        return None
    try:
        offsets.extend(accumulate(map(len, values)))
    except OverflowError:
        return None
    return pa.Array.from_buffers(
        _BINARY, len(values), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(values))]
    )


ENCODE_ERRORS = (ValueError, TypeError, OverflowError, struct.error, pa.ArrowException)


def parse_dsn(dsn: str) -> tuple[str, str | None]:
    """Split a DSN into (kind, location); kind is 'chdb-path', 'chdb-memory' or 'http'."""
    parsed = urlparse(dsn)
    if parsed.scheme == "chdb":
        if parsed.netloc in ("memory", ":memory:"):
            return "chdb-memory", None
        if parsed.netloc or not parsed.path.startswith("/"):
            raise StoreConfigError(
                f"chdb DSN must be chdb:///absolute/path or chdb://memory: {dsn!r}"
            )
        return "chdb-path", parsed.path
    if parsed.scheme in ("http", "https", "clickhouse", "clickhousedb"):
        if not parsed.hostname:
            raise StoreConfigError(f"ClickHouse DSN has no host: {dsn!r}")
        return "http", parsed.path.strip("/") or None
    raise StoreConfigError(f"unsupported ClickHouse DSN scheme {parsed.scheme!r} in {dsn!r}")


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of a driver exception (HTTP header or chdb message)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def error_kind(exc: BaseException) -> type[StoreError]:
    """Which store error a driver exception is: what the caller can do about it."""
    if "Cannot lock file" in str(exc) or "already initialized with path" in str(exc):
        return StoreConfigError
    code = error_code(exc)
    if code in DATA_CODES or (code == 252 and _TOO_MANY_PARTITIONS in str(exc).lower()):
        return StoreDataError
    if code in BUSY_CODES:
        return StoreBusyError
    if code in UNAVAILABLE_CODES:
        return StoreUnavailableError
    if isinstance(exc, DataError):  # the client could not encode a value for its column
        return StoreDataError
    if code is None and isinstance(exc, OperationalError | OSError):  # OSError: refused, reset
        return StoreUnavailableError
    return StoreQueryError


def translate(exc: BaseException, what: str) -> StoreError:
    """Map a driver exception to the store's errors: transient, bad data, or a bug."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
    kind = error_kind(exc)
    code, name = error_code(exc), getattr(exc, "name", None)
    name = name if isinstance(name, str) else None
    if kind is StoreConfigError:
        text = (
            f"chdb path is owned by another process or engine ({text}); "
            "in embedded mode exactly one process may open it"
        )
    elif kind is StoreDataError:
        text = f"ClickHouse cannot store this data ({what}): {text}"
    elif kind is StoreQueryError:
        text = f"ClickHouse error during {what}: {text}"
    elif kind is StoreBusyError:
        text = f"ClickHouse overloaded during {what}: {text}"
    else:
        text = f"ClickHouse unavailable during {what}: {text}"
    return kind(text, clickhouse_code=code, clickhouse_name=name)


def open_client(dsn: str, database: str | None = None) -> tuple[Client, str]:
    """Open a sync client for the DSN, create the database, and make it the default."""
    kind, location = parse_dsn(dsn)
    db = database or (location if kind == "http" else None) or DEFAULT_DATABASE
    if not _IDENT.match(db):
        raise StoreConfigError(f"database name must be an identifier: {db!r}")
    if kind == "chdb-path" and location:
        Path(location).mkdir(parents=True, exist_ok=True)
    try:
        if kind == "http":
            client = clickhouse_connect.get_client(dsn=dsn, database="default", tz_mode="aware")
        else:
            client = clickhouse_connect.get_client(dsn=dsn, tz_mode="aware")
        client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        client.database = db
    except ClickHouseError as exc:
        raise translate(exc, f"connect to {dsn}") from exc
    return client, db


@contextmanager
def _insert_errors(table: str) -> Iterator[None]:
    """An insert's errors as StoreErrors: the engine's by code, the client's encoding (a lone
    surrogate in a string, an int out of range) as data errors."""
    try:
        yield
    except ClickHouseError as exc:
        raise translate(exc, f"insert into {table}") from exc
    except ENCODE_ERRORS as exc:
        raise StoreDataError(
            f"ClickHouse client cannot encode a row for {table}: {type(exc).__name__}: {exc}"
        ) from exc


_PYTHON_OBJECT_NOT_FOUND = 801  # chdb: Python() found no object of that name


def _insert_in_place(client: Client, table: str, data: pa.Table, settings: dict[str, Any]) -> int:
    """INSERT ... SELECT FROM Python(): chdb's Python() table function reads the Arrow table
    where it lies, found by its name in the calling frames (this one). clickhouse-connect's
    chdb insert writes the table as an Arrow file to disk and has the engine read it back
    (FROM INFILE): 0.8 us more per events row, on the writer's critical path.
    One block per insert (max_block_size), as an Arrow insert makes: a retried insert is the
    same block under the same token, so it is deduplicated."""
    jax_insert_rows = data  # noqa: F841 - read by name by Python() below
    names = list(data.column_names)
    if not all(_IDENT.match(n) for n in [table, *names]):
        raise StoreError(f"not an identifier in an insert into {table!r}: {names}")
    cols = ", ".join(names)
    options = {**settings, "max_block_size": max(data.num_rows, 65536)}
    clause = ", ".join(f"{k} = {_literal(v)}" for k, v in options.items())
    client.command(
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM Python(jax_insert_rows) "  # noqa: S608
        f"SETTINGS {clause}"
    )
    return int(data.num_rows)


def _literal(value: Any) -> str:
    """A setting's value as SQL: a number as it is, anything else a quoted string."""
    if isinstance(value, bool | int):
        return str(int(value))
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _insert_settings(dedup_token: str | None) -> dict[str, Any]:
    settings = dict(INSERT_SETTINGS)
    if dedup_token:
        settings["insert_deduplication_token"] = dedup_token
    return settings


class ClickHouse:
    """Async facade over one sync client, serialised on a dedicated thread (chdb is sync)."""

    def __init__(self, dsn: str, database: str | None = None) -> None:
        self.dsn = dsn
        self.kind, _ = parse_dsn(dsn)
        self._database = database
        self._client: Client | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._in_place = True  # chdb inserts read Arrow in place (_insert_in_place)

    @property
    def database(self) -> str:
        """The database every unqualified table name resolves to."""
        if self._client is None:
            raise StoreError("ClickHouse is not open; call await open() first")
        return str(self._client.database)

    @property
    def embedded(self) -> bool:
        """True for chdb, where one process owns the data."""
        return self.kind != "http"

    async def open(self) -> ClickHouse:
        """Connect (on the dedicated thread) if not yet connected."""
        if self._client is None:
            self._client, _ = await self._run(open_client, self.dsn, self._database)
        return self

    async def close(self) -> None:
        """Close the client and stop the thread, releasing a chdb path for reuse."""
        if self._client is not None:
            client, self._client = self._client, None
            await self._run(client.close)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> ClickHouse:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _require(self) -> Client:
        if self._client is None:
            raise StoreError("ClickHouse is not open; call await open() first")
        return self._client

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run DDL or a statement without a result set."""
        client = self._require()
        try:
            return await self._run(client.command, sql, parameters=parameters)
        except ClickHouseError as exc:
            raise translate(exc, "command") from exc

    async def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Run a parameterised SELECT and return rows as dicts, timestamps tz-aware UTC."""
        client = self._require()

        def run() -> list[dict[str, Any]]:
            result = client.query(sql, parameters=parameters, settings=settings)
            return list(result.named_results())

        try:
            return await self._run(run)
        except ClickHouseError as exc:
            raise translate(exc, "query") from exc

    async def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        dedup_token: str | None = None,
    ) -> int:
        """Insert rows synchronously (async_insert=0); a dedup token makes a retry a no-op."""
        client = self._require()
        settings = _insert_settings(dedup_token)
        types = ARROW_TYPES.get(table)
        with _insert_errors(table):
            if types is not None and set(column_names) <= types.keys():
                data = arrow_table(rows, column_names, types)
                return await self._run(self._insert_table, client, table, data, settings)
            summary = await self._run(
                client.insert, table, rows, column_names=list(column_names), settings=settings
            )
        return int(getattr(summary, "written_rows", len(rows)) or 0)

    async def insert_arrow(self, table: str, data: pa.Table, dedup_token: str | None = None) -> int:
        """Insert an Arrow table already built (its columns named as the table's), as insert()."""
        client = self._require()
        with _insert_errors(table):
            return await self._run(
                self._insert_table, client, table, data, _insert_settings(dedup_token)
            )

    def _insert_table(
        self, client: Client, table: str, data: pa.Table, settings: dict[str, Any]
    ) -> int:
        """On the client's thread: chdb reads the table in place, a server gets it as Arrow."""
        if self.embedded and self._in_place:
            try:
                return _insert_in_place(client, table, data, settings)
            except ClickHouseError as exc:
                if error_code(exc) != _PYTHON_OBJECT_NOT_FOUND:
                    raise
                # an engine whose Python() cannot find the table: the Arrow file, from now on
                log.warning("chdb cannot read Arrow in place (%s); inserting through a file", exc)
                self._in_place = False
        summary = client.insert_arrow(table, data, settings=settings)
        return int(getattr(summary, "written_rows", data.num_rows) or 0)
