"""The physical floor, measured in the same run:

- a bare aiokafka chain with the pipeline's hops and record sizes: the load generator's record
  -> relay 1 (like sizing: consume, produce a ledger record and an intent, await both acks)
  -> relay 2 (like submission: consume, produce two order events, await) -> the consumer;
  both relays in one process of their own, one message at a time (the stages' concurrency 1);
- a bare ib_async round trip against the simulator: placeOrder (a single limit order, and a
  bracket of three) until the venue's orderStatus says Submitted, event-driven.

`python bench/floors.py relay BOOTSTRAP PREFIX LEDGER_BYTES INTENT_BYTES ORDER_BYTES` runs
the relays (the benchmark starts it as a subprocess)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FLOOR_TOPICS = ("floor-in", "floor-ledger", "floor-mid", "floor-out")


async def create_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"{prefix}{t}", 3, 1) for t in FLOOR_TOPICS])
    finally:
        await admin.close()


def padded(record_id: str, size: int) -> bytes:
    head = json.dumps({"id": record_id, "pad": ""}).encode()
    return json.dumps({"id": record_id, "pad": "x" * max(0, size - len(head))}).encode()


async def relay(bootstrap: str, prefix: str, ledger_b: int, intent_b: int, order_b: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(f"{prefix}floor-in", f"{prefix}floor-mid",
                                bootstrap_servers=bootstrap, group_id=f"{prefix}floor-relay",
                                auto_offset_reset="earliest", fetch_max_wait_ms=5)
    await producer.start()
    await consumer.start()
    print("ready", flush=True)
    try:
        async for msg in consumer:
            rid = json.loads(msg.value or b"{}")["id"]
            if msg.topic.endswith("floor-in"):
                outs = [("floor-ledger", ledger_b), ("floor-mid", intent_b)]
            else:
                outs = [("floor-out", order_b), ("floor-out", order_b)]
            acks = [await producer.send(f"{prefix}{t}", padded(rid, n), key=msg.key)
                    for t, n in outs]
            await asyncio.gather(*acks)
    finally:
        await consumer.stop()
        await producer.stop()


async def ib_round_trips(port: int, count: int, bracket: bool, gap: float = 0.25) -> list[float]:
    """Seconds from placeOrder to orderStatus Submitted (or Filled), one order at a time, spaced
    so that ib_async's pacing (45 messages/s) never delays one."""
    from ib_async import IB

    from brokers.ib import mapping
    from brokers.port import OrderRequest
    from schemas.events import OrderType, Side

    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=77, timeout=20)
    try:
        contract = mapping.stock(__import__("ib_async"), "AAPL")
        await asyncio.wait_for(ib.qualifyContractsAsync(contract), 20)
        account = ib.managedAccounts()[0]
        out: list[float] = []
        for i in range(count):
            req = OrderRequest(client_order_id=f"floor-{int(time.time() * 1e6)}-{i}",
                               symbol="AAPL", side=Side.BUY, quantity=Decimal(1),
                               order_type=OrderType.LMT, limit_price=Decimal("100.00"),
                               take_profit=Decimal("110.00") if bracket else None,
                               stop_loss=Decimal("90.00") if bracket else None)
            first = ib.client.getReqId()
            legs = mapping.build_orders(__import__("ib_async"), req, account, first)
            for _ in legs[1:]:
                ib.client.getReqId()
            started = time.perf_counter()
            trades = [ib.placeOrder(contract, o) for _, o in legs]
            entry = trades[0]
            while entry.orderStatus.status not in ("Submitted", "PreSubmitted", "Filled"):
                await asyncio.wait_for(entry.statusEvent, 10)
            out.append(time.perf_counter() - started)
            await asyncio.sleep(gap)
        for trade in ib.openTrades():
            ib.cancelOrder(trade.order)
        return out
    finally:
        ib.disconnect()


if __name__ == "__main__" and sys.argv[1:2] == ["relay"]:
    b, p, lb, ib_, ob = sys.argv[2:7]
    asyncio.run(relay(b, p, int(lb), int(ib_), int(ob)))
