"""OANDA's own errors on the wire (raw HTTP to the simulator's OANDA door) and the codes the
adapter (OANDA's `v20` client) turns them into: duplicate client order id, unknown
instrument, off-precision price, insufficient margin. The pipeline maps an OrderRejected's
code into VENUE_REJECTED (agents/submission), so the code checked here is the one it carries.

And an EUR_USD and a USD_JPY signal end to end on the real Kafka broker (VENUE=oanda), with
the units the sizing rule gives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from brokers.exceptions import DuplicateClientOrderId, OrderRejected
from brokers.oanda.service import OandaOrderService
from brokers.port import OrderRequest
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.oanda import DEFAULT_TOKEN, OandaDoor, start_oanda_door
from schemas.events import OrderType, Side

pytestmark = pytest.mark.integration
ACCOUNT = "DU0000001"


@pytest.fixture
async def door() -> AsyncIterator[OandaDoor]:
    exchange = Exchange(SimConfig(seed=3))
    exchange.set_price("EUR_USD", Decimal("1.08500"))
    served = await start_oanda_door(exchange, "127.0.0.1", 0)
    yield served
    await served.close()


async def _post(door: OandaDoor, order: dict[str, Any], token: str = DEFAULT_TOKEN) -> Any:
    """Raw HTTP in a thread (the door runs on this test's event loop)."""
    url = f"http://127.0.0.1:{door.port}/v3/accounts/{ACCOUNT}/orders"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"order": order})
    return await asyncio.to_thread(requests.post, url, data=body, headers=headers, timeout=5)


def _limit(cid: str, **over: Any) -> dict[str, Any]:
    return {"type": "LIMIT", "instrument": "EUR_USD", "units": "1000", "price": "1.08000",
            "timeInForce": "GTC", "clientExtensions": {"id": cid}, **over}  # fmt: skip


CASES = [
    pytest.param([_limit("w-dup"), _limit("w-dup")], 400, "CLIENT_ORDER_ID_ALREADY_EXISTS",
                 id="duplicate"),
    pytest.param([_limit("w-unk", instrument="EUR_XXX")], 400, "INSTRUMENT_UNKNOWN", id="unknown"),
    pytest.param([_limit("w-px", price="1.080001")], 400, "PRICE_PRECISION_EXCEEDED",
                 id="precision"),
    pytest.param([_limit("w-tp", takeProfitOnFill={"price": "1.0900001"})], 400,
                 "TAKE_PROFIT_ON_FILL_PRICE_PRECISION_EXCEEDED", id="tp-precision"),
]


@pytest.mark.parametrize(("orders", "status", "code"), CASES)
async def test_refusals_on_the_wire(door: OandaDoor, orders: list[dict[str, Any]], status: int,
                                    code: str) -> None:  # fmt: skip
    for order in orders[:-1]:
        assert (await _post(door, order)).status_code == 201
    answer = await _post(door, orders[-1])
    body = answer.json()
    print(f"[oanda wire] {answer.status_code} {json.dumps(body)[:300]}")
    assert answer.status_code == status
    assert body["errorCode"] == code
    assert body["orderRejectTransaction"]["rejectReason"] == code
    assert body["errorMessage"]


async def test_insufficient_margin_is_a_create_cancelled_at_once(door: OandaDoor) -> None:
    answer = await _post(door, {"type": "MARKET", "instrument": "EUR_USD", "units": "90000000",
                          "clientExtensions": {"id": "w-margin"}})  # fmt: skip
    body = answer.json()
    print(f"[oanda wire] {answer.status_code} {json.dumps(body)[:300]}")
    assert answer.status_code == 201
    assert body["orderCancelTransaction"]["reason"] == "INSUFFICIENT_MARGIN"
    assert "orderFillTransaction" not in body


async def test_without_the_token_401(door: OandaDoor) -> None:
    answer = await _post(door, _limit("w-auth"), token="wrong")
    assert answer.status_code == 401
    assert answer.json()["errorMessage"]


