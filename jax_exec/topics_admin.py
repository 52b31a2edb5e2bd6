"""Create the declared topics (schemas.topics.TOPICS) with their partitions and retention."""

from __future__ import annotations

import contextlib
import os

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from agents.kafka_auth import NO_AUTH, KafkaAuth
from schemas.topics import TOPICS, TopicSpec, topic_name


async def ensure_topics(bootstrap: str, prefix: str = "", auth: KafkaAuth = NO_AUTH) -> list[str]:
    """Create missing topics, grow partition counts that fell short; return what was created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000,
                                **auth.aiokafka_kwargs())
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(60), wait=wait_exponential(max=3),
        retry=retry_if_exception_type(Exception), reraise=True,
    ):
        with attempt:
            await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=topic_name(spec.name, prefix),
                num_partitions=spec.partitions,
                replication_factor=replication_factor(),
                topic_configs=topic_configs(spec),
            )
            for spec in TOPICS
            if topic_name(spec.name, prefix) not in existing
        ]
        if wanted:
            # A concurrent starter may have created them: the goal is met either way.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
        await _grow_partitions(admin, prefix, existing)
        await _await_leaders(admin, [topic_name(s.name, prefix) for s in TOPICS])
        return [t.name for t in wanted]
    finally:
        await admin.close()


READY_WITHIN_SECONDS = 60.0
TOPIC_AUTHORIZATION_FAILED = 29  # Kafka's error code: a stage's principal may not see a topic


async def _await_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Return once every topic answers metadata with a leader for each partition: a topic
    just created is not readable until then, and a stage reads some at start."""
    pending: list[str] = names
    async for attempt in AsyncRetrying(stop=stop_after_delay(READY_WITHIN_SECONDS),
                                       wait=wait_exponential(multiplier=0.1, max=2),
                                       retry=retry_if_exception_type(TopicsNotReady),
                                       reraise=True):
        with attempt:
            described = await admin.describe_topics(pending)
            pending = sorted(
                d["topic"] for d in described
                if d["error_code"] != TOPIC_AUTHORIZATION_FAILED  # not this principal's to read
                and (d["error_code"] != 0 or not d["partitions"]
                     or any(p["error_code"] != 0 or p["leader"] < 0 for p in d["partitions"])))
            if pending:
                raise TopicsNotReady(pending)


class TopicsNotReady(RuntimeError):
    def __init__(self, topics: list[str]) -> None:
        super().__init__(f"topics without a partition leader after {READY_WITHIN_SECONDS:g}s: "
                         f"{', '.join(topics)} (is every Kafka broker up?)")


def replication_factor() -> int:
    """KAFKA_REPLICATION_FACTOR (1 on the single local broker; 3 on a cluster)."""
    return int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    """A compacted topic keeps each key's latest record whatever its age (retention applies to
    the log's deletion policy only)."""
    if spec.compact:
        return {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
    return {"retention.ms": str(spec.retention_ms)}


async def _grow_partitions(admin: AIOKafkaAdminClient, prefix: str, existing: set[str]) -> None:
    names = [topic_name(s.name, prefix) for s in TOPICS if topic_name(s.name, prefix) in existing]
    if not names:
        return
    described = await admin.describe_topics(names)
    counts = {d["topic"]: len(d["partitions"]) for d in described}
    grow = {
        topic_name(s.name, prefix): NewPartitions(total_count=s.partitions)
        for s in TOPICS
        if counts.get(topic_name(s.name, prefix), s.partitions) < s.partitions
    }
    if grow:
        await admin.create_partitions(grow)


async def describe_topics(bootstrap: str, prefix: str = "", auth: KafkaAuth = NO_AUTH
                          ) -> dict[str, int]:
    """Partition count of every declared topic that exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000,
                                **auth.aiokafka_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [topic_name(s.name, prefix) for s in TOPICS
                 if topic_name(s.name, prefix) in existing]
        described = await admin.describe_topics(names) if names else []
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()
