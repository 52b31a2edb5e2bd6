"""The venue registry, the plugin shape of every registered venue, the TWS door's reason table,
and the template a new venue copies."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from decimal import Decimal

import pytest
from pydantic import ValidationError

from brokers import registry
from brokers.exceptions import (
    DuplicateClientOrderId,
    NotCancellable,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
)
from brokers.port import OrderService
from brokers.registry import VENUES, UnknownVenue, VenuePlugin
from brokers.sim.reasons import Reason, refusal
from brokers.sim.tws.reasons import IB_CODES, PLACEMENT_CODES, ib_error
from jax_exec.settings import Settings


def test_an_unknown_venue_names_the_choices() -> None:
    with pytest.raises(UnknownVenue, match=r"VENUE='nyse' is not a venue; choose from \["):
        registry.plugin("nyse")


def test_settings_refuse_an_unknown_venue_naming_the_choices() -> None:
    with pytest.raises(ValidationError, match=r"choose from \[.*'ib'.*'sim'"):
        Settings(venue="nyse")
    assert Settings(venue="SIM").venue == "sim"


@pytest.mark.parametrize("name", sorted(VENUES))
def test_every_registered_venue_has_the_plugin_shape(name: str) -> None:
    plugin = registry.plugin(name)
    assert isinstance(plugin, VenuePlugin)
    assert plugin.name == name
    assert VENUES[name] == f"brokers.{name}.plugin:PLUGIN"  # one package per venue
    for hook in (plugin.settings, plugin.build, plugin.describe):
        assert callable(hook)
    # a simulator door and the settings pointed at it come together
    assert (plugin.simulator_door is None) == (plugin.simulated is None)
    if plugin.simulator_door is not None:
        assert inspect.iscoroutinefunction(plugin.simulator_door)


def test_ib_plugin_keeps_the_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"IB_HOST": "10.0.0.5", "IB_PORT": "4002", "IB_CLIENT_ID": "11",
                       "IB_ACCOUNT": "DU1234567"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    plugin = registry.plugin("ib")
    settings = plugin.settings()
    assert (settings.host, settings.port, settings.client_id, settings.account) == (
        "10.0.0.5", 4002, 11, "DU1234567")  # fmt: skip
    assert plugin.describe(settings) == (
        "10.0.0.5:4002 (TWS API, client id 11, account DU1234567)"
    )
    assert plugin.simulated is not None
    assert plugin.session is not None
    assert plugin.simulated(settings, "127.0.0.1", 7000).port == 7000
    assert registry.session_settings(plugin, settings, 10).client_id == 21
    service = plugin.build(settings, 9.0)
    assert isinstance(service, OrderService)
    assert service.venue == "ib"


def test_sim_plugin_builds_the_in_process_venue(tmp_path: object,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAX_HOME", str(tmp_path))
    plugin = registry.plugin("sim")
    settings = plugin.settings()
    service = plugin.build(settings, 5.0)
    assert isinstance(service, OrderService)
    assert service.venue == "sim"
    assert "in-process simulator" in plugin.describe(settings)
    assert registry.session_settings(plugin, settings, 10) is settings


def test_every_reason_has_an_ib_code_and_text() -> None:
    assert set(IB_CODES) == set(Reason)
    assert set(PLACEMENT_CODES) <= set(Reason)
    for reason, (code, text) in IB_CODES.items():
        assert code > 0, reason
        assert text.format(message="x")


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (Reason.UNKNOWN_INSTRUMENT, 200), (Reason.SYMBOL_NOT_ALLOWED, 201),
        (Reason.OFF_TICK, 110), (Reason.INVALID_QUANTITY, 10243),
        (Reason.INSUFFICIENT_BUYING_POWER, 201), (Reason.NOT_SHORTABLE, 201),
        (Reason.DUPLICATE_ORDER_ID, 103), (Reason.UNKNOWN_ORDER, 10147),
        (Reason.NOT_CANCELLABLE, 10148), (Reason.NOT_MODIFIABLE, 201),
        (Reason.UNKNOWN_ACCOUNT, 321),
    ],
)  # fmt: skip
def test_the_tws_door_speaks_todays_ib_codes(reason: Reason, code: int) -> None:
    assert ib_error(refusal(reason, "why"), default=999)[0] == code


def test_a_placement_for_an_unknown_account_is_201() -> None:
    exc = refusal(Reason.UNKNOWN_ACCOUNT, "account DU9 is not known")
    assert ib_error(exc, 201, placing=True) == (201, "Error validating request: account DU9 "
                                                     "is not known")


def test_a_door_error_without_a_reason_keeps_its_numeric_code() -> None:
    assert ib_error(OrderRejected("unsupported", code="201"), 321) == (201, "unsupported")
    assert ib_error(OrderRejected("odd", code="order_rejected"), 321) == (321, "odd")


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        (Reason.DUPLICATE_CLIENT_ID, DuplicateClientOrderId), (Reason.UNKNOWN_ORDER, UnknownOrder),
        (Reason.NOT_CANCELLABLE, NotCancellable), (Reason.OUTAGE, TransientBrokerError),
        (Reason.VENUE_BUSY, TransientBrokerError), (Reason.OFF_TICK, OrderRejected),
    ],
)  # fmt: skip
def test_refusals_are_port_exceptions_with_a_neutral_code(reason: Reason, cls: type) -> None:
    exc = refusal(reason, "why")
    assert type(exc) is cls
    assert exc.reason is reason
    assert exc.code == reason.value
    assert exc.message == "why"


def test_the_template_imports_and_is_not_registered() -> None:
    template = importlib.import_module("brokers._template.plugin")
    plugin = template.PLUGIN
    assert isinstance(plugin, VenuePlugin)
    assert plugin.name not in VENUES
    settings = plugin.settings()
    assert "api_key" not in plugin.describe(settings)
    assert isinstance(plugin.build(settings, 1.0), OrderService)
    for part in ("settings", "mapping", "errors", "service"):
        importlib.import_module(f"brokers._template.{part}")


DOORS = sorted(n for n in VENUES if registry.plugin(n).simulator_door is not None)


@pytest.mark.parametrize("name", DOORS)
def test_run_starts_the_chosen_venues_door_and_points_the_adapter_at_it(
    name: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `VENUE=<name> jax-exec run` does before the worker starts."""
    from jax_exec.runner import _embedded_simulator
    from jax_exec.wiring import build_venue

    for key, value in {"JAX_HOME": str(tmp_path), "SIM_PORT": "0", "SIM_ADMIN_PORT": "0",
                       "SIM_TICK_SECONDS": "0"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    settings = Settings(venue=name)
    loop = asyncio.new_event_loop()
    try:
        config, sim = _embedded_simulator(settings, registry.plugin(name), loop)
        venue = build_venue(settings, config)
        assert str(sim.door_port) in venue.description
        loop.run_until_complete(venue.service.connect())
        account = loop.run_until_complete(venue.service.account())
        print(f"\n{name}: door {sim.describe()[0]!r}; banner {name} {venue.description}")
        assert account.equity == Decimal(100000)
        loop.run_until_complete(venue.service.close())
        loop.run_until_complete(sim.close())
    finally:
        loop.close()
