"""Kafka enforces who may write where: a broker of this test's own with SASL/SCRAM and ACLs
(the shared PLAINTEXT broker stays untouched); principals refused and allowed by the broker
itself; a worker running over SASL as `worker` carries a signed approval to a fill."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import ClusterAuthorizationFailedError, TopicAuthorizationFailedError

from agents.decisions.reasons import ReasonCode
from agents.kafka_auth import KafkaAuth
from agents.readback import read_all
from jax_exec.kafka_security import (
    SecureLocalKafka,
    credentials_file,
    load_credentials,
    secure_topics,
)
from jax_exec.ports import free_port_block
from jax_exec.settings import Settings
from schemas.ids import client_order_id, signal_event_id
from tests.integration.harness import ROOT, WorkerProcess, approval_for, signal_with

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureLocalKafka]:
    home = tmp_path_factory.mktemp("sasl") / "kafka-home"
    home.mkdir()
    cache = Path(os.environ.get("JAX_HOME", ROOT / ".local")) / "cache"
    if cache.exists():
        (home / "cache").symlink_to(cache.resolve())
    kafka = SecureLocalKafka(home=home, port=free_port_block(2))
    started = time.monotonic()
    kafka.start(timeout=120)
    print(f"\nsecure broker (SASL/SCRAM, StandardAuthorizer) up in "
          f"{time.monotonic() - started:.1f}s on {kafka.bootstrap}")
    yield kafka
    kafka.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}-"


def app_id(prefix: str) -> str:
    return f"jax-test-{prefix.rstrip('-')}"  # as tests.integration.harness.WorkerProcess


@pytest.fixture
def acls(secure_broker: SecureLocalKafka, prefix: str) -> int:
    """This test's topics and ACLs, made by the admin principal."""
    settings = Settings(jax_home=secure_broker.home, kafka_bootstrap=secure_broker.bootstrap,
                        topic_prefix=prefix, app_id=app_id(prefix))
    started = time.monotonic()
    _, count = asyncio.run(secure_topics(settings))
    print(f"\n{count} ACLs created and served by the authorizer in "
          f"{time.monotonic() - started:.1f}s")
    return count


def auth(kafka: SecureLocalKafka, principal: str) -> KafkaAuth:
    return load_credentials(credentials_file(kafka.home, principal))


async def produce(kafka: SecureLocalKafka, principal: str, topic: str, value: bytes,
                  key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all",
                                enable_idempotence=True, request_timeout_ms=10000,
                                **auth(kafka, principal).aiokafka_kwargs())
    try:
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), 20)
    finally:
        await producer.stop()


async def read(kafka: SecureLocalKafka, principal: str, topic: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    await read_all(kafka.bootstrap, topic, rows.append, auth(kafka, principal))
    return rows


async def wait_rows(kafka: SecureLocalKafka, topic: str, accept: Any, within: float = 45.0
                    ) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = await read(kafka, "audit", topic)
        if accept(rows):
            return rows
        await asyncio.sleep(0.5)
    raise AssertionError(f"{topic}: not met in {within}s; saw {json.dumps(rows)[:2000]}")


async def test_only_the_sizing_principal_may_write_order_intents(
        secure_broker: SecureLocalKafka, prefix: str, acls: int) -> None:
    await produce(secure_broker, "upstream", f"{prefix}approvals", b"{}")
    await produce(secure_broker, "upstream", f"{prefix}signals", b"{}")
    for principal in ("upstream", "submission", "reconciliation", "operator"):
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(secure_broker, principal, f"{prefix}order-intents", b"{}")
    # audit may write nowhere: refused already when its producer asks for a producer id
    with pytest.raises(ClusterAuthorizationFailedError):
        await produce(secure_broker, "audit", f"{prefix}order-intents", b"{}")
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(secure_broker, "upstream", f"{prefix}fills", b"{}")
    await produce(secure_broker, "sizing", f"{prefix}order-intents", b"{}")
    await produce(secure_broker, "operator", f"{prefix}control", b"{}")
    intents = await read(secure_broker, "audit", f"{prefix}order-intents")
    assert len(intents) == 1  # the sizing stage's; none of the refused writes landed


async def test_a_worker_over_sasl_executes_a_signed_approval_and_refuses_a_slipped_intent(
        secure_broker: SecureLocalKafka, prefix: str, acls: int, tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path / "home", prefix, env={
        "KAFKA_BOOTSTRAP": secure_broker.bootstrap, "VENUE": "sim",
        "KAFKA_CREDENTIALS_FILE": str(credentials_file(secure_broker.home, "worker"))})
    started = time.monotonic()
    worker.start(timeout=120)
    try:
        print(f"\nworker over SASL as `worker` ready in {time.monotonic() - started:.1f}s")
        signal = signal_with()
        corr = signal_event_id(signal["id"])
        key = str(corr).encode()
        t0 = time.monotonic()
        await produce(secure_broker, "upstream", f"{prefix}signals", json.dumps(signal).encode(),
                      key)
        await produce(secure_broker, "upstream", f"{prefix}approvals",
                      json.dumps(approval_for(signal)).encode(), key)
        fills = await wait_rows(secure_broker, f"{prefix}fills", lambda rows: any(
            r.get("correlation_id") == str(corr) for r in rows))
        print(f"signed approval -> fill over SASL in {time.monotonic() - t0:.1f}s")
        fill = next(r for r in fills if r["correlation_id"] == str(corr))
        assert (fill["symbol"], fill["side"]) == ("AAPL", "BUY")

        # With the sizing stage's own credentials the broker accepts an intent; the
        # submission stage still refuses one that carries no valid approval.
        intent = next(r for r in await read(secure_broker, "audit", f"{prefix}order-intents")
                      if r["correlation_id"] == str(corr))
        forged_signal = str(uuid.uuid4())
        forged_corr = signal_event_id(forged_signal)
        forged = {**intent, "event_id": str(uuid.uuid4()), "correlation_id": str(forged_corr),
                  "signal_id": forged_signal, "client_order_id": client_order_id(forged_corr),
                  "approvals": []}
        await produce(secure_broker, "sizing", f"{prefix}order-intents",
                      json.dumps(forged).encode(), str(forged_corr).encode())
        rejections = await wait_rows(secure_broker, f"{prefix}rejections", lambda rows: any(
            r.get("correlation_id") == str(forged_corr) for r in rows))
        refusal = next(r for r in rejections if r["correlation_id"] == str(forged_corr))
        assert refusal["reason_code"] == ReasonCode.INTENT_NOT_APPROVED.value
        orders = await read(secure_broker, "audit", f"{prefix}orders")
        assert not [o for o in orders if o.get("correlation_id") == str(forged_corr)]
    finally:
        worker.stop()
