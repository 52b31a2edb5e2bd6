"""The GIL switch interval a worker process sets (jax_exec.runner.switch_interval)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.app import STAGES
from jax_exec import runner
from jax_exec.settings import Settings
from store.writer import WRITER_SWITCH_SECONDS


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("GIL_SWITCH_SECONDS", raising=False)
    return Settings(jax_home=tmp_path)


@pytest.fixture
def python_interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


def test_the_audit_stage_alone_gets_the_writers_interval(settings: Settings) -> None:
    assert WRITER_SWITCH_SECONDS < 0.005  # shorter than Python's own
    assert runner.switch_interval(settings, ["audit"]) == WRITER_SWITCH_SECONDS
    assert runner.switch_interval(settings, iter(["audit", "audit"])) == WRITER_SWITCH_SECONDS


@pytest.mark.parametrize("stages", [
    list(STAGES),
    ["sizing", "submission", "reconciliation"],
    ["validation"],
    ["audit", "validation"],  # a stage on the approval path keeps Python's interval
])
def test_a_process_with_a_trading_stage_keeps_pythons(settings: Settings,
                                                       stages: list[str]) -> None:
    assert runner.switch_interval(settings, stages) is None


def test_gil_switch_seconds_overrides_either_way(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIL_SWITCH_SECONDS", "0.005")
    configured = Settings(jax_home=tmp_path)
    assert runner.switch_interval(configured, ["audit"]) == 0.005
    assert runner.switch_interval(configured, list(STAGES)) == 0.005
    for bad in ("0", "-1", "1"):
        monkeypatch.setenv("GIL_SWITCH_SECONDS", bad)
        with pytest.raises(ValidationError, match="gil_switch_seconds"):
            Settings(jax_home=tmp_path)


class _Built(Exception):
    """Stops run_worker right after it set the interval (before anything is built)."""


def test_run_worker_sets_it_before_building(settings: Settings, python_interval: float,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def stop() -> None:
        raise _Built

    monkeypatch.setattr(runner, "load_risk", stop)
    sys.setswitchinterval(0.005)
    with pytest.raises(_Built):
        runner.run_worker(settings, iter(["audit"]), hard_stop=runner.HardStop())
    assert sys.getswitchinterval() == pytest.approx(WRITER_SWITCH_SECONDS)
    sys.setswitchinterval(0.005)
    with pytest.raises(_Built):
        runner.run_worker(settings, ["sizing", "submission"], hard_stop=runner.HardStop())
    assert sys.getswitchinterval() == pytest.approx(0.005)
