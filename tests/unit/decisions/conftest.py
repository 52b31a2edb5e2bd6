"""Fixtures for the decision tests."""

from __future__ import annotations

import pytest

from agents.decisions.config import settings_table
from tests.unit.decisions.decisions_factory import Factory


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment; tests start from the documented defaults."""
    for name, _default, _description in settings_table():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def f() -> Factory:
    return Factory()
