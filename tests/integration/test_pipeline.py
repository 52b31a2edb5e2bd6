"""The pipeline end to end on the real Kafka broker, embedded ClickHouse and the simulator:
a worker subprocess, a plain aiokafka producer, assertions on topics, venue and audit store."""

from __future__ import annotations

import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from jax_exec.web import ask_worker
from schemas.ids import client_order_id, signal_event_id
from tests.integration.harness import (
    SEED_SIGNAL,
    WorkerProcess,
    approval_for,
    events,
    publish,
    signal_with,
    wait_for,
    wait_sql,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def worker(tmp_path: Path, prefix: str) -> Any:
    proc = WorkerProcess(tmp_path / "home", prefix).start()
    yield proc
    proc.stop()


def venue_orders(home: Path, coid: str) -> list[str]:
    """Orders at the venue for one signal, read from the simulator's own state file."""
    db = sqlite3.connect(f"file:{home / 'sim' / 'sim.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT client_order_id FROM orders WHERE client_order_id LIKE ?",
                          (f"{coid}%",)).fetchall()
    finally:
        db.close()
    return sorted(r[0] for r in rows)


def for_signal(rows: list[dict[str, Any]], corr: uuid.UUID) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("correlation_id") == str(corr)]


async def test_seed_signal_and_approval_become_one_order_one_fill_and_a_full_audit(
        worker: WorkerProcess, prefix: str) -> None:
    corr = signal_event_id(SEED_SIGNAL["id"])
    coid = client_order_id(corr)
    await publish(f"{prefix}signals", SEED_SIGNAL, key=str(corr).encode())
    await publish(f"{prefix}approvals", approval_for(SEED_SIGNAL), key=str(corr).encode())

    fills = await wait_for(f"{prefix}fills", lambda rows: len(for_signal(rows, corr)) >= 1)
    await wait_for(f"{prefix}orders", lambda rows: any(
        r["status"] == "filled" and r["client_order_id"] == coid for r in rows))
    fill, = for_signal(fills, corr)
    assert (fill["symbol"], fill["side"]) == ("AAPL", "BUY")
    assert (Decimal(fill["quantity"]), Decimal(fill["price"])) == (133, Decimal("150.00"))
    intents = for_signal(await events(f"{prefix}order-intents"), corr)
    assert len(intents) == 1
    assert intents[0]["sizing"]["bound_by"] == "max_position_pct"
    assert Decimal(intents[0]["sizing"]["risk_amount"]) == Decimal("665.00")
    assert Decimal(intents[0]["quantity"]) == 133
    # One entry order at the venue (plus its two bracket exits), never a second entry.
    assert venue_orders(worker.home, coid) == [coid, f"{coid}-sl", f"{coid}-tp"]

    chain = wait_sql(worker, (
        "SELECT topic, event_type, count() AS n FROM events "
        f"WHERE correlation_id = '{corr}' GROUP BY topic, event_type ORDER BY topic"),
        lambda rows: {r["topic"] for r in rows} >= {"signals", "approvals", "order-intents",
                                                   "orders", "fills"})
    by_topic = {r["topic"]: int(r["n"]) for r in chain}
    assert by_topic["signals"] == 1
    assert by_topic["approvals"] == 1
    assert by_topic["order-intents"] == 1
    assert by_topic["fills"] == 1
    assert by_topic["orders"] >= 2  # submitted, filled, exit legs accepted
    assert "rejections" not in by_topic
    assert "dead-letter" not in by_topic


@pytest.mark.parametrize("topic", ["signals", "approvals", "order-intents", "orders"])
async def test_malformed_input_is_dead_lettered_and_the_next_message_flows(
        worker: WorkerProcess, prefix: str, topic: str) -> None:
    garbage = b"\xff\xfenot json at all"
    await publish(f"{prefix}{topic}", garbage)
    dead = await wait_for(f"{prefix}dead-letter", lambda rows: any(
        r["source_topic"] == topic for r in rows))
    record = next(r for r in dead if r["source_topic"] == topic)
    assert "not valid UTF-8 JSON" in record["error"]
    assert record["offset"] == 0

    good = signal_with()
    corr = signal_event_id(good["id"])
    await publish(f"{prefix}signals", good)
    await publish(f"{prefix}approvals", approval_for(good))
    await wait_for(f"{prefix}fills", lambda rows: len(for_signal(rows, corr)) == 1)
    stored = wait_sql(worker, f"SELECT event_type FROM events WHERE topic = '{topic}' "
                              f"AND partition = {record['partition']} AND offset = 0",
                      lambda rows: len(rows) == 1)
    assert stored[0]["event_type"] == "undecodable"


