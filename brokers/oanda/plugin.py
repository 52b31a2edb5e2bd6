"""VENUE=oanda: an OANDA v20 practice or live account through OANDA's official `v20` client,
or the simulator's OANDA door."""

from __future__ import annotations

from typing import Any

from brokers.oanda.settings import OandaSettings
from brokers.port import AccountKind, OrderService
from brokers.registry import VenuePlugin

ADAPTER_SHARE = 3  # the adapter's own deadline: a third of the stages' per-call deadline


def build(settings: OandaSettings, timeout: float) -> OrderService:
    from brokers.oanda.service import OandaOrderService

    return OandaOrderService(
        settings.rest_host, settings.port, settings.token.get_secret_value(),
        settings.account_id, ssl=settings.ssl, stream_host=settings.streaming_host,
        timeout=timeout / ADAPTER_SHARE,
        kind=AccountKind.LIVE if settings.environment == "live" else AccountKind.PAPER,
    )  # fmt: skip


def describe(settings: OandaSettings) -> str:
    scheme = "https" if settings.ssl else "http"
    account = settings.account_id or "first account of the token"
    return f"{scheme}://{settings.rest_host}:{settings.port} (v20 REST, {account})"


async def oanda_door(exchange: Any, host: str, port: int) -> Any:
    """The simulator's OANDA v20 door over `exchange` (port 0: any free port)."""
    from brokers.sim.oanda import start_oanda_door

    return await start_oanda_door(exchange, host, port)


def simulated(settings: OandaSettings, host: str, port: int) -> OandaSettings:
    from pydantic import SecretStr

    from brokers.sim.oanda import DEFAULT_TOKEN

    return settings.model_copy(update={
        "host": host, "stream_host": host, "port": port, "ssl": False,
        "token": SecretStr(DEFAULT_TOKEN), "account_id": settings.account_id or "",
    })  # fmt: skip


PLUGIN = VenuePlugin(
    name="oanda",
    settings=OandaSettings,
    build=build,
    describe=describe,
    simulator_door=oanda_door,
    simulated=simulated,
)
