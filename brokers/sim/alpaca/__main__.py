"""`python -m brokers.sim.alpaca`: the simulator with its Alpaca door on SIM_PORT (instead of
the TWS API) and its admin API on SIM_ADMIN_PORT, until SIGINT/SIGTERM. Settings as for
`jax-exec sim` (SIM_*, JAX_HOME); log in with the door's paper key (see `describe`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from brokers.sim.runner import Simulator, SimulatorSettings

from .server import start_alpaca_door


async def _run() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with Simulator(SimulatorSettings(), door=start_alpaca_door,
                         door_name="Alpaca API") as sim:  # fmt: skip
        for line in sim.describe():
            print(f"simulator   {line}", flush=True)
        door = sim.door
        print(f"alpaca      {door.describe()}", flush=True)
        print("ready", flush=True)
        await stop.wait()


def main() -> int:
    asyncio.run(_run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
