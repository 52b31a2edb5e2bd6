"""Pending signals posted to Slack and updated with their outcome: once per signal, across
restarts (the post's record on `notifications` is read back), whoever decided (the store's
status, not the click), expiry included; Slack down is retried and recorded, never raised.
The Slack Web API is the FakeChat; the store is a dict of rows (or the API's own services)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.notify import DeliveryPolicy
from api.slack import (
    APPROVE,
    SignalPoster,
    SlackMessage,
    SlackPosterStage,
    store_signals,
)
from jax_exec.topics_admin import ensure_topics
from schemas.ids import signal_event_id
from tests.api.conftest import SEED_CID, make_api
from tests.integration.harness import BOOTSTRAP, events, publish
from tests.polling import until
from tests.web.test_slack import FakeChat

POLICY = DeliveryPolicy(attempts=3, attempt_timeout=0.5, backoff=0.01, backoff_max=0.05,
                        total=3.0)


def row(status: str = "pending", **changes: Any) -> dict[str, Any]:
    sid = changes.pop("signal_id", f"sig-{uuid.uuid4().hex[:8]}")
    now = datetime.now(UTC)
    return {"signal_id": sid, "correlation_id": str(signal_event_id(sid)), "symbol": "AAPL",
            "side": "BUY", "strategy_id": "ma_crossover_v1", "entry_price": "150.00",
            "stop_loss": "145.00", "take_profit": "160.00", "status": status,
            "expires_at": (now + timedelta(hours=1)).isoformat(), "decided_by": [],
            "decided_at": None,
            "size_now": {"quantity": "133", "binding": "max_position_pct",
                         "figures": {"risk_amount": "665.00"}} if status == "pending" else None,
            **changes}


@dataclass
class Store:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    recorded: list[SlackMessage] = field(default_factory=list)

    async def lookup(self, signal_id: str) -> dict[str, Any] | None:
        return self.rows.get(signal_id)

    async def pending(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["status"] == "pending"]

    async def record(self, message: SlackMessage) -> None:
        self.recorded.append(message)

    def poster(self, chat: Any, store_wait: float = 0.5) -> SignalPoster:
        poster = SignalPoster(chat, "C1", self.lookup, self.pending, self.record, POLICY,
                              store_wait=store_wait)
        for message in self.recorded:  # what a restart reads back from `notifications`
            poster.remember(message)
        return poster


@dataclass
class DownChat(FakeChat):
    failures: int = 99

    async def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("slack.com unreachable")
        return await super().post(channel, text, blocks)


async def test_a_pending_signal_is_posted_once_even_across_a_restart() -> None:
    store, chat = Store(), FakeChat()
    r = store.rows.setdefault("s1", row(signal_id="s1"))
    poster = store.poster(chat)
    await poster.settle("s1")
    await poster.settle("s1")  # the same signal again (a re-publication, a replay)
    [(channel, text, blocks)] = chat.posted
    assert channel == "C1"
    assert text.startswith("BUY 133 AAPL @ 150.00")
    assert APPROVE in json.dumps(blocks)
    [posted] = store.recorded
    assert (posted.shows, posted.ts, posted.delivered, posted.signal_id) == \
        ("pending", "1700000000.000100", True, "s1")
    assert str(posted.correlation_id) == r["correlation_id"]

    restarted = store.poster(chat)
    await restarted.catch_up()
    assert len(chat.posted) == 1
    assert "s1" in restarted.expiries


async def test_decided_anywhere_updates_the_message_with_the_outcome() -> None:
    store, chat = Store(), FakeChat()
    store.rows["s1"] = row(signal_id="s1")
    poster = store.poster(chat)
    await poster.settle("s1")
    store.rows["s1"] = row("approved", signal_id="s1", decided_by=["alice"],
                           decided_at="2026-01-02T15:00:00Z")  # e.g. on the web page
    await poster.settle("s1", frozenset({"approved", "rejected"}))
    [(channel, ts, text)] = chat.updated
    assert (channel, ts) == ("C1", "1700000000.000100")
    assert "*approved* by alice" in text
    assert store.recorded[-1].shows == "approved"
    assert "s1" not in poster.expiries
    await poster.settle("s1")  # settled once
    assert len(chat.updated) == 1


async def test_the_poster_waits_for_the_store_to_show_the_decision() -> None:
    store, chat = Store(), FakeChat()
    store.rows["s1"] = row(signal_id="s1")
    poster = store.poster(chat, store_wait=5.0)
    await poster.settle("s1")

    async def audit_sink_catches_up() -> None:
        await asyncio.sleep(0.3)
        store.rows["s1"] = row("rejected", signal_id="s1", decided_by=["bob"])

    await asyncio.gather(poster.settle("s1", frozenset({"rejected", "approved"})),
                         audit_sink_catches_up())
    [(_, _, text)] = chat.updated
    assert "*rejected* by bob" in text


async def test_a_signal_that_expires_undecided_says_so() -> None:
    store, chat = Store(), FakeChat()
    store.rows["s1"] = row(signal_id="s1")
    poster = store.poster(chat)
    await poster.settle("s1")
    poster.expiries["s1"] = datetime.now(UTC)  # its time is up
    store.rows["s1"] = row("expired", signal_id="s1")
    expiring = asyncio.create_task(poster.expire())
    try:
        await until(lambda: bool(chat.updated), seconds=10, interval=0.05)
    finally:
        expiring.cancel()
    assert "*expired*" in chat.updated[0][2]


async def test_slack_down_is_retried_recorded_and_posted_at_the_next_chance() -> None:
    store = Store()
    store.rows["s1"] = row(signal_id="s1")
    down = DownChat()
    poster = store.poster(down)
    await poster.settle("s1")  # never raises
    [failed] = store.recorded
    assert (failed.delivered, failed.attempts, failed.ts) == (False, 3, None)
    assert "unreachable" in (failed.error or "")
    back = DownChat(failures=1)  # Slack back after one more failure
    await store.poster(back).catch_up()
    assert len(back.posted) == 1
    assert store.recorded[-1].delivered
    assert store.recorded[-1].attempts == 2


async def test_store_signals_answers_as_the_api_does(tmp_path: Path) -> None:
    api = make_api(tmp_path / "home")
    services = api.client.app.state.services  # type: ignore[attr-defined]
    lookup, pending = store_signals(services)
    [one] = await pending()
    assert one["correlation_id"] == str(SEED_CID)
    found = await lookup(one["signal_id"])
    assert found is not None
    assert found["status"] == "pending"
    assert found["size_now"] is not None
    assert await lookup("no-such-signal") is None
    api.queries.signal_status = "approved"
    decided = await lookup(one["signal_id"])
    assert decided is not None
    assert (decided["status"], decided["size_now"]) == ("approved", None)


async def test_the_stage_posts_from_the_ledger_and_a_restart_posts_nothing_twice() -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    await ensure_topics(BOOTSTRAP, prefix)
    store, chat = Store(), FakeChat()
    r = store.rows.setdefault("s1", row(signal_id="s1"))

    def stage() -> SlackPosterStage:
        poster = SignalPoster(chat, "C1", store.lookup, store.pending, store.record, POLICY,
                              store_wait=2.0)
        return SlackPosterStage(poster, BOOTSTRAP, lambda t: f"{prefix}{t}")

    async def ledger(status: str) -> None:
        await publish(f"{prefix}signal-ledger", {
            "event_id": str(uuid.uuid4()), "correlation_id": r["correlation_id"],
            "event_type": "signal_record", "signal_id": "s1", "status": status},
            key=r["correlation_id"].encode())

    first = stage()
    await first.start()
    try:
        await asyncio.wait_for(first.ready.wait(), 30)
        await until(lambda: len(chat.posted) == 1, seconds=10, interval=0.05)  # catch-up
        await ledger("seen")
        await asyncio.sleep(1.0)
    finally:
        await first.stop()
    recorded = [e for e in await events(f"{prefix}notifications")
                if e["event_type"] == "slack_message"]
    assert [(e["signal_id"], e["shows"], e["ts"]) for e in recorded] == \
        [("s1", "pending", "1700000000.000100")]

    second = stage()  # a restart: reads back what it posted
    await second.start()
    try:
        await asyncio.wait_for(second.ready.wait(), 30)
        await ledger("seen")
        store.rows["s1"] = row("approved", signal_id="s1", decided_by=["carol"])
        await ledger("decided")
        await until(lambda: bool(chat.updated), seconds=15, interval=0.05)
        for _ in range(100):  # the update's record follows the update: wait for it to land
            if len(await events(f"{prefix}notifications")) >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await second.stop()
    assert len(chat.posted) == 1
    assert "*approved* by carol" in chat.updated[0][2]
    shows = [e["shows"] for e in await events(f"{prefix}notifications")]
    assert shows == ["pending", "approved"]
    print(f"posted once across a restart; {len(chat.updated)} update, records {shows}")


def test_attach_slack_wraps_the_api_only_when_slack_and_a_channel_are_set(
        tmp_path: Path) -> None:
    from types import SimpleNamespace

    from api.slack import SlackApiService, SlackSettings, attach_slack
    from jax_exec.settings import Settings

    api = make_api(tmp_path / "home")
    inner = SimpleNamespace(server=SimpleNamespace(services=api.client.app.state.services))  # type: ignore[attr-defined]
    wrapped = SimpleNamespace(api=inner)  # as api.live.LiveApiService wraps it
    settings = Settings(jax_home=tmp_path / "home")
    off = SlackSettings(bot_token="xoxb-test", signing_secret="s" * 32)  # no channel
    assert attach_slack(wrapped, settings, off, FakeChat()) is wrapped
    on = SlackSettings(bot_token="xoxb-test", signing_secret="s" * 32, channel="C1")
    service = attach_slack(wrapped, settings, on, FakeChat())
    assert isinstance(service, SlackApiService)
    assert service.stage.poster.channel == "C1"
    assert attach_slack(service, settings, on, FakeChat()) is service
