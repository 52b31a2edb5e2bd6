"""Bounded polling for asynchronous outcomes: tests wait for a condition, never a fixed sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def until(check: Callable[[], Any], seconds: float = 5.0, interval: float = 0.01) -> Any:
    """Poll until check() is truthy; fail once `seconds` have passed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not (result := check()):
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(interval)
    return result
