"""VENUE=sim: the simulator inside the worker process (no socket), over its SQLite state, with
its own price clock. Settings are the simulator's own (SIM_*, JAX_HOME)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from brokers.port import OrderService
from brokers.registry import VenuePlugin
from brokers.sim.runner import SimulatorSettings, build_exchange
from brokers.sim.service import SimOrderService

log = logging.getLogger(__name__)


class InProcessSimulator(SimOrderService):
    """SimOrderService that also moves the prices every SIM_TICK_SECONDS while connected."""

    def __init__(self, settings: SimulatorSettings) -> None:
        super().__init__(build_exchange(settings), settings.account)
        self.tick_seconds = settings.tick_seconds
        self._clock: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await super().connect()
        if self.tick_seconds > 0 and self._clock is None:
            self._clock = asyncio.ensure_future(self._ticker())

    async def close(self) -> None:
        await super().close()
        clock, self._clock = self._clock, None
        if clock is not None:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock

    async def _ticker(self) -> None:
        """One price step every tick, on a fixed schedule (no drift from work done)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.tick_seconds
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += self.tick_seconds
            try:
                self.exchange.advance()
            except Exception:  # one failed step must not stop the clock
                log.exception("sim: price step failed")


def build(settings: SimulatorSettings, timeout: float) -> OrderService:
    del timeout  # nothing leaves the process
    return InProcessSimulator(settings)


def describe(settings: SimulatorSettings) -> str:
    return f"in-process simulator (account {settings.account}, state {settings.state_path})"


PLUGIN = VenuePlugin(
    name="sim",
    settings=SimulatorSettings,
    build=build,
    describe=describe,
)
