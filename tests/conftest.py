"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.harness import SimulatorProcess, WorkerProcess


@pytest.fixture
def procs() -> Iterator[list[SimulatorProcess | WorkerProcess]]:
    """Processes a test starts (append them); stopped in reverse order afterwards, however
    the test ended."""
    started: list[SimulatorProcess | WorkerProcess] = []
    yield started
    for proc in reversed(started):
        proc.stop()
