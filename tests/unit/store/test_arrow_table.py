"""arrow_table converts a column of one value, or one equal to an earlier column of its type,
once: the table is the one a value-by-value conversion makes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from store.client import TIMESTAMP_MS, arrow_table

ROOT = Path(__file__).resolve().parents[3]

US = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 3, 2, 14, 30, 0, 123456, tzinfo=UTC)
PLUS2 = T0.astimezone(timezone(timedelta(hours=2)))  # the same instant
TYPES: dict[str, Any] = {
    "topic": pa.string(),
    "occurred": US,
    "recorded": US,
    "taken": US,
    "kafka": TIMESTAMP_MS,
    "ratio": pa.float64(),
    "sign": pa.float64(),
    "note": pa.string(),
}
NAMES = list(TYPES)


def _reference(rows: list[list[Any]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    arrays = [
        pa.array(v, US).cast(TIMESTAMP_MS, safe=False) if TYPES[n] == TIMESTAMP_MS
        else pa.array(v, TYPES[n])
        for n, v in zip(NAMES, columns, strict=True)
    ]
    return pa.Table.from_arrays(arrays, names=NAMES)


CASES = {
    "constant and equal columns": [
        ["fills", T0, T0, T0, T0, 0.0, 0.0, None],
        ["fills", T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), T0, T0, 1.0, -0.0, "x"],
    ],
    "equal instants in another zone": [
        ["a", T0, PLUS2, PLUS2, PLUS2, 0.0, -0.0, "a"],
        ["b", PLUS2, T0, T0, None, 0.0, 0.0, "a"],
    ],
    "one row": [["a", T0, T0, T0, T0, 1.5, 1.5, "a"]],
    "all missing": [["a", T0, T0, T0, None, 0.0, 0.0, None]] * 3,
    "differs at the end only": [["a", T0, T0, T0, T0, 0.0, 0.0, "a"]] * 3
    + [["b", T0, T0 + timedelta(microseconds=1), T0, T0, 0.0, 0.0, "b"]],
}


@pytest.mark.parametrize("rows", list(CASES.values()), ids=list(CASES))
def test_the_table_is_the_value_by_value_conversion(rows: list[list[Any]]) -> None:
    table = arrow_table(rows, NAMES, TYPES)
    expected = _reference(rows)
    assert table.schema == expected.schema
    assert table.equals(expected)
    # -0.0 == 0.0 in Python: a number column is never taken for another
    assert [str(v) for v in table.column("sign").to_pylist()] == [str(r[6]) for r in rows]


def test_a_value_that_does_not_fit_still_raises() -> None:
    with pytest.raises((TypeError, ValueError, pa.ArrowException)):
        arrow_table([["a", "not a time", T0, T0, T0, 0.0, 0.0, None]] * 2, NAMES, TYPES)


BINARY_CASES = {
    "payloads": [b'{"event_id":"a"}', b"", "é".encode(), b"\x00\xff" * 3000],
    "one empty": [b""],
    "none": [],
    "a missing value": [b"a", None, b"b"],  # pa.array's way
    "a text among bytes": [b"a", "b"],  # pa.array's way
}


@pytest.mark.parametrize("values", list(BINARY_CASES.values()), ids=list(BINARY_CASES))
def test_a_binary_column_is_the_value_by_value_conversion(values: list[Any]) -> None:
    """Bytes join into one buffer (a payload column); anything else as pa.array makes it."""
    types = {"payload": pa.binary()}
    table = arrow_table([[v] for v in values], ["payload"], types)
    expected = pa.table({"payload": pa.array(values, pa.binary())})
    table.validate(full=True)
    assert table.equals(expected)
    assert table.column("payload").to_pylist() == [
        v.encode() if isinstance(v, str) else v for v in values
    ]


@pytest.mark.parametrize(("env", "backend"), [(None, "system"), ("jemalloc", "jemalloc")])
def test_arrow_buffers_come_from_the_system_allocator_unless_configured(
    env: str | None, backend: str
) -> None:
    """store.client sets Arrow's default pool to the system allocator (mimalloc gave a
    writer's tables back to the system and faulted them in again, every flush), unless
    ARROW_DEFAULT_MEMORY_POOL says otherwise."""
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env is not None:
        environ["ARROW_DEFAULT_MEMORY_POOL"] = env
    code = "import store.client, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                         text=True, check=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == backend
