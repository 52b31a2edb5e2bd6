"""The order path under load, crashes and venue faults, on the real Kafka broker with the
simulator in its own process behind the IB adapter (ib_async over the TWS protocol).

Each test prints its figures (run with -s to see them)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jax_exec.kafka_local import LocalKafka
from jax_exec.ports import free_port_block
from tests.integration.harness import (
    BOOTSTRAP,
    ROOT,
    SimulatorProcess,
    WorkerProcess,
    events,
    publish,
)
from tests.integration.order_path import (
    ROOMY,
    Ledger,
    approval_id,
    approvals,
    ledger,
    publish_all,
    reference_prices,
    stack,
)

pytestmark = pytest.mark.integration

SYMBOLS = sorted(reference_prices())[:50]


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def cleanup() -> Iterator[list[SimulatorProcess | WorkerProcess]]:
    procs: list[SimulatorProcess | WorkerProcess] = []
    yield procs
    for proc in reversed(procs):
        proc.stop()


async def settle(prefix: str, sim: SimulatorProcess, ids: set[str], within: float,
                 worker: WorkerProcess | None = None, bootstrap: str = BOOTSTRAP) -> Ledger:
    """Wait until every approval has an outcome and every intent a submission outcome."""
    deadline = time.monotonic() + within
    book = await ledger(prefix, sim, ids, bootstrap)
    while time.monotonic() < deadline:
        if not book.undecided(ids) and not book.unsubmitted():
            return book
        await asyncio.sleep(1.0)
        book = await ledger(prefix, sim, ids, bootstrap)
    tail = worker.tail() if worker else ""
    raise AssertionError(f"not settled in {within}s: {len(book.undecided(ids))} undecided, "
                         f"{len(book.unsubmitted())} intents without a submission outcome\n{tail}")


def assert_exactly_once(book: Ledger, ids: set[str]) -> None:
    assert not book.undecided(ids)
    assert not book.doubled(), book.doubled()
    assert not book.unsubmitted()
    placed = {c for c, n in book.venue_orders.items() if c in book.intents}
    assert all(book.venue_orders[c] == 1 for c in placed), book.venue_orders.most_common(3)
    strays = set(book.venue_orders) - set(book.intents)
    assert not strays, f"venue orders without an intent: {sorted(strays)[:5]}"


async def test_a_burst_of_500_approvals_has_one_outcome_each(
        tmp_path: Path, prefix: str, cleanup: list) -> None:
    sim, worker = stack(tmp_path, prefix, env=ROOMY)
    cleanup += [sim, worker]
    worker.start()
    burst = approvals(500, SYMBOLS)
    ids = {approval_id(a) for a in burst}
    started = time.monotonic()
    await publish_all(f"{prefix}approvals", burst)
    book = await settle(prefix, sim, ids, within=240, worker=worker)
    took = time.monotonic() - started
    assert_exactly_once(book, ids)
    print(f"\nburst: 500 approvals over 50 symbols settled in {took:.1f}s; outcomes "
          f"{dict(book.reason_counts())}; {sum(book.venue_orders.values())} venue orders "
          f"for {len(book.intents)} intents")


@pytest.mark.parametrize(("limits", "allowed", "code"), [
    # Orders of 10% of equity: five fill half the cash account (its buying power stays ample)
    # and stay far inside gross exposure, so only the open-positions limit binds. At 20% the
    # five fills exhaust buying power (the sixth sizes to 0: POSITION_TOO_SMALL) and their
    # commissions push a fifth 20% order past 100% gross: right refusals, other reasons.
    ({"MAX_OPEN_POSITIONS": "5", "MAX_GROSS_EXPOSURE_PCT": "1", "MAX_POSITION_PCT": "0.1"},
     5, "MAX_OPEN_POSITIONS"),
    # Orders of 20% (MAX_POSITION_PCT's default): a third would bring gross to 60%.
    ({"MAX_OPEN_POSITIONS": "50", "MAX_GROSS_EXPOSURE_PCT": "0.5"}, 2, "MAX_GROSS_EXPOSURE"),
])
async def test_a_burst_that_breaches_a_limit_yields_exactly_what_it_allows(
        tmp_path: Path, prefix: str, cleanup: list, limits: dict[str, str], allowed: int,
        code: str) -> None:
    env = {"MAX_SYMBOL_EXPOSURE_PCT": "1", "MAX_GROUP_EXPOSURE_PCT": "1",
           "MAX_ORDERS_PER_MINUTE": "1000", **limits}
    sim, worker = stack(tmp_path, prefix, env=env)
    cleanup += [sim, worker]
    worker.start()
    burst = approvals(20, SYMBOLS[:20])
    ids = {approval_id(a) for a in burst}
    await publish_all(f"{prefix}approvals", burst)
    book = await settle(prefix, sim, ids, within=120, worker=worker)
    assert_exactly_once(book, ids)
    assert sum(book.venue_orders.values()) == allowed
    assert book.reason_counts() == {"intent": allowed, code: 20 - allowed}
    print(f"\nlimit burst: 20 approvals at once, {code}: {allowed} orders at the venue, "
          f"{20 - allowed} refused")


async def test_worker_killed_three_times_mid_flow(
        tmp_path: Path, prefix: str, cleanup: list) -> None:
    sim, worker = stack(tmp_path, prefix, env=ROOMY)
    cleanup += [sim, worker]
    worker.start()
    flow = approvals(1000, SYMBOLS)
    ids = {approval_id(a) for a in flow}
    rng = random.Random(8)
    started = time.monotonic()
    publisher = asyncio.create_task(_trickle(f"{prefix}approvals", flow, per_second=100))
    kills = []
    for _ in range(3):
        await asyncio.sleep(rng.uniform(1.5, 4.0))
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        kills.append(round(time.monotonic() - started, 1))
        worker.start()
    await publisher
    book = await settle(prefix, sim, ids, within=300, worker=worker)
    assert_exactly_once(book, ids)
    # ClickHouse: every Kafka record stored once, and every event id of the topics present.
    stored = await _wait_stored(worker, prefix, within=120)
    dup_records = worker.sql("SELECT topic, partition, offset, count() AS n FROM events "
                             "GROUP BY topic, partition, offset HAVING n > 1 LIMIT 5")
    assert dup_records == []
    print(f"\ncrash: 1000 approvals, worker SIGKILLed at {kills}s and restarted; settled in "
          f"{time.monotonic() - started:.1f}s; outcomes {dict(book.reason_counts())}; "
          f"{sum(book.venue_orders.values())} venue orders for {len(book.intents)} intents; "
          f"{stored} events in ClickHouse, none twice")


async def _wait_stored(worker: WorkerProcess, prefix: str, within: float) -> int:
    """Until ClickHouse holds every event id that is on the audited topics; how many."""
    wanted: set[str] = set()
    for topic in ("approvals", "order-intents", "orders", "fills", "rejections"):
        wanted |= {e["event_id"] for e in await events(f"{prefix}{topic}") if "event_id" in e}
    deadline = time.monotonic() + within
    while True:
        stored = {r["id"] for r in worker.sql("SELECT DISTINCT toString(event_id) AS id "
                                              "FROM events")}
        missing = wanted - stored
        if not missing:
            return len(wanted)
        assert time.monotonic() < deadline, f"{len(missing)} events not in ClickHouse"
        await asyncio.sleep(1.0)


async def _trickle(topic: str, values: list[dict], per_second: int) -> None:
    for i in range(0, len(values), per_second // 10):
        await publish_all(topic, values[i:i + per_second // 10])
        await asyncio.sleep(0.1)


async def test_venue_faults_place_every_order_exactly_once(
        tmp_path: Path, prefix: str, cleanup: list) -> None:
    sim, worker = stack(tmp_path, prefix, env=ROOMY,
                        sim_env={"SIM_TRANSIENT_ERROR_RATE": "0.2", "SIM_REJECT_SYMBOLS": "BAC"})
    cleanup += [sim, worker]
    worker.start()
    flow = approvals(60, [s for s in SYMBOLS[:31] if s != "BAC"]) + approvals(1, ["BAC"])
    ids = {approval_id(a) for a in flow}
    await publish_all(f"{prefix}approvals", flow[:30])
    await asyncio.sleep(1.0)
    sim.admin("/outage", {"seconds": 5})
    await publish_all(f"{prefix}approvals", flow[30:])
    book = await settle(prefix, sim, ids, within=240, worker=worker)
    assert_exactly_once(book, ids)
    placements = sim.admin("/placements")
    refused_intents = [i for i in book.intents.values() if i["symbol"] == "BAC"]
    assert len(refused_intents) == 1
    refused = placements[refused_intents[0]["client_order_id"]]
    # A permanent refusal is never retried: the venue said 201 once (an attempt the outage or a
    # transient 100 swallowed before the venue could judge it is retried, as it must be).
    assert refused["codes"].count("201") == 1, refused
    assert refused["accepted"] == 0, refused
    venue_refusals = [e for e in await events(f"{prefix}rejections")
                      if e["stage"] == "submission"]
    assert [(r["reason_code"], r["details"]["venue_code"]) for r in venue_refusals] == \
        [("VENUE_REJECTED", "201")], [r["message"] for r in venue_refusals]
    others = {c: p for c, p in placements.items()
              if not c.startswith(refused_intents[0]["client_order_id"])}  # BAC and its exits
    accepted = sum(p["accepted"] for c, p in others.items() if not c.endswith(("-tp", "-sl")))
    assert {c: p for c, p in others.items() if p["accepted"] != 1} == {}
    retried = sum(p["attempts"] - 1 for p in others.values())
    print(f"\nfaults: 20% transient errors + a 5 s outage: {accepted} orders placed once each, "
          f"{retried} transient refusals retried; BAC refused 201 after 1 attempt")


async def test_garbage_larger_than_a_dead_letter_copy_does_not_stop_the_flow(
        tmp_path: Path, prefix: str, cleanup: list) -> None:
    sim, worker = stack(tmp_path, prefix, env=ROOMY)
    cleanup += [sim, worker]
    worker.start()
    garbage = os.urandom(900_000)
    await publish(f"{prefix}signals", garbage)
    await publish(f"{prefix}approvals", garbage)
    good = approvals(1, ["AAPL"])
    await publish_all(f"{prefix}approvals", good)
    book = await settle(prefix, sim, {approval_id(good[0])}, within=60, worker=worker)
    assert book.reason_counts() == {"intent": 1}
    dead = [e for e in await events(f"{prefix}dead-letter")]
    assert {d["source_topic"] for d in dead} == {"signals", "approvals"}
    assert all(d["truncated"] and d["raw_size"] == 900_000 for d in dead)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test's own (it is stopped and started mid-run), sharing the jar cache
    of the project's broker."""
    kafka = LocalKafka(home=tmp_path / "kafka-home", port=free_port_block(2))
    cache = Path(os.environ.get("JAX_HOME", ROOT / ".local")) / "cache"
    kafka.home.mkdir(parents=True)
    if cache.exists():
        (kafka.home / "cache").symlink_to(cache.resolve())
    kafka.start(timeout=120)
    yield kafka
    kafka.stop()


