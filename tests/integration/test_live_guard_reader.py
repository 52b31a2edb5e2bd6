"""The sizing worker's reader of `rollout` on the real broker: a topic it cannot read does not
stop the worker, it fails closed for live accounts (unavailable) and keeps trying; once the
topic is there it reads it to the end and the grants are known."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from agents.decisions.rollout import RolloutThresholds
from agents.decisions.signatures import KeyRing
from agents.rollout_reader import RolloutReader
from jax_exec.topics_admin import ensure_topics
from tests.integration.harness import BOOTSTRAP

pytestmark = pytest.mark.integration


async def test_an_unreadable_rollout_topic_fails_closed_then_recovers() -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    reader = RolloutReader(BOOTSTRAP, lambda name: f"{prefix}{name}", KeyRing(),
                           RolloutThresholds(), timeout=10, retry_seconds=0.5)
    try:
        await reader.start()  # no topics yet: no exception, live refused
        why = reader.unavailable()
        print("before the topic exists:", why)
        assert why is not None
        assert "does not exist" in why
        assert reader.grant("U7654321") is None

        await ensure_topics(BOOTSTRAP, prefix)
        await asyncio.wait_for(reader.ready.wait(), 60)
        assert reader.unavailable() is None
        assert reader.book.grants == {}
    finally:
        await reader.stop()
