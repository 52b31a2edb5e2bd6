"""Alpaca over its real wire: alpaca-py against the simulator's Alpaca door.

1. Four refusals, each as Alpaca answers it on the wire (HTTP status + Alpaca code, read by
   alpaca-py's own client) and as the pipeline records it (the submission stage over the
   Alpaca adapter: VENUE_REJECTED with Alpaca's code; a duplicate client order id is looked
   up, never placed twice).
2. On the real Kafka broker: the seed signal end to end through Alpaca (worker `VENUE=alpaca`,
   the simulator with its Alpaca door in its own process): 133 shares, bracket, take-profit
   exit, stop leg cancelled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest

from agents.context import Source, StageContext
from agents.decisions.config import RiskSettings
from agents.submission import handle_intent
from brokers.alpaca.service import AlpacaOrderService
from brokers.alpaca.settings import AlpacaSettings
from brokers.sim.alpaca import DEFAULT_KEY_ID, DEFAULT_SECRET, AlpacaDoor, start_alpaca_door
from brokers.sim.core import Exchange, SimConfig
from schemas.events import OrderEvent, Rejection
from schemas.ids import client_order_id, signal_event_id
from tests.integration.harness import (
    ROOT,
    SEED_SIGNAL,
    WorkerProcess,
    approval_for,
    free_port,
    publish,
    wait_for,
)
from tests.unit.agents.conftest import KEYRING, AutoSeenLedger, approval, intent_for, no_sleep, raw

pytestmark = pytest.mark.integration

SRC = Source("order-intents", 0, 1)


def _settings(door: AlpacaDoor) -> AlpacaSettings:
    return AlpacaSettings(
        api_key_id=DEFAULT_KEY_ID, api_secret_key=DEFAULT_SECRET,  # type: ignore[arg-type]
        base_url=door.base_url, stream_url=door.stream_url,
    )  # fmt: skip


@pytest.fixture
async def door() -> AsyncIterator[AlpacaDoor]:
    exchange = Exchange(SimConfig(seed=3, commission_per_share=Decimal(0),
                                  commission_min=Decimal(0)))  # fmt: skip
    exchange.set_price("AAPL", Decimal("150.00"))
    started = await start_alpaca_door(exchange, "127.0.0.1", 0)
    yield started
    await started.close()


def _wire(door: AlpacaDoor, **order: Any) -> APIError:
    """Send one order with alpaca-py's own client; the APIError Alpaca answered."""
    client = TradingClient(DEFAULT_KEY_ID, DEFAULT_SECRET, url_override=door.base_url)
    fields = {"symbol": "AAPL", "qty": 1, "side": OrderSide.BUY, "limit_price": 150.0,
              "time_in_force": TimeInForce.DAY, **order}  # fmt: skip
    try:
        client.submit_order(LimitOrderRequest(**fields))
    except APIError as exc:
        return exc
    raise AssertionError(f"Alpaca took {fields}")


# name -> (order fields on the wire, HTTP status, Alpaca code)
REFUSALS = {
    "unknown instrument": ({"symbol": "NOSUCHSYM"}, 422, 40010001),
    "sub-penny price": ({"limit_price": 150.005}, 422, 42210000),
    "insufficient buying power": ({"qty": 1_000_000}, 403, 40310000),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_refusal_on_the_wire_and_in_the_pipeline(door: AlpacaDoor, case: str) -> None:
    fields, status, code = REFUSALS[case]
    caught = await _in_thread(_wire, door, **fields)
    print(f"\n{case}: HTTP {caught.status_code} {caught.code} {caught.message!r}")
    assert (caught.status_code, caught.code) == (status, code)

    venue = AlpacaOrderService(_settings(door), timeout=4.0)
    await venue.connect()
    try:
        signal = {"symbol": fields["symbol"]} if "symbol" in fields else {}
        intent = intent_for(approval(**signal)).model_copy(update=_intent_changes(fields))
        out = await handle_intent(raw(intent), SRC, _ctx(venue))
    finally:
        await venue.close()
    (topic, event), = out
    assert topic == "rejections", out
    assert isinstance(event, Rejection)
    print(f"  pipeline: {event.reason_code} venue_code {event.details.get('venue_code')}")
    assert (event.reason_code, event.details["venue_code"]) == ("VENUE_REJECTED", str(code))


async def test_duplicate_client_order_id_on_the_wire_and_in_the_pipeline(
        door: AlpacaDoor) -> None:
    intent = intent_for(approval())
    first = await _in_thread(_submit_raw, door, intent.client_order_id)
    caught = await _in_thread(_wire, door, client_order_id=intent.client_order_id)
    print(f"\nduplicate: HTTP {caught.status_code} {caught.code} {caught.message!r}")
    assert (caught.status_code, caught.code) == (422, 40010001)
    assert "client_order_id must be unique" in caught.message

    venue = AlpacaOrderService(_settings(door), timeout=4.0)
    await venue.connect()
    try:
        out = await handle_intent(raw(intent), SRC, _ctx(venue))
    finally:
        await venue.close()
    # the venue has the order already: the stage reports that one, it never places a second
    assert all(isinstance(e, OrderEvent) for _, e in out), out
    assert {e.venue_order_id for _, e in out if isinstance(e, OrderEvent)} == {first}
    placed = [o for o in door.exchange.orders(door.exchange.config.default_account_id)
              if o.client_order_id == intent.client_order_id]
    assert len(placed) == 1


def _submit_raw(door: AlpacaDoor, coid: str) -> str:
    client = TradingClient(DEFAULT_KEY_ID, DEFAULT_SECRET, url_override=door.base_url)
    order = client.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=133, side=OrderSide.BUY, limit_price=140.0,
        time_in_force=TimeInForce.DAY, client_order_id=coid))
    return str(order.id)  # type: ignore[union-attr]


