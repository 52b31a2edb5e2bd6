"""The kill switch on the real broker, a `jax-exec sim` process and a worker over the IB adapter:
HALT (latched through restarts, measured), REDUCE_ONLY, FLATTEN, and the automatic trips.

Needs the stage hooks (agents/control.py: TradingGate in sizing and submission, the control
stage in build_app / build_worker). Each test prints its figures (run with -s)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.control import TradingGate, liquidation_client_order_id
from schemas.events import Alert, AlertKind, ControlAction, ControlCommand
from tests.integration.harness import (
    BOOTSTRAP,
    ROOT,
    SimulatorProcess,
    WorkerProcess,
    approval_for,
    events,
    publish,
    signal_with,
    wait_for,
    wait_sql,
)
from tests.integration.order_path import (
    ROOMY,
    approval_id,
    publish_all,
    reference_prices,
    signal_at,
    stack,
)

pytestmark = pytest.mark.integration
PRICES = reference_prices()
CENT = Decimal("0.01")
# Room for a few small orders; GTC so an order resting in a test does not expire.
ROOM = {**ROOMY, "MAX_POSITION_PCT": "0.02", "TIME_IN_FORCE": "GTC"}


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def cleanup() -> Iterator[list[SimulatorProcess | WorkerProcess]]:
    procs: list[SimulatorProcess | WorkerProcess] = []
    yield procs
    for proc in reversed(procs):
        proc.stop()


def command(action: ControlAction, by: str = "alice", reason: str = "test",
            **scope: Any) -> ControlCommand:
    return ControlCommand.model_validate({"command": action, "issued_by": by, "reason": reason,
                                          **scope})


async def send(prefix: str, cmd: ControlCommand) -> float:
    started = time.time()
    await publish(f"{prefix}control", cmd.model_dump(mode="json"), key=cmd.kafka_key)
    return started


async def state_of(prefix: str, cmd: ControlCommand, mode: str) -> dict[str, Any]:
    rows = await wait_for(f"{prefix}trading-state", lambda rs: any(
        r["causation_id"] == str(cmd.event_id) and r["mode"] == mode for r in rs), within=120)
    return [r for r in rows if r["causation_id"] == str(cmd.event_id) and r["mode"] == mode][-1]


def sig(symbol: str, side: str, entry: Decimal, stop: Decimal, tp: Decimal) -> dict[str, Any]:
    return signal_with(symbol=symbol, signal_type=side, entry_price=str(entry.quantize(CENT)),
                       stop_loss=str(stop.quantize(CENT)), take_profit=str(tp.quantize(CENT)),
                       strategy_id="kill")


def short(symbol: str) -> dict[str, Any]:
    """A SELL at the reference price: stop 2% above, take-profit 4% below."""
    p = PRICES[symbol]
    return sig(symbol, "SELL", p, p * Decimal("1.02"), p * Decimal("0.96"))


def resting(symbol: str) -> dict[str, Any]:
    """A BUY limit 10% under the market: it rests."""
    p = PRICES[symbol] * Decimal("0.9")
    return sig(symbol, "BUY", p, p * Decimal("0.98"), p * Decimal("1.04"))


def wrong_side(symbol: str) -> dict[str, Any]:
    """A BUY with its stop above the entry: refused by the rules."""
    p = PRICES[symbol]
    return sig(symbol, "BUY", p, p * Decimal("1.05"), p * Decimal("1.10"))


async def outcomes(prefix: str, ids: set[str], within: float = 90) -> dict[str, dict[str, Any]]:
    def decided(rows: list[dict[str, Any]]) -> bool:
        return ids <= {r.get("causation_id") for r in rows}

    await wait_for(f"{prefix}order-intents", lambda _: True, within=1)
    deadline = time.monotonic() + within
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for topic in ("order-intents", "rejections"):
            for row in await events(f"{prefix}{topic}"):
                if row.get("causation_id") in ids and row.get("stage") != "submission":
                    found.setdefault(row["causation_id"], row)
        if ids <= found.keys():
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"undecided: {ids - found.keys()}")


async def submission_outcome(prefix: str, coid: str, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for row in await events(f"{prefix}rejections"):
            if row.get("details", {}).get("client_order_id") == coid:
                return row
        for row in await events(f"{prefix}orders"):
            if row["client_order_id"] == coid:
                return row
        await asyncio.sleep(0.5)
    raise AssertionError(f"no submission outcome for {coid}")


def venue_orders(sim: SimulatorProcess) -> list[dict[str, Any]]:
    return list(sim.admin("/orders")["orders"])


def account_state(sim: SimulatorProcess) -> dict[str, Any]:
    return dict(next(iter(sim.admin("/state")["accounts"].values())))


async def test_halt_refuses_everything_survives_restarts_and_is_audited(
        tmp_path: Path, prefix: str, cleanup: list) -> None:
    sim, worker = stack(tmp_path, prefix, env=ROOM)
    cleanup += [sim, worker]
    worker.start()
    # Another worker's view: a gate in this process, started like a worker's.
    gate = TradingGate(BOOTSTRAP, lambda t: f"{prefix}{t}")
    await gate.start()
    try:
        halt = command(ControlAction.HALT, reason="unusual fills, investigating")
        t0 = await send(prefix, halt)
        await asyncio.wait_for(gate.changed.wait(), 30)
        gate_seconds = time.time() - t0
    finally:
        await gate.stop()
    before = len(venue_orders(sim))
    burst = [approval_for(signal_at(s, PRICES[s])) for s in ("AAPL", "MSFT", "JPM", "KO", "PEP")]
    ids = {approval_id(a) for a in burst}
    await publish_all(f"{prefix}approvals", burst)
    found = await outcomes(prefix, ids)
    assert {r["reason_code"] for r in found.values()} == {"HALTED"}
    first_refusal = min(r["occurred_at"] for r in found.values())
    assert len(venue_orders(sim)) == before == 0
    state = await state_of(prefix, halt, "halted")
    assert state["issued_by"] == "alice"
    rows = wait_sql(worker, f"SELECT count() AS n FROM rejections FINAL WHERE reason_code = "
                            f"'HALTED' AND subject_event_id IN "
                            f"({','.join(repr(i) for i in ids)})",
                    lambda rs: bool(rs) and int(rs[0]["n"]) == len(ids))
    audited = wait_sql(worker, "SELECT JSONExtractString(payload, 'issued_by') AS by, "
                               "JSONExtractString(payload, 'reason') AS why FROM events "
                               "WHERE event_type = 'trading_state'", lambda rs: len(rs) >= 1)
    assert audited[0] == {"by": "alice", "why": "unusual fills, investigating"}
    print(f"\nHALT published -> a second worker's gate refusing: {gate_seconds * 1000:.0f} ms; "
          f"{len(ids)} approvals refused HALTED ({rows[0]['n']} in ClickHouse), "
          f"first refusal at {first_refusal}, 0 venue orders")

    # Restart the worker and the simulator: still halted.
    worker.stop()
    sim.stop()
    sim2 = SimulatorProcess(tmp_path / "sim")
    sim2.wait_ready()
    worker2 = WorkerProcess(tmp_path / "worker", prefix, env={
        "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim2.port), "IB_CLIENT_ID": "9",
        "LOG_LEVEL": "warning", **ROOM})
    cleanup += [sim2, worker2]
    worker2.start()
    late = approval_for(signal_at("AAPL", PRICES["AAPL"]))
    await publish_all(f"{prefix}approvals", [late])
    found = await outcomes(prefix, {approval_id(late)})
    assert found[approval_id(late)]["reason_code"] == "HALTED"
    assert venue_orders(sim2) == []
    # RESUME: trading again.
    await send(prefix, resume := command(ControlAction.RESUME, reason="all clear"))
    await state_of(prefix, resume, "active")
    again = approval_for(signal_at("MSFT", PRICES["MSFT"]))
    await publish_all(f"{prefix}approvals", [again])
    found = await outcomes(prefix, {approval_id(again)})
    assert found[approval_id(again)]["event_type"] == "order_intent", json.dumps(found)[:1500]
    await wait_for(f"{prefix}orders", lambda rs: any(
        r["client_order_id"] == found[approval_id(again)]["client_order_id"] for r in rs))
    print("after restarts: still HALTED; after RESUME: the next approval placed")


async def test_reduce_only_refuses_opening_and_lets_reducing_through(
        tmp_path: Path, prefix: str, cleanup: list) -> None:
    sim, worker = stack(tmp_path, prefix, env=ROOM)
    cleanup += [sim, worker]
    worker.start()
    opening = approval_for(signal_at("AAPL", PRICES["AAPL"]))
    await publish_all(f"{prefix}approvals", [opening])
    intent = (await outcomes(prefix, {approval_id(opening)}))[approval_id(opening)]
    held = Decimal(intent["quantity"])
    await wait_for(f"{prefix}fills", lambda rs: any(
        r["client_order_id"] == intent["client_order_id"] for r in rs))
    await send(prefix, ro := command(ControlAction.REDUCE_ONLY, reason="unwind only"))
    await state_of(prefix, ro, "reduce_only")
    adding = approval_for(signal_at("AAPL", PRICES["AAPL"]))
    other = approval_for(signal_at("MSFT", PRICES["MSFT"]))
    reducing = approval_for(short("AAPL"))
    await publish_all(f"{prefix}approvals", [adding, other, reducing])
    found = await outcomes(prefix, {approval_id(a) for a in (adding, other, reducing)})
    assert found[approval_id(adding)]["reason_code"] == "REDUCE_ONLY"
    assert found[approval_id(other)]["reason_code"] == "REDUCE_ONLY"
    reduced = found[approval_id(reducing)]
    assert reduced["event_type"] == "order_intent", reduced
    assert Decimal(reduced["quantity"]) <= held
    placed = await submission_outcome(prefix, reduced["client_order_id"])
    assert placed["event_type"] == "order", placed
    print(f"\nREDUCE_ONLY: long {held} AAPL; BUY AAPL and BUY MSFT refused "
          f"({found[approval_id(adding)]['message']}); SELL {reduced['quantity']} AAPL placed")


def cli(prefix: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"JAX_HOME": str(home), "TOPIC_PREFIX": prefix, "KAFKA_BOOTSTRAP": BOOTSTRAP,
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "jax_exec", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


async def test_flatten_leaves_nothing_at_the_venue(tmp_path: Path, prefix: str,
                                                   cleanup: list) -> None:
    sim, worker = stack(tmp_path, prefix, env=ROOM)
    cleanup += [sim, worker]
    worker.start()
    book = [approval_for(signal_at("AAPL", PRICES["AAPL"])),  # long, bracket exits working
            approval_for(short("MSFT")),  # short, bracket exits working
            approval_for(resting("JPM")), approval_for(resting("KO"))]  # open entries
    ids = {approval_id(a) for a in book}
    await publish_all(f"{prefix}approvals", book)
    found = await outcomes(prefix, ids)
    assert all(r["event_type"] == "order_intent" for r in found.values()), found
    await wait_for(f"{prefix}fills", lambda rs: len({r["symbol"] for r in rs}) >= 2)
    before = account_state(sim)
    assert {p["symbol"] for p in before["positions"]} == {"AAPL", "MSFT"}
    assert len(before["open_orders"]) >= 6  # 2 resting entries + 2 x (tp, sl)
    started = time.monotonic()
    done = cli(prefix, tmp_path / "cli", "flatten", "--by", "alice", "--reason",
               "emergency drill", "--yes")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    after = account_state(sim)
    assert after["open_orders"] == []
    assert after["positions"] == []
    rows = await events(f"{prefix}trading-state")
    final = [r for r in rows if r["command"] == "flatten"][-1]
    assert final["mode"] == "halted"
    assert final["details"]["complete"] == "true"
    cmd_id = uuid.UUID(final["causation_id"])
    liquidations = {liquidation_client_order_id(cmd_id, s) for s in ("AAPL", "MSFT")}
    were_open = {o["client_order_id"] for o in before["open_orders"]}

    def settled(rs: list[dict[str, Any]]) -> bool:
        # the control stage publishes its own cancels; an exit its OCA sibling's cancel ended
        # is published by reconciliation, which may come after the liquidations' fills
        done = {r["client_order_id"]: r["status"] for r in rs
                if r["status"] in ("filled", "cancelled")}
        return (all(done.get(c) == "filled" for c in liquidations)
                and all(done.get(c) == "cancelled" for c in were_open))

    try:
        orders = await wait_for(f"{prefix}orders", settled, within=90.0)
    except AssertionError:  # say which order is missing what, and what the worker logged
        rs = await events(f"{prefix}orders")
        last = {c: [r["status"] for r in rs if r["client_order_id"] == c]
                for c in sorted(liquidations | were_open)}
        raise AssertionError(f"orders not settled in 90s (liquidations {sorted(liquidations)} "
                             f"to be filled, the rest cancelled): statuses per order {last}\n"
                             f"{worker.tail()}") from None
    cancelled = {r["client_order_id"] for r in orders if r["status"] == "cancelled"}
    assert were_open <= cancelled
    fills = await wait_for(f"{prefix}fills", lambda rs: liquidations <= {
        r["client_order_id"] for r in rs})
    state = cli(prefix, tmp_path / "cli", "state")
    print(f"\nFLATTEN: {len(before['open_orders'])} open orders cancelled, positions "
          f"{[(p['symbol'], p['quantity']) for p in before['positions']]} closed by "
          f"{sorted(liquidations)}; {len(fills)} fills on `fills`; CLI returned in "
          f"{seconds:.1f}s\n{done.stdout}\n{state.stdout}")
    assert "halted" in state.stdout


async def test_each_automatic_trip_fires_with_its_reason(tmp_path: Path, prefix: str,
                                                          cleanup: list) -> None:
    trips = {"TRIP_REJECTION_BURST": "3", "TRIP_REJECTION_BURST_SECONDS": "2",
             "TRIP_VENUE_FAILURES": "2", "TRIP_DAILY_LOSS_LIMIT": "20",
             "TRIP_DAILY_LOSS_ACTION": "flatten", "TRIP_DAILY_LOSS_INTERVAL_SECONDS": "0.5"}
    sim, worker = stack(tmp_path, prefix, env={**ROOM, **trips})
    cleanup += [sim, worker]
    worker.start()

    async def fired(trigger: str) -> dict[str, Any]:
        rows = await wait_for(f"{prefix}control", lambda rs: any(
            r["issued_by"] == f"auto:{trigger}" for r in rs), within=60)
        cmd = [r for r in rows if r["issued_by"] == f"auto:{trigger}"][-1]
        await state_of(prefix, ControlCommand.model_validate(cmd), "halted")
        print(f"auto:{trigger} -> {cmd['command']}: {cmd['reason']} {cmd['details']}")
        return cmd

    async def resume() -> None:
        await asyncio.sleep(2.5)  # past the burst window: one scenario's rejections only
        await send(prefix, r := command(ControlAction.RESUME, reason="trip test"))
        await state_of(prefix, r, "active")

    print()
    # 1. a burst of rejections: stops on the wrong side, refused by sizing
    bad = [approval_for(wrong_side("AAPL")) for _ in range(3)]
    await publish_all(f"{prefix}approvals", bad)
    burst = await fired("rejection_burst")
    assert burst["details"]["rejections"] == "3"
    await resume()
    # 2. a reconciliation mismatch (the reconciler's alert, scripted)
    alert = Alert.of(AlertKind.POSITION_MISMATCH, "reconciliation",
                     "DU0000001 AAPL: the venue holds 10, the pipeline's fills add up to 0",
                     "DU0000001", "AAPL", uuid.uuid4(), account_id="DU0000001", symbol="AAPL",
                     details={"venue_quantity": "10", "fills_quantity": "0",
                              "difference": "10"})
    await publish(f"{prefix}alerts", json.loads(alert.model_dump_json()))
    mismatch = await fired("reconciliation_mismatch")
    assert mismatch["details"]["difference"] == "10"
    await resume()
    # 3. consecutive venue failures (a submission stage's refusals, scripted)
    for _ in range(2):
        await publish(f"{prefix}rejections", {
            "event_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()),
            "stage": "submission", "reason_code": "VENUE_UNAVAILABLE",
            "message": "the venue stayed unavailable after 8 attempts"})
    failures = await fired("venue_failures")
    assert failures["details"]["consecutive"] == "2"


async def test_the_daily_loss_trip_flattens(tmp_path: Path, prefix: str, cleanup: list) -> None:
    trips = {"TRIP_DAILY_LOSS_LIMIT": "20", "TRIP_DAILY_LOSS_ACTION": "flatten",
             "TRIP_DAILY_LOSS_INTERVAL_SECONDS": "0.5"}
    sim, worker = stack(tmp_path, prefix, env={**ROOM, **trips})
    cleanup += [sim, worker]
    worker.start()
    rows = await wait_for(f"{prefix}control", lambda rs: True, within=1)
    assert rows == []
    # 4. the daily loss: a long position, then the price drops
    long_ = approval_for(signal_at("AAPL", PRICES["AAPL"]))
    await publish_all(f"{prefix}approvals", [long_])
    intent = (await outcomes(prefix, {approval_id(long_)}))[approval_id(long_)]
    assert intent["event_type"] == "order_intent", intent.get("message")
    placed = await submission_outcome(prefix, intent["client_order_id"])
    assert placed["event_type"] == "order", placed
    await wait_for(f"{prefix}fills", lambda rs: any(
        r["client_order_id"] == intent["client_order_id"] for r in rs))
    drop = (PRICES["AAPL"] * Decimal("0.985")).quantize(CENT)  # above the 2% stop
    sim.admin("/price", {"symbol": "AAPL", "price": str(drop)})
    rows = await wait_for(f"{prefix}control", lambda rs: any(
        r["issued_by"] == "auto:daily_loss" for r in rs), within=60)
    loss = rows[-1]
    print(f"\nauto:daily_loss -> {loss['command']}: {loss['reason']} {loss['details']}")
    assert loss["command"] == "flatten"
    assert Decimal(loss["details"]["pnl"]) <= -20
    final = await state_of(prefix, ControlCommand.model_validate(loss), "halted")
    assert final["details"]["complete"] == "true"
    assert account_state(sim)["positions"] == []
