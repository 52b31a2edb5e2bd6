"""`jax-exec worker` with its embedded API and the page's live feed, for the browser tests.

Until jax_exec/runner.py attaches the live feed itself (api.live.attach_live in
_embedded_api), this wraps _embedded_api; once it does, attach_live is a no-op here."""

from __future__ import annotations

from typing import Any

import jax_exec.runner as runner
from api.live import attach_live

_original = runner._embedded_api


def _with_live(settings: Any, risk: Any, built: Any, lines: list[str]) -> Any:
    return attach_live(_original(settings, risk, built, lines), settings)


if __name__ == "__main__":
    runner._embedded_api = _with_live
    from jax_exec.cli import main

    main()
