"""Shared pieces of the order-path tests: a stack (simulator process + worker over the IB
adapter) on the real broker, bursts of approvals published at once, and the accounting that
proves every approval has exactly one outcome and every intent exactly one venue order."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from agents.readback import read_all
from schemas.events import APPROVAL_KEY, Approval
from schemas.ids import signal_event_id
from tests.integration.harness import (
    BOOTSTRAP,
    ROOT,
    SimulatorProcess,
    WorkerProcess,
    approval_for,
    signal_with,
)

UNIVERSE = ROOT / "brokers" / "sim" / "data" / "universe.csv"


def reference_prices() -> dict[str, Decimal]:
    with UNIVERSE.open() as f:
        return {row["symbol"]: Decimal(row["reference_price"]) for row in csv.DictReader(f)}


def signal_at(symbol: str, price: Decimal, **changes: Any) -> dict[str, Any]:
    """A BUY at the simulator's reference price (a frozen clock fills it at once), stop 2%
    below, take-profit 4% above, both on the cent."""
    cent = Decimal("0.01")
    return signal_with(symbol=symbol, entry_price=str(price),
                       stop_loss=str((price * Decimal("0.98")).quantize(cent)),
                       take_profit=str((price * Decimal("1.04")).quantize(cent)),
                       strategy_id="burst", **changes)


def approvals(count: int, symbols: list[str], by: str = "alice") -> list[dict[str, Any]]:
    prices = reference_prices()
    return [approval_for(signal_at(symbols[i % len(symbols)], prices[symbols[i % len(symbols)]]),
                         by=by) for i in range(count)]


def approval_id(approval: dict[str, Any]) -> str:
    return str(Approval.model_validate(approval).event_id)


async def publish_all(topic: str, values: Iterable[dict[str, Any]],
                      bootstrap: str = BOOTSTRAP) -> float:
    """Publish at once (one producer, no waiting per message); return the seconds it took.
    Approvals go with their signals, which are published to `signals` first (the pipeline
    refuses an approval of a signal it never saw)."""
    values = list(values)
    # idempotent, as every approver of the project publishes: a batch retried after a broker
    # went away mid-request is stored once (without it, a retry stored approvals twice and
    # the second copy was refused ALREADY_DECIDED: a CI run of the broker-failure test)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                enable_idempotence=True)
    await producer.start()
    started = time.monotonic()
    try:
        if topic.endswith("approvals"):
            signals = topic.removesuffix("approvals") + "signals"
            await _send(producer, signals, [v["signal"] for v in values if "signal" in v])
        await _send(producer, topic, values)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def _send(producer: AIOKafkaProducer, topic: str, values: list[dict[str, Any]]) -> None:
    futures = []
    for value in values:
        signal = value.get("signal", value)
        key = str(signal_event_id(signal["id"])).encode() if "id" in signal else None
        if topic.endswith("approvals"):
            key = APPROVAL_KEY
        futures.append(await producer.send(topic, json.dumps(value).encode(), key=key))
    for fut in futures:
        await fut


@dataclass
class Ledger:
    """What the topics and the venue say happened to a set of approvals."""

    outcomes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by approval id
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)  # by client order id
    submission: dict[str, set[str]] = field(default_factory=dict)  # coid -> order/rejection ids
    venue_orders: Counter[str] = field(default_factory=Counter)  # entry coid -> orders at venue

    def undecided(self, approval_ids: Iterable[str]) -> list[str]:
        return [a for a in approval_ids if not self.outcomes.get(a)]

    def doubled(self) -> dict[str, list[str]]:
        """Approvals with more than one distinct outcome (event ids)."""
        out = {}
        for a, events_ in self.outcomes.items():
            ids = {e["event_id"] for e in events_}
            if len(ids) > 1:
                out[a] = sorted(f"{e['event_type']}:{e.get('reason_code', '')}" for e in events_)
        return out

    def unsubmitted(self) -> list[str]:
        return [c for c in self.intents if not self.submission.get(c)]

    def reason_counts(self) -> Counter[str]:
        return Counter(e.get("reason_code", "intent") for evs in self.outcomes.values()
                       for e in evs[:1])


async def read_topic(topic: str, bootstrap: str = BOOTSTRAP) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    await read_all(bootstrap, topic, rows.append)
    return rows


async def ledger(prefix: str, sim: SimulatorProcess, approval_ids: set[str],
                 bootstrap: str = BOOTSTRAP) -> Ledger:
    book = Ledger()
    for topic in ("order-intents", "rejections"):
        for e in await read_topic(f"{prefix}{topic}", bootstrap):
            cause = e.get("subject_event_id") or e.get("causation_id")
            if cause in approval_ids:
                book.outcomes.setdefault(cause, []).append(e)
            if topic == "order-intents":
                book.intents[e["client_order_id"]] = e
            elif e.get("stage") == "submission":
                coid = e.get("details", {}).get("client_order_id", "")
                book.submission.setdefault(coid, set()).add(e["event_id"])
    for e in await read_topic(f"{prefix}orders", bootstrap):
        if e.get("leg") == "entry":
            book.submission.setdefault(e["client_order_id"], set()).add(e["event_id"])
    state = sim.admin("/orders")
    book.venue_orders = Counter(o["client_order_id"] for o in state["orders"]
                                if o.get("leg", "entry") == "entry")
    return book


def stack(tmp: Path, prefix: str, env: dict[str, str] | None = None,
          sim_env: dict[str, str] | None = None) -> tuple[SimulatorProcess, WorkerProcess]:
    sim = SimulatorProcess(tmp / "sim", env=sim_env)
    sim.wait_ready()
    worker = WorkerProcess(tmp / "worker", prefix, env={
        "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim.port), "IB_CLIENT_ID": "9",
        "LOG_LEVEL": "warning", **(env or {})})
    return sim, worker


# Risk settings under which a burst of small orders mostly passes: the limits under test are
# then the only ones that bind.
ROOMY = {
    "MAX_OPEN_POSITIONS": "200", "ALLOW_SAME_SYMBOL_POSITION": "true",
    "MAX_ORDERS_PER_MINUTE": "5000", "MAX_POSITION_PCT": "0.002",
    "MAX_SYMBOL_EXPOSURE_PCT": "1", "MAX_GROUP_EXPOSURE_PCT": "1", "MAX_GROSS_EXPOSURE_PCT": "0.2",
}