async def test_a_kafka_restart_mid_run_loses_and_doubles_nothing(
        tmp_path: Path, prefix: str, cleanup: list, own_broker: LocalKafka) -> None:
    bootstrap = own_broker.bootstrap
    sim, worker = stack(tmp_path, prefix, env={**ROOMY, "KAFKA_BOOTSTRAP": bootstrap})
    cleanup += [sim, worker]
    worker.start()
    flow = approvals(200, SYMBOLS)
    ids = {approval_id(a) for a in flow}
    await publish_all(f"{prefix}approvals", flow[:100], bootstrap)
    await asyncio.sleep(1.0)
    down = time.monotonic()
    await asyncio.to_thread(own_broker.stop)
    await asyncio.sleep(3.0)
    await asyncio.to_thread(own_broker.start, timeout=120)
    back = time.monotonic() - down
    await publish_all(f"{prefix}approvals", flow[100:], bootstrap)
    book = await settle(prefix, sim, ids, within=240, worker=worker, bootstrap=bootstrap)
    assert_exactly_once(book, ids)
    assert worker.proc is not None
    assert worker.proc.poll() is None
    print(f"\nkafka restart: broker down {back:.1f}s mid-run; 200 approvals, outcomes "
          f"{dict(book.reason_counts())}; {sum(book.venue_orders.values())} venue orders for "
          f"{len(book.intents)} intents, none twice")
