"""VENUE=template (not registered): the plugin a new venue exposes."""

from __future__ import annotations

from brokers.port import OrderService
from brokers.registry import VenuePlugin

from .service import TemplateOrderService
from .settings import TemplateSettings


def build(settings: TemplateSettings, timeout: float) -> OrderService:
    return TemplateOrderService(settings, timeout)


def describe(settings: TemplateSettings) -> str:
    """Where it connects; never a secret."""
    return f"{settings.base_url} (account {settings.account_id or 'default'})"


def simulated(settings: TemplateSettings, host: str, port: int) -> TemplateSettings:
    """The settings pointed at the simulator's front door for this venue."""
    return settings.model_copy(update={"base_url": f"http://{host}:{port}"})


PLUGIN = VenuePlugin(
    name="template",
    settings=TemplateSettings,
    build=build,
    describe=describe,
    # simulator_door=<brokers.sim.<name> door factory>, simulated=simulated,
)