def _intent_changes(fields: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "symbol" in fields:
        changes["symbol"] = fields["symbol"]
    if "limit_price" in fields:
        changes["limit_price"] = Decimal(str(fields["limit_price"]))
    if "qty" in fields:
        changes["quantity"] = Decimal(fields["qty"])
    return changes


def _ctx(venue: AlpacaOrderService) -> StageContext:
    from agents.retry import RetryPolicy

    return StageContext(risk=RiskSettings(), venue=venue, clock=lambda: _now(),
                        retry=RetryPolicy(attempts=3, sleep=no_sleep), keyring=KEYRING,
                        ledger=AutoSeenLedger())  # fmt: skip


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)


# ------------------------------------------------------------------ end to end over Kafka


class AlpacaSimProcess:
    """`python -m brokers.sim.alpaca` in a subprocess: the Alpaca door and the admin API."""

    def __init__(self, home: Path) -> None:
        self.port, self.admin_port = free_port(), free_port()
        home.mkdir(parents=True, exist_ok=True)
        self.log = home / "sim.log"
        env = {**os.environ, "JAX_HOME": str(home), "SIM_PORT": str(self.port),
               "SIM_ADMIN_PORT": str(self.admin_port), "SIM_TICK_SECONDS": "0"}  # fmt: skip
        self.proc = subprocess.Popen([sys.executable, "-m", "brokers.sim.alpaca"], cwd=ROOT,
                                     env=env, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)  # fmt: skip

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while "ready" not in self.log.read_text().split():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        import json
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data,
                                     method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


@pytest.fixture
def alpaca_stack(tmp_path: Path) -> Iterator[tuple[AlpacaSimProcess, WorkerProcess, str]]:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    sim = AlpacaSimProcess(tmp_path / "sim")
    sim.wait_ready()
    worker = WorkerProcess(tmp_path / "worker", prefix, env={
        "VENUE": "alpaca", "ALPACA_API_KEY_ID": DEFAULT_KEY_ID,
        "ALPACA_API_SECRET_KEY": DEFAULT_SECRET,
        "ALPACA_BASE_URL": f"http://127.0.0.1:{sim.port}",
        "ALPACA_STREAM_URL": f"ws://127.0.0.1:{sim.port}/stream",
    })  # fmt: skip
    try:
        worker.start()
        yield sim, worker, prefix
    finally:
        worker.stop()
        sim.stop()


def _mine(rows: list[dict[str, Any]], corr: uuid.UUID) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("correlation_id") == str(corr)]


async def test_seed_signal_end_to_end_through_alpaca(
        alpaca_stack: tuple[AlpacaSimProcess, WorkerProcess, str]) -> None:
    sim, _worker, prefix = alpaca_stack
    corr = signal_event_id(SEED_SIGNAL["id"])
    coid = client_order_id(corr)
    await publish(f"{prefix}signals", SEED_SIGNAL, key=str(corr).encode())
    await publish(f"{prefix}approvals", approval_for(SEED_SIGNAL), key=str(corr).encode())

    # AAPL starts at 150.00 with the clock frozen: the LMT 150.00 entry fills at once
    await wait_for(f"{prefix}fills", lambda rows: any(
        r["client_order_id"] == coid for r in _mine(rows, corr)))
    await wait_for(f"{prefix}orders", lambda rows: any(
        r.get("leg") == "take_profit" and r["status"] == "accepted" for r in _mine(rows, corr)))
    sim.admin("/price", {"symbol": "AAPL", "price": "160.00"})

    fills = await wait_for(f"{prefix}fills", lambda rows: len(_mine(rows, corr)) == 2)
    by_leg = {r["leg"]: r for r in _mine(fills, corr)}
    figures = [(r["leg"], r["side"], r["quantity"], r["price"]) for r in by_leg.values()]
    print(f"\nalpaca end to end: {figures}")
    assert set(by_leg) == {"entry", "take_profit"}
    assert (by_leg["entry"]["side"], Decimal(by_leg["entry"]["price"])) == ("BUY", Decimal(150))
    assert (by_leg["take_profit"]["side"], Decimal(by_leg["take_profit"]["price"])) == \
        ("SELL", Decimal(160))
    assert Decimal(by_leg["entry"]["quantity"]) == Decimal(by_leg["take_profit"]["quantity"]) \
        == 133
    assert all(r["venue"] == "alpaca" for r in by_leg.values())
    assert by_leg["take_profit"]["parent_client_order_id"] == coid
    orders = await wait_for(f"{prefix}orders", lambda rows: any(
        r.get("leg") == "stop_loss" and r["status"] == "cancelled" for r in _mine(rows, corr)))
    legs = {r["leg"]: r["client_order_id"] for r in _mine(orders, corr)}
    assert legs["take_profit"] != f"{coid}-tp"  # Alpaca's own id: the leg is known by `leg`
    state = sim.admin("/state")
    account = next(iter(state["accounts"].values()))
    assert all(Decimal(p["quantity"]) == 0 for p in account["positions"])
