"""Alpaca as a venue plug-in (see brokers/registry.py): settings, factory, banner line, and
the simulator's Alpaca door for `VENUE=alpaca make run` without a real account."""

from __future__ import annotations

from typing import Any

from brokers.port import OrderService
from brokers.registry import VenuePlugin

from .settings import AlpacaSettings


def _settings() -> AlpacaSettings:
    return AlpacaSettings()


def _build(settings: AlpacaSettings, timeout: float) -> OrderService:
    from .service import AlpacaOrderService  # alpaca-py is needed only by those who trade here

    return AlpacaOrderService(settings, timeout)


def _describe(settings: AlpacaSettings) -> str:
    kind = "paper" if settings.paper else "LIVE"
    key = settings.api_key_id or "(no ALPACA_API_KEY_ID)"
    return f"alpaca {kind} {settings.trading_url()} key {key}"


async def _door(exchange: Any, host: str, port: int) -> Any:
    from brokers.sim.alpaca import start_alpaca_door

    return await start_alpaca_door(exchange, host, port)


def _simulated(settings: AlpacaSettings, host: str, port: int) -> AlpacaSettings:
    """The settings pointed at the simulator's door, with its paper login unless one is set."""
    from pydantic import SecretStr

    from brokers.sim.alpaca import DEFAULT_KEY_ID, DEFAULT_SECRET

    secret = settings.api_secret_key.get_secret_value() or DEFAULT_SECRET
    return settings.model_copy(update={
        "base_url": f"http://{host}:{port}", "stream_url": f"ws://{host}:{port}/stream",
        "paper": True, "api_key_id": settings.api_key_id or DEFAULT_KEY_ID,
        "api_secret_key": SecretStr(secret),
    })  # fmt: skip


PLUGIN = VenuePlugin(
    name="alpaca",
    settings=_settings,
    build=_build,
    describe=_describe,
    simulator_door=_door,
    simulated=_simulated,
)
