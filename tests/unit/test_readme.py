"""The README tells the truth about settings and commands."""

from __future__ import annotations

from jax_exec.readme import README, render


def test_readme_risk_table_is_generated_from_the_settings() -> None:
    text = README.read_text()
    assert text == render(text), "README risk table drifted: run `python -m jax_exec.readme`"


def test_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text
