"""A broker failure: a three-node KRaft cluster of this test's own (replication factor 3,
min.insync.replicas 2), the simulator and a worker on it; one broker is stopped mid-run, by
SIGTERM (controlled shutdown) and by SIGKILL; nothing is lost or doubled. Prints the figures."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from jax_exec.kafka_local import KafkaCluster, KafkaControlError
from jax_exec.ports import free_port_block
from jax_exec.topics_admin import topic_configs
from schemas.topics import TOPICS, topic_name
from tests.integration.harness import ROOT
from tests.integration.order_path import ROOMY, approval_id, approvals, publish_all, stack
from tests.integration.test_order_path import SYMBOLS, assert_exactly_once, settle

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    """The cluster under test. Its start-up is not what is tested: a start that fails (it
    did once in CI, on a loaded machine, with no cause in the log) is retried once on fresh
    ports and a fresh directory, and the first failure is kept as a warning."""
    cache = Path(os.environ.get("JAX_HOME", ROOT / ".local")) / "cache"
    for attempt in (1, 2):
        home = tmp_path / f"kafka-home-{attempt}"
        home.mkdir()
        if cache.exists():
            (home / "cache").symlink_to(cache.resolve())
        kafka = KafkaCluster(home=home, port=free_port_block(6), nodes=3)
        try:
            kafka.start(timeout=120)
            break
        except KafkaControlError as exc:
            kafka.stop(timeout=15)
            if attempt == 2:
                raise
            warnings.warn(f"cluster start failed, retrying once: {exc}", stacklevel=1)
    yield kafka
    kafka.stop(timeout=15)


async def _replicated_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic_name(s.name, prefix),
                                            num_partitions=s.partitions, replication_factor=3,
                                            topic_configs=topic_configs(s)) for s in TOPICS])
    finally:
        await admin.close()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_a_broker_killed_mid_run_loses_and_doubles_nothing(
        tmp_path: Path, cluster: KafkaCluster, how: signal.Signals) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    bootstrap = cluster.bootstrap
    await _replicated_topics(bootstrap, prefix)
    sim, worker = stack(tmp_path, prefix, env={**ROOMY, "KAFKA_BOOTSTRAP": bootstrap})
    try:
        worker.start(timeout=120)
        flow = approvals(100, SYMBOLS)
        ids = {approval_id(a) for a in flow}
        await publish_all(f"{prefix}approvals", flow[:50], bootstrap)
        await asyncio.sleep(1.0)
        victim = cluster.node(2)
        pid = victim.pid()
        assert pid is not None
        killed = time.monotonic()
        # SIGTERM: a controlled stop, leadership moves before it exits. SIGKILL: the broker
        # vanishes; the controller fences it once its session times out, then elects leaders.
        os.kill(pid, how)
        await publish_all(f"{prefix}approvals", flow[50:], bootstrap)
        book = await settle(prefix, sim, ids, within=240, worker=worker, bootstrap=bootstrap)
        settled = time.monotonic() - killed
        assert_exactly_once(book, ids)
        assert worker.proc is not None
        assert worker.proc.poll() is None
        print(f"\nbroker failure: 3-node KRaft cluster (RF 3, min ISR 2), node 2 stopped "
              f"({how.name}) "
              f"after 50 of 100 approvals; settled {settled:.1f}s after the kill; outcomes "
              f"{dict(book.reason_counts())}; {sum(book.venue_orders.values())} venue orders "
              f"for {len(book.intents)} intents, none twice")
    finally:
        worker.stop()
        sim.stop()