async def test_a_signal_that_breaks_a_rule_is_rejected_with_its_reason(
        worker: WorkerProcess, prefix: str) -> None:
    missing = {k: v for k, v in signal_with().items() if k != "stop_loss"}
    wrong_side = signal_with(stop_loss=155.00)
    for bad in (missing, wrong_side):
        await publish(f"{prefix}signals", bad)
    rejections = await wait_for(f"{prefix}rejections", lambda rows: len(rows) >= 2)
    codes = {r["signal_id"]: r for r in rejections}
    assert codes[missing["id"]]["reason_code"] == "MISSING_FIELD"
    assert "stop_loss" in codes[missing["id"]]["message"]
    assert codes[wrong_side["id"]]["reason_code"] == "STOP_WRONG_SIDE"
    assert codes[wrong_side["id"]]["stage"] == "validation"

    good = signal_with()
    await publish(f"{prefix}signals", good)
    await publish(f"{prefix}approvals", approval_for(good))
    corr = signal_event_id(good["id"])
    await wait_for(f"{prefix}fills", lambda rows: len(for_signal(rows, corr)) == 1)


async def test_a_rejected_decision_places_nothing_and_is_on_record(
        worker: WorkerProcess, prefix: str) -> None:
    sig = signal_with()
    corr = signal_event_id(sig["id"])
    await publish(f"{prefix}signals", sig)
    await publish(f"{prefix}approvals", approval_for(sig, decision="rejected", by="bob",
                                                     reason="earnings tomorrow"))
    rejections = await wait_for(f"{prefix}rejections",
                                lambda rows: len(for_signal(rows, corr)) == 1)
    rejection, = for_signal(rejections, corr)
    assert rejection["reason_code"] == "SIGNAL_REJECTED_BY_HUMAN"
    assert rejection["details"]["approved_by"] == "bob"
    assert for_signal(await events(f"{prefix}order-intents"), corr) == []
    assert venue_orders(worker.home, client_order_id(corr)) == []


async def test_a_restarted_worker_resumes_without_a_second_order(
        tmp_path: Path, prefix: str) -> None:
    home = tmp_path / "home"
    first = signal_with()
    corr = signal_event_id(first["id"])
    worker = WorkerProcess(home, prefix).start()
    try:
        await publish(f"{prefix}signals", first)
        await publish(f"{prefix}approvals", approval_for(first))
        await wait_for(f"{prefix}fills", lambda rows: len(for_signal(rows, corr)) == 1)
    finally:
        assert worker.stop() == 0, worker.tail()

    worker = WorkerProcess(home, prefix).start()
    try:
        second = signal_with(symbol="MSFT", entry_price=400.00, stop_loss=390.00,
                             take_profit=420.00)
        corr2 = signal_event_id(second["id"])
        await publish(f"{prefix}signals", second)
        await publish(f"{prefix}approvals", approval_for(second))
        await wait_for(f"{prefix}order-intents", lambda rows: len(for_signal(rows, corr2)) == 1)
        await wait_for(f"{prefix}orders", lambda rows: len(for_signal(rows, corr2)) >= 2)
        # The first approval was finished before the stop: not decided again, not re-placed.
        assert len(for_signal(await events(f"{prefix}order-intents"), corr)) == 1
        assert for_signal(await events(f"{prefix}rejections"), corr) == []
        assert len(for_signal(await events(f"{prefix}fills"), corr)) == 1
        coid = client_order_id(corr)
        assert venue_orders(home, coid) == [coid, f"{coid}-sl", f"{coid}-tp"]
    finally:
        worker.stop()


async def test_stages_run_as_separate_processes_and_trace_tells_the_story(
        tmp_path: Path, prefix: str) -> None:
    home = tmp_path / "home"
    trading = WorkerProcess(home, prefix, args=[
        "--stage", "validation", "--stage", "sizing", "--stage", "submission",
        "--stage", "reconciliation"]).start()
    audit = WorkerProcess(home, prefix, args=["--stage", "audit"]).start()
    try:
        sig = signal_with()
        corr = signal_event_id(sig["id"])
        await publish(f"{prefix}signals", sig)
        await publish(f"{prefix}approvals", approval_for(sig, by="carol"))
        await wait_for(f"{prefix}fills", lambda rows: len(for_signal(rows, corr)) == 1)
        wait_sql(audit, f"SELECT count() AS n FROM events WHERE correlation_id = '{corr}' "
                        "AND topic = 'fills'", lambda rows: int(rows[0]["n"]) == 1)

        every = ask_worker(f"/trace/{corr}", audit.web_port)["steps"]
        ledger = [s["payload"]["status"] for s in every if s["event_type"] == "signal_record"]
        assert ledger == ["seen", "decided"]  # the signal ledger's two entries
        steps = [s for s in every if s["event_type"] != "signal_record"]
        kinds = [s["event_type"] for s in steps]
        assert kinds[:3] == ["signal", "approval", "order_intent"]
        assert kinds.index("fill") > kinds.index("order_intent")
        assert steps[1]["payload"]["approved_by"] == "carol"
        health = ask_worker("/health", audit.web_port)
        assert health["audit"]["rows_written"] >= len(every)
        assert health["audit"]["last_error"] is None
    finally:
        audit.stop()
        trading.stop()