@pytest.fixture
async def service(door: OandaDoor) -> AsyncIterator[OandaOrderService]:
    svc = OandaOrderService("127.0.0.1", door.port, DEFAULT_TOKEN, ssl=False)
    await svc.connect()
    yield svc
    await svc.close()


def _order(cid: str, **over: Any) -> OrderRequest:
    fields: dict[str, Any] = {"client_order_id": cid, "symbol": "EUR_USD", "side": Side.BUY,
                              "quantity": Decimal(1000), "order_type": OrderType.LMT,
                              "limit_price": Decimal("1.08000"), **over}  # fmt: skip
    return OrderRequest(**fields)


ADAPTER = [
    pytest.param({"symbol": "EUR_XXX"}, "INSTRUMENT_UNKNOWN", id="unknown"),
    pytest.param({"limit_price": Decimal("1.080001")}, "PRICE_PRECISION_EXCEEDED", id="precision"),
    pytest.param({"quantity": Decimal(90_000_000), "order_type": OrderType.MKT,
                  "limit_price": None}, "INSUFFICIENT_MARGIN", id="margin"),
]


@pytest.mark.parametrize(("over", "code"), ADAPTER)
async def test_adapter_codes(service: OandaOrderService, over: dict[str, Any], code: str) -> None:
    with pytest.raises(OrderRejected) as caught:
        await service.place(_order("a-" + code, **over))
    assert caught.value.code == code
    assert caught.value.transient is False


async def test_adapter_duplicate(service: OandaOrderService) -> None:
    await service.place(_order("a-dup"))
    with pytest.raises(DuplicateClientOrderId):
        await service.place(_order("a-dup"))


@pytest.mark.parametrize(("over", "code"), ADAPTER)
async def test_the_pipeline_refuses_with_the_venue_code(
        service: OandaOrderService, over: dict[str, Any], code: str) -> None:
    """The submission stage over the OANDA adapter: VENUE_REJECTED with OANDA's reason."""
    from agents.submission import handle_intent
    from schemas.events import Rejection
    from tests.unit.agents.conftest import approval, intent_for, raw

    symbol = over.get("symbol", "EUR_USD")
    a = approval(symbol=symbol, entry_price="1.08000", stop_loss="1.07500",
                 take_profit="1.09000")
    changes = {"symbol": symbol, "quantity": over.get("quantity", Decimal(1000)),
               "order_type": over.get("order_type", OrderType.LMT),
               "limit_price": over.get("limit_price", Decimal("1.08000")),
               "take_profit": None, "stop_loss": None}
    intent = intent_for(a).model_copy(update=changes)
    (topic, event), = await handle_intent(raw(intent), _SRC, _ctx(service))
    assert topic == "rejections"
    assert isinstance(event, Rejection)
    print(f"\n{code}: pipeline {event.reason_code} venue_code {event.details['venue_code']}")
    assert (event.reason_code, event.details["venue_code"]) == ("VENUE_REJECTED", code)


async def test_the_pipeline_never_places_a_duplicate(service: OandaOrderService,
                                                     door: OandaDoor) -> None:
    from agents.submission import handle_intent
    from schemas.events import OrderEvent
    from tests.unit.agents.conftest import approval, intent_for, raw

    a = approval(symbol="EUR_USD", entry_price="1.08000", stop_loss="1.07500",
                 take_profit="1.09000")
    intent = intent_for(a).model_copy(update={
        "symbol": "EUR_USD", "quantity": Decimal(1000), "limit_price": Decimal("1.08000"),
        "take_profit": None, "stop_loss": None})
    await service.place(_order(intent.client_order_id))
    out = await handle_intent(raw(intent), _SRC, _ctx(service))
    assert out
    assert all(isinstance(e, OrderEvent) for _, e in out), out
    placed = [o for o in door.exchange.orders(door.exchange.config.default_account_id)
              if o.client_order_id == intent.client_order_id]
    assert len(placed) == 1


def _source() -> Any:
    from agents.context import Source

    return Source("order-intents", 0, 1)


_SRC = _source()


