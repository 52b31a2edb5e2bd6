"""The simulator's Prometheus metrics and readiness, read by whatever endpoint the process serves
(`jax-exec sim`: METRICS_PORT /metrics, /health, /ready).

Counted as they happen: placements each front door received, accepted and refused (by the
venue's code), orders filled and executions. Read at scrape time: whether the door listens and
serves (not in a SIM_OUTAGE), its open client connections, the price step. Nothing here imports
the stages: the process's endpoint asks `checks()` and the prometheus registry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from brokers.sim.core import PlacementLog
from brokers.sim.models import SimUpdate
from schemas.events import OrderStatus

RECEIVED = Counter("jax_sim_orders_received", "Placements a simulator door received", ["door"])
ACCEPTED = Counter("jax_sim_orders_accepted", "Placements a simulator door accepted", ["door"])
REJECTED = Counter("jax_sim_orders_rejected",
                   "Placements a simulator door refused, by the venue's code", ["door", "code"])
FILLED = Counter("jax_sim_orders_filled", "Orders the simulator filled completely", ["door"])
EXECUTIONS = Counter("jax_sim_executions", "Executions (partial or full fills)", ["door"])


class Running(Protocol):
    """What the collector reads of a running simulator (brokers.sim.runner.Simulator)."""

    exchange: Any
    door: Any
    door_name: str

    @property
    def door_port(self) -> int: ...


def door_label(door: Any, door_name: str) -> str:
    """'tws', 'alpaca', 'oanda': short, fixed, fit for a label."""
    if hasattr(door, "all_sessions"):
        return "tws"
    return (door_name.split() or ["door"])[0].lower()


class CountedPlacements:
    """The exchange's PlacementLog, delegated to, with each outcome counted for one door."""

    def __init__(self, log: PlacementLog, door: str) -> None:
        self.log = log
        self.door = door

    def attempted(self, ref: str) -> None:
        RECEIVED.labels(self.door).inc()
        self.log.attempted(ref)

    def accepted(self, ref: str) -> None:
        ACCEPTED.labels(self.door).inc()
        self.log.accepted(ref)

    def refused(self, ref: str, code: str) -> None:
        REJECTED.labels(self.door, code).inc()
        self.log.refused(ref, code)

    def view(self) -> dict[str, dict[str, Any]]:
        return self.log.view()


def _connections(door: Any) -> int | None:
    sessions = getattr(door, "all_sessions", None)
    return len(sessions) if sessions is not None else None


def _serving(door: Any) -> bool:
    serving = getattr(door, "serving", None)  # the TWS door clears it during an outage
    return serving is None or bool(serving.is_set())


def door_state(sim: Running) -> dict[str, Any]:
    """The front door as a readiness check: listening, and not in an outage."""
    try:
        port = sim.door_port
    except (AssertionError, AttributeError, IndexError, TypeError):  # not listening (yet)
        return {"ok": False, "detail": "not listening"}
    in_outage = bool(sim.exchange.faults.in_outage(sim.exchange.now()))
    ok = _serving(sim.door) and not in_outage
    state: dict[str, Any] = {"ok": ok, "door": sim.door_name, "port": port,
                             "in_outage": in_outage}
    connections = _connections(sim.door)
    if connections is not None:
        state["connections"] = connections
    return state


class SimCollector(Collector):
    """Door up, connections, price step: read from the running simulators at each scrape."""

    def __init__(self) -> None:
        self.running: dict[int, Running] = {}
        self.unsubscribe: dict[int, Callable[[], Any]] = {}
        self.lock = threading.Lock()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily("jax_sim_door_up", "1 while the door listens and serves (0 in "
                               "an outage)", labels=["door"])
        conns = GaugeMetricFamily("jax_sim_connections", "Client connections open on the door",
                                  labels=["door"])
        step = GaugeMetricFamily("jax_sim_price_step", "Price steps the simulator has taken",
                                 labels=["door"])
        with self.lock:
            running = list(self.running.values())
        for sim in running:
            label = door_label(sim.door, sim.door_name)
            state = door_state(sim)
            up.add_metric([label], 1.0 if state["ok"] else 0.0)
            if "connections" in state:
                conns.add_metric([label], float(state["connections"]))
            step.add_metric([label], float(sim.exchange.step))
        yield from (up, conns, step)


COLLECTOR = SimCollector()
REGISTRY.register(COLLECTOR)


def watch(sim: Running) -> None:
    """Count what `sim`'s door receives and fills; call once its door listens."""
    label = door_label(sim.door, sim.door_name)
    exchange = sim.exchange
    if not isinstance(exchange.placements, CountedPlacements):
        exchange.placements = CountedPlacements(exchange.placements, label)

    def on_update(update: SimUpdate) -> None:
        if update.fill is not None:
            EXECUTIONS.labels(label).inc()
        if update.order is not None and update.order.status is OrderStatus.FILLED:
            FILLED.labels(label).inc()

    unsubscribe = exchange.subscribe(on_update)
    with COLLECTOR.lock:
        COLLECTOR.running[id(sim)] = sim
        COLLECTOR.unsubscribe[id(sim)] = unsubscribe


def unwatch(sim: Running) -> None:
    """Stop counting for `sim` (it is closing); its counters keep their totals."""
    with COLLECTOR.lock:
        COLLECTOR.running.pop(id(sim), None)
        unsubscribe = COLLECTOR.unsubscribe.pop(id(sim), None)
    if unsubscribe is not None:
        unsubscribe()


def checks() -> dict[str, dict[str, Any]]:
    """Readiness checks, each {"ok": bool, ...}: every running simulator's door and state file
    (one failing "door" check while none runs in this process)."""
    with COLLECTOR.lock:
        running = list(COLLECTOR.running.values())
    if not running:
        return {"door": {"ok": False, "detail": "not started"}}
    out: dict[str, dict[str, Any]] = {}
    for sim in running:
        out[f"door {door_label(sim.door, sim.door_name)}"] = door_state(sim)
        state_path = getattr(getattr(sim, "settings", None), "state_path", None)
        if isinstance(state_path, Path):
            out["state file"] = {"ok": state_path.exists(), "path": str(state_path)}
    return out
