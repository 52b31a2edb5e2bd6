"""faust's per-app directory goes to the temp directory, not the worker's working directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from agents.app import faust_datadir


def test_the_default_is_under_the_temp_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_DATADIR", raising=False)
    path = Path(faust_datadir().format(conf=type("Conf", (), {"name": "jax-x"})))
    assert path.is_absolute()
    assert path.parent == Path(tempfile.gettempdir()) / f"jax-faust-{os.getuid()}"
    assert path.parent.is_dir()  # faust creates only the last level
    assert path.name == "jax-x-data"


def test_faust_own_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATADIR", "/srv/faust/{conf.name}")
    assert faust_datadir() == "/srv/faust/{conf.name}"