def _ctx(venue: OandaOrderService) -> Any:
    from datetime import UTC, datetime

    from agents.context import StageContext
    from agents.decisions.config import RiskSettings
    from agents.retry import RetryPolicy
    from tests.unit.agents.conftest import KEYRING, AutoSeenLedger, no_sleep

    return StageContext(risk=RiskSettings(), venue=venue, clock=lambda: datetime.now(UTC),
                        retry=RetryPolicy(attempts=3, sleep=no_sleep), keyring=KEYRING,
                        ledger=AutoSeenLedger())


# ------------------------------------------------------------------ end to end over Kafka


@pytest.fixture
async def oanda_stack(tmp_path: Any) -> AsyncIterator[tuple[OandaDoor, Any, str]]:
    """The OANDA door on this test's loop (prices frozen), a worker with VENUE=oanda."""
    import uuid

    from tests.integration.harness import WorkerProcess

    exchange = Exchange(SimConfig(seed=3))
    exchange.set_price("EUR_USD", Decimal("1.08500"))
    exchange.set_price("USD_JPY", Decimal("150.000"))
    served = await start_oanda_door(exchange, "127.0.0.1", 0)
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    worker = WorkerProcess(tmp_path / "worker", prefix, env={
        "VENUE": "oanda", "OANDA_HOST": "127.0.0.1", "OANDA_STREAM_HOST": "127.0.0.1",
        "OANDA_PORT": str(served.port), "OANDA_SSL": "false", "OANDA_TOKEN": DEFAULT_TOKEN,
        "OANDA_ACCOUNT_ID": ACCOUNT, "SYMBOL_ALLOWLIST": ""})
    try:
        await asyncio.to_thread(worker.start)
        yield served, worker, prefix
    finally:
        await asyncio.to_thread(worker.stop)
        await served.close()


async def test_fx_signals_end_to_end_through_oanda(
        oanda_stack: tuple[OandaDoor, Any, str]) -> None:
    from schemas.ids import signal_event_id
    from tests.integration.harness import approval_for, publish, signal_with, wait_for

    _, _, prefix = oanda_stack
    signals = {
        "EUR_USD": signal_with(symbol="EUR_USD", entry_price="1.08500", stop_loss="1.08000",
                               take_profit="1.09500", strategy_id="fx"),
        "USD_JPY": signal_with(symbol="USD_JPY", entry_price="150.000", stop_loss="149.500",
                               take_profit="151.000", strategy_id="fx"),
    }
    corrs = {s: str(signal_event_id(sig["id"])) for s, sig in signals.items()}
    for sig in signals.values():
        await publish(f"{prefix}signals", sig)
    for sig in signals.values():
        await publish(f"{prefix}approvals", approval_for(sig))
    intents = await wait_for(f"{prefix}order-intents", lambda rows: {
        r["correlation_id"] for r in rows} >= set(corrs.values()), within=60)
    fills = await wait_for(f"{prefix}fills", lambda rows: {
        r["correlation_id"] for r in rows if r["leg"] == "entry"} >= set(corrs.values()),
        within=60)
    by_symbol = {r["symbol"]: r for r in intents}
    filled = {r["symbol"]: r for r in fills if r["leg"] == "entry"}
    for symbol in signals:
        intent, fill = by_symbol[symbol], filled[symbol]
        sizing = intent["sizing"]
        print(f"\noanda end to end: {symbol} {intent['side']} {intent['quantity']} units "
              f"(risk {sizing['risk_amount']} USD, value {sizing['position_value']} USD, "
              f"bound by {sizing['bound_by']}); filled {fill['quantity']} @ {fill['price']}")
        assert Decimal(fill["quantity"]) == Decimal(intent["quantity"])
        assert Decimal(intent["quantity"]) > 0
    # Both bound by the position cap, 20% of 100,000 USD. EUR_USD: 20,000 / 1.085 = 18,433.
    # USD_JPY is quoted in JPY: a unit is worth 150 JPY x the venue's factor 0.0066666667 USD
    # (a hair above 1/150), so 20,000 units would be 20,000.0001 USD: 19,999.
    assert Decimal(by_symbol["EUR_USD"]["quantity"]) == 18433
    assert Decimal(by_symbol["USD_JPY"]["quantity"]) == 19999
