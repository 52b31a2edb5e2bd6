"""Keep the README risk-settings table generated (`python -m jax_exec.readme`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from agents.decisions.config import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- risk-settings:start[^>]*-->\n)(.*?)(<!-- risk-settings:end -->)", re.S)


def risk_table() -> str:
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {f'`{default}`' if default else '(unset)'} | {text} |"
             for name, default, text in settings_table()]
    return "\n".join(rows) + "\n"


def render(readme: str) -> str:
    if not BLOCK.search(readme):
        raise ValueError("README has no risk-settings block")
    return BLOCK.sub(lambda m: m.group(1) + risk_table() + m.group(3), readme)


def main() -> int:
    README.write_text(render(README.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
