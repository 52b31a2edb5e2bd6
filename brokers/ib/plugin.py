"""VENUE=ib: Interactive Brokers through the TWS API (ib_async), or the simulator's TWS door."""

from __future__ import annotations

from typing import Any

from brokers.ib.settings import IbSettings
from brokers.port import OrderService
from brokers.registry import VenuePlugin


def build(settings: IbSettings, timeout: float) -> OrderService:
    from brokers.ib.service import PLACEMENT_DEADLINES, IbOrderService

    # Of the stages' deadline per venue call, the adapter gets a share for its own library
    # calls: a placement's wait and its look-up after no answer then fit in the outer deadline.
    return IbOrderService(
        host=settings.host, port=settings.port, client_id=settings.client_id,
        account=settings.account, timeout=timeout / PLACEMENT_DEADLINES,
        full_read_seconds=settings.full_read_seconds, full_read_share=settings.full_read_share,
        full_read_max_seconds=settings.full_read_max_seconds,
    )  # fmt: skip


def describe(settings: IbSettings) -> str:
    account = f", account {settings.account}" if settings.account else ""
    return f"{settings.host}:{settings.port} (TWS API, client id {settings.client_id}{account})"


async def tws_door(exchange: Any, host: str, port: int) -> Any:
    """The simulator's TWS API front door over `exchange` (port 0: any free port)."""
    from brokers.sim.tws import run_tws_server

    return await run_tws_server(exchange, host, port, exchange.faults)


def simulated(settings: IbSettings, host: str, port: int) -> IbSettings:
    return settings.model_copy(update={"host": host, "port": port})


def session(settings: IbSettings, n: int) -> IbSettings:
    """Each TWS API connection needs its own client id (a second one with the same id gets
    error 326): the n-th extra connection uses client id + n."""
    return settings.model_copy(update={"client_id": settings.client_id + n})


PLUGIN = VenuePlugin(
    name="ib",
    settings=IbSettings,
    build=build,
    describe=describe,
    simulator_door=tws_door,
    simulated=simulated,
    session=session,
)
