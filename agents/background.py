"""A long-lived background task of a stage (notifications, the live feed, the Slack poster,
the rollout reader): started once, restarted after a failure with a growing delay, stopped by
cancelling it. A failure (Kafka away) is logged and retried; it never reaches the worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger(__name__)

DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0)


async def cancel_and_wait(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel the tasks and wait until each has ended (whatever it raised)."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    await asyncio.gather(*live, return_exceptions=True)


class Restarting:
    """Runs `body` until stopped; after its n-th failure waits delays[n] (the last one
    repeats once the list is used up) and runs it again."""

    def __init__(self, name: str, body: Callable[[], Awaitable[None]],
                 delays: Sequence[float] = DELAYS) -> None:
        self.name = name
        self.body = body
        self.delays = tuple(delays) or (1.0,)
        self.failures = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self.task)
        self.task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self.delays[min(self.failures, len(self.delays) - 1)]
                self.failures += 1
                log.warning("%s: %r; restarting in %gs", self.name, exc, delay)
                await asyncio.sleep(delay)
