"""Approvals that cannot be forged or replayed, end to end on the real broker: an upstream
producer that is NOT this project (Debian's openssl signs, jq canonicalizes, kcat publishes)
gets its approval executed; a replay (also after the order filled and closed), a tampered
field, an unsigned approval, an unknown key and an expired approval are each refused with
their reason code, place nothing, and are in ClickHouse; an intent slipped onto
`order-intents` without a valid approval is refused by the submission stage."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jax_exec.keys import add_public_key, generate_dev_keys, keyring_path
from schemas.ids import client_order_id, signal_event_id
from tests.integration.harness import (
    BOOTSTRAP,
    KEYRING,
    SimulatorProcess,
    WorkerProcess,
    approval_for,
    events,
    publish,
    signal_with,
    wait_for,
    wait_sql,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not all(shutil.which(t) for t in ("openssl", "kcat", "jq")),
                       reason="needs Debian's openssl, kcat and jq (make installs them)"),
]
DESK = "strategy-desk"


def run(cmd: str, cwd: Path) -> str:
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


class Producer:
    """An upstream system with its own Ed25519 key, signing with openssl, publishing with kcat."""

    def __init__(self, home: Path, prefix: str, key_id: str) -> None:
        self.home, self.prefix, self.key_id = home, prefix, key_id
        home.mkdir(parents=True, exist_ok=True)
        run("openssl genpkey -algorithm ed25519 -out producer.pem && "
            "openssl pkey -in producer.pem -pubout -out producer.pub.pem", home)

    @property
    def public_pem(self) -> str:
        return (self.home / "producer.pub.pem").read_text()

    def kcat(self, topic: str, path: Path, key: str) -> None:
        run(f"kcat -P -b {BOOTSTRAP} -t {self.prefix}{topic} -k {key} {path}", self.home)

    def signed(self, approval: dict[str, Any], name: str) -> Path:
        """The README recipe: canonical form by jq, signature by openssl, JSON by jq."""
        body = {**approval, "key_id": self.key_id, "algorithm": "ed25519"}
        (self.home / f"{name}.json").write_text(json.dumps(body))
        run(f"jq -jcS 'del(.signature)' {name}.json > {name}.canonical && "
            f"openssl pkeyutl -sign -rawin -inkey producer.pem -in {name}.canonical "
            f"-out {name}.sig && "
            f"jq -c --arg sig \"$(openssl base64 -A -in {name}.sig)\" '. + {{signature: $sig}}'"
            f" {name}.json | tr -d '\\n' > {name}.signed", self.home)
        return self.home / f"{name}.signed"

    def raw(self, body: dict[str, Any], name: str) -> Path:
        path = self.home / f"{name}.raw"
        path.write_text(json.dumps(body))
        return path


def decision(signal: dict[str, Any], **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"signal": signal, "decision": "approved", "approved_by": DESK,
            "decided_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expires_at": (now + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **extra}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[SimulatorProcess, WorkerProcess, Producer,
                                            Producer]]:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    keys = tmp_path / "keys-home"
    generate_dev_keys(keys, ())  # an empty keyring, then the test approvers' and the desk's
    shutil.copy(KEYRING, keyring_path(keys))
    producer = Producer(tmp_path / "producer", prefix, "desk-1")
    stranger = Producer(tmp_path / "stranger", prefix, "desk-2")  # never added to the keyring
    add_public_key(keyring_path(keys), producer.key_id, producer.public_pem, [DESK])
    sim = SimulatorProcess(tmp_path / "sim")
    sim.wait_ready()
    worker = WorkerProcess(tmp_path / "worker", prefix, env={
        "VENUE": "ib", "IB_HOST": "127.0.0.1", "IB_PORT": str(sim.port), "IB_CLIENT_ID": "5",
        "APPROVAL_KEYRING": str(keyring_path(keys))})
    try:
        worker.start()
        yield sim, worker, producer, stranger
    finally:
        worker.stop()
        sim.stop()


def outcome_codes(rows: list[dict[str, Any]], corr: uuid.UUID) -> list[str]:
    return [r["reason_code"] for r in rows if r.get("correlation_id") == str(corr)]


async def test_an_independent_producer_signs_and_every_forgery_is_refused(
        setup: tuple[SimulatorProcess, WorkerProcess, Producer, Producer]) -> None:
    sim, worker, producer, stranger = setup
    prefix = producer.prefix
    signal = signal_with()
    corr = signal_event_id(signal["id"])
    coid = client_order_id(corr)
    producer.kcat("signals", producer.raw(signal, "signal"), str(corr))
    good = producer.signed(decision(signal), "good")
    producer.kcat("approvals", good, "account")
    fills = await wait_for(f"{prefix}fills", lambda rows: any(
        r["client_order_id"] == coid for r in rows), within=60)
    assert {r["side"] for r in fills if r["client_order_id"] == coid} == {"BUY"}

    producer.kcat("approvals", good, "account")  # replayed while the position is open
    sim.admin("/price", {"symbol": "AAPL", "price": "160.00"})  # take-profit: closed
    await wait_for(f"{prefix}fills", lambda rows: any(
        r["client_order_id"] == f"{coid}-tp" for r in rows), within=60)
    producer.kcat("approvals", good, "account")  # replayed after it filled and closed

    others = {}  # each forgery on a fresh signal, so only its own flaw can refuse it
    for name in ("tampered", "unsigned", "unknown_key", "expired"):
        sig = signal_with()
        others[name] = signal_event_id(sig["id"])
        producer.kcat("signals", producer.raw(sig, f"signal-{name}"), str(others[name]))
        if name == "tampered":
            path = producer.signed(decision(sig), name)
            body = json.loads(path.read_text())
            body["signal"]["entry_price"] = 149  # more shares for the same risk
            path = producer.raw(body, name)
        elif name == "unsigned":
            path = producer.raw(decision(sig), name)
        elif name == "unknown_key":
            path = stranger.signed(decision(sig), name)
        else:
            past = datetime.now(UTC) - timedelta(minutes=1)
            path = producer.signed(decision(sig, expires_at=past.strftime("%Y-%m-%dT%H:%M:%SZ")),
                                   name)
        producer.kcat("approvals", path, "account")

    expected = {"tampered": "BAD_SIGNATURE", "unsigned": "UNSIGNED",
                "unknown_key": "UNKNOWN_KEY", "expired": "APPROVAL_EXPIRED"}
    rejections = await wait_for(f"{prefix}rejections", lambda rows: all(
        outcome_codes(rows, c) for c in others.values()) and len(
        outcome_codes(rows, corr)) >= 2, within=60)
    assert outcome_codes(rejections, corr) == ["ALREADY_DECIDED", "ALREADY_DECIDED"]
    for name, code in expected.items():
        assert outcome_codes(rejections, others[name]) == [code], name
    intents = await events(f"{prefix}order-intents")
    assert [i["correlation_id"] for i in intents] == [str(corr)]  # one order, ever
    venue = sim.admin("/orders")["orders"]
    assert {o["client_order_id"] for o in venue} == {coid, f"{coid}-tp", f"{coid}-sl"}

    ids = ", ".join(f"'{c}'" for c in [corr, *others.values()])
    rows = wait_sql(worker, "SELECT reason_code, count() AS n FROM rejections FINAL "
                            f"WHERE correlation_id IN ({ids}) GROUP BY reason_code",
                    lambda rows: sum(int(r["n"]) for r in rows) == 6)
    assert {r["reason_code"]: int(r["n"]) for r in rows} == {
        "ALREADY_DECIDED": 2, "BAD_SIGNATURE": 1, "UNSIGNED": 1, "UNKNOWN_KEY": 1,
        "APPROVAL_EXPIRED": 1}
    print(f"\nsigned approvals: 1 executed (openssl + jq + kcat), 2 replays and 4 forgeries "
          f"refused: {sorted(expected.values())}")


async def test_an_intent_without_a_valid_approval_is_refused_at_submission(
        setup: tuple[SimulatorProcess, WorkerProcess, Producer, Producer]) -> None:
    sim, _, producer, _ = setup
    prefix = producer.prefix
    signal = signal_with()
    corr = signal_event_id(signal["id"])
    await publish(f"{prefix}signals", signal)
    await publish(f"{prefix}approvals", approval_for(signal))
    intents = await wait_for(f"{prefix}order-intents", lambda rows: len(rows) == 1)
    forged = {**intents[0], "event_id": str(uuid.uuid4()), "symbol": "MSFT",
              "client_order_id": client_order_id(uuid.uuid4())}
    slipped = {**intents[0], "event_id": str(uuid.uuid4()), "approvals": [],
               "client_order_id": client_order_id(uuid.uuid4())}
    for intent in (forged, slipped):
        await publish(f"{prefix}order-intents", intent)
    rejections = await wait_for(f"{prefix}rejections", lambda rows: sum(
        r["reason_code"] == "INTENT_NOT_APPROVED" for r in rows) == 2)
    assert {r["stage"] for r in rejections} == {"submission"}
    await asyncio.sleep(1)
    venue = {o["client_order_id"] for o in sim.admin("/orders")["orders"]}
    assert forged["client_order_id"] not in venue
    assert slipped["client_order_id"] not in venue
    assert client_order_id(corr) in venue
