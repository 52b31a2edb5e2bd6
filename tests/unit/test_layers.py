"""The folder rule (STYLE.md, "a file's folder tells what it may import"): the contract and the
venue adapters depend on nothing above them. Checked on the source, without importing it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# folder -> top-level packages of this project it must never import
FORBIDDEN = {
    "schemas": {"agents", "brokers", "store", "api", "jax_exec", "bench"},
    "brokers": {"agents", "store", "api", "jax_exec", "bench"},
    "store": {"agents", "brokers", "api", "jax_exec", "bench"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folder_imports_nothing_above_it(folder: str) -> None:
    offences = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN[folder]
        if bad:
            offences.append(f"{path.relative_to(ROOT)}: {', '.join(sorted(bad))}")
    assert not offences, "\n".join(offences)
