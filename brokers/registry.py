"""The one map from `VENUE=<name>` to a venue package. Adding a venue is one line here plus
its own package (see brokers/_template/); nothing else in the project names a venue.

Each venue package has a `plugin.py` exposing `PLUGIN: VenuePlugin`:
- `settings()`  reads the venue's own frozen settings (its own env prefix, secrets SecretStr);
- `build(settings, timeout)` returns the OrderService (the adapter over the real client library);
- `describe(settings)` is the start-up banner line (where it connects, never a secret);
- `simulator_door` (optional) starts the simulator's front door that speaks this venue's
  protocol, for `make run` / `jax-exec run` without a real account: an async callable
  `(exchange, host, port) -> door` where door has `.port` and `async close()`, and
  `simulated(settings, host, port)` returns the settings pointed at that door;
- `session` (optional) `(settings, n) -> settings` for the n-th extra connection to the same
  account from another process (the API server, say): IB needs a distinct client id per
  connection (client id + n); None when connections need nothing distinct.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from brokers.port import OrderService

# name -> "module:attribute" (imported only when chosen, so a venue's client library is needed
# only by those who trade there)
VENUES: dict[str, str] = {
    "ib": "brokers.ib.plugin:PLUGIN",
    "alpaca": "brokers.alpaca.plugin:PLUGIN",
    "sim": "brokers.sim.plugin:PLUGIN",
    "oanda": "brokers.oanda.plugin:PLUGIN",
}


@dataclass(frozen=True)
class VenuePlugin:
    name: str
    settings: Callable[[], Any]
    build: Callable[[Any, float], OrderService]
    describe: Callable[[Any], str]
    simulator_door: Callable[[Any, str, int], Awaitable[Any]] | None = None
    simulated: Callable[[Any, str, int], Any] | None = None
    session: Callable[[Any, int], Any] | None = None


def session_settings(plugin: VenuePlugin, settings: Any, n: int) -> Any:
    """The settings of the n-th extra connection (unchanged when the venue needs nothing)."""
    return settings if plugin.session is None else plugin.session(settings, n)


class UnknownVenue(ValueError):
    pass


def plugin(name: str) -> VenuePlugin:
    """The plugin of `VENUE=name`."""
    target = VENUES.get(name)
    if target is None:
        raise UnknownVenue(f"VENUE={name!r} is not a venue; choose from {sorted(VENUES)}")
    module, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    assert isinstance(found, VenuePlugin), f"{target} is not a VenuePlugin"
    return found
