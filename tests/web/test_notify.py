"""The notifications stage on the real broker: a fill, a refusal and a HALT reach a local
webhook receiver signed with HMAC-SHA256 (checked here as a receiver would), every delivery
is recorded on `notifications`, and a receiver that hangs or is down costs only its own
bounded retries: the good receiver is served at once and nothing waits on the bad ones (the
stage is its own consumer group; trading stages never see it)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from agents.decisions.notifications import (
    SIGNATURE_HEADER,
    notice_for,
    sign_body,
    verify_body,
)
from agents.notify import DeliveryPolicy, NotifyStage, Webhook, WebhookReceiver, deliver
from agents.notify import Receiver as ReceiverPort
from jax_exec.topics_admin import ensure_topics
from schemas.events import NotificationKind
from tests.integration.harness import BOOTSTRAP, events, free_port, publish
from tests.polling import until

SECRET = "whsec-test-0123456789abcdef"


@dataclass
class Receiver:
    calls: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    hang: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        if self.hang:
            await asyncio.sleep(10)
        self.calls.append((time.monotonic(), dict(request.headers), await request.read()))
        return web.json_response({"ok": True})


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[str, str, Receiver]]:
    good, hung = Receiver(), Receiver(hang=True)
    runners = []
    urls = []
    for rec in (good, hung):
        app = web.Application()
        app.router.add_post("/hook", rec.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}/hook")
    yield urls[0], urls[1], good
    for runner in runners:
        await runner.cleanup()


def _events() -> list[tuple[str, dict[str, Any]]]:
    corr = str(uuid.uuid4())
    base = {"correlation_id": corr, "occurred_at": "2026-01-02T15:00:00Z"}
    return [
        ("orders", {**base, "event_id": str(uuid.uuid4()), "event_type": "order",
                    "client_order_id": "jx-1", "venue": "sim", "account_id": "DU1",
                    "symbol": "AAPL", "side": "BUY", "order_type": "LMT", "quantity": "133",
                    "status": "filled", "filled_quantity": "133", "avg_fill_price": "150.00",
                    "leg": "entry"}),
        ("rejections", {**base, "event_id": str(uuid.uuid4()), "event_type": "rejection",
                        "stage": "sizing", "reason_code": "HALTED", "symbol": "AAPL",
                        "message": "trading is halted for the account"}),
        ("trading-state", {**base, "event_id": str(uuid.uuid4()), "scope": "account",
                           "scope_kind": "account", "mode": "halted", "previous_mode": "active",
                           "command": "halt", "command_offset": 0, "issued_by": "root",
                           "reason": "drill"}),
        ("orders", {**base, "event_id": str(uuid.uuid4()), "status": "accepted"}),  # no notice
    ]


async def test_fill_rejection_and_halt_reach_the_webhook_signed_and_recorded(
        receivers: tuple[str, str, Receiver]) -> None:
    good_url, hung_url, good = receivers
    down_url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    await ensure_topics(BOOTSTRAP, prefix)
    policy = DeliveryPolicy(attempts=3, attempt_timeout=0.5, backoff=0.1, backoff_max=0.5,
                            total=3.0)
    import httpx

    async with httpx.AsyncClient() as client:
        hooks: list[ReceiverPort] = [WebhookReceiver(Webhook(name=n, url=u, secret=SECRET), client)
                 for n, u in (("ops", good_url), ("hung", hung_url), ("down", down_url))]
        stage = NotifyStage(BOOTSTRAP, lambda t: f"{prefix}{t}", f"{prefix}notify", hooks,
                            policy)
        await stage.start()
        try:
            await asyncio.wait_for(stage.ready.wait(), 30)
            sent_at = time.monotonic()
            for topic, event in _events():
                await publish(f"{prefix}{topic}", event, key=b"account")  # compacted: keyed
            published = time.monotonic() - sent_at
            await until(lambda: len(stage.recorded) >= 9, seconds=30, interval=0.1)
        finally:
            await stage.stop()

    assert len(good.calls) == 3, good.calls
    kinds = []
    for _, headers, body in good.calls:
        assert verify_body(SECRET.encode(), body, headers[SIGNATURE_HEADER], time.time())
        assert not verify_body(b"another-secret-000000", body, headers[SIGNATURE_HEADER],
                               time.time())
        kinds.append(json.loads(body)["kind"])
    assert sorted(kinds) == ["kill_switch_changed", "order_filled", "signal_refused"]
    first_good = min(t for t, _, _ in good.calls) - sent_at
    by_target: dict[str, list[Any]] = {}
    for record in stage.recorded:
        by_target.setdefault(record.target, []).append(record)
    assert all(r.delivered and r.attempts == 1 for r in by_target["ops"])
    assert all(not r.delivered and r.attempts == 3 for r in by_target["hung"] + by_target["down"])
    assert all(r.elapsed_seconds <= policy.total + 0.5 for r in by_target["hung"])
    recorded = await events(f"{prefix}notifications")
    assert len(recorded) == 9
    print(f"published 4 events in {published * 1000:.0f} ms with the stage running; first "
          f"webhook call {first_good * 1000:.0f} ms after; hung receiver gave up after "
          f"{max(r.elapsed_seconds for r in by_target['hung']):.2f}s, down after "
          f"{max(r.elapsed_seconds for r in by_target['down']):.2f}s (3 attempts each)")


async def test_a_down_receiver_does_not_hold_up_the_others() -> None:
    """Deliveries to several receivers run side by side: a slow one costs only itself."""
    notice = notice_for("rejections", {"event_id": str(uuid.uuid4()), "stage": "sizing",
                                       "reason_code": "HALTED", "message": "halted"})
    assert notice is not None

    class Slow:
        name, channel = "slow", "webhook"

        async def send(self, n: Any, within: float) -> int:
            await asyncio.sleep(10)
            return 200

    class Fast:
        name, channel = "fast", "webhook"

        async def send(self, n: Any, within: float) -> int:
            return 204

    policy = DeliveryPolicy(attempts=2, attempt_timeout=0.2, backoff=0.05, total=1.0)
    started = time.monotonic()
    fast_done: list[float] = []

    async def fast() -> Any:
        record = await deliver(notice, Fast(), policy)
        fast_done.append(time.monotonic() - started)
        return record

    slow_record, fast_record = await asyncio.gather(deliver(notice, Slow(), policy), fast())
    assert fast_record.delivered
    assert fast_record.status_code == 204
    assert not slow_record.delivered
    assert slow_record.attempts == 2
    assert fast_done[0] < slow_record.elapsed_seconds
    print(f"fast receiver done in {fast_done[0] * 1000:.1f} ms; slow one gave up after "
          f"{slow_record.elapsed_seconds:.2f}s")


def test_notices_and_signatures() -> None:
    assert notice_for("orders", {"status": "accepted"}) is None
    filled = notice_for("orders", {"event_id": "e", "status": "partially_filled", "side": "BUY",
                                   "quantity": "133", "symbol": "AAPL", "filled_quantity": "50",
                                   "avg_fill_price": "150"})
    assert filled is not None
    assert filled.kind is NotificationKind.ORDER_PARTIALLY_FILLED
    trip = notice_for("trading-state", {"event_id": "e", "mode": "halted",
                                        "previous_mode": "active", "issued_by": "auto:loss",
                                        "command": "halt"})
    assert trip is not None
    assert trip.kind is NotificationKind.AUTOMATIC_TRIP
    alert = notice_for("alerts", {"event_id": "e", "kind": "external_order", "message": "x"})
    assert alert is not None
    assert alert.kind is NotificationKind.RECONCILIATION_ALERT
    headers = sign_body(b"k" * 16, b"{}", 1_700_000_000)
    assert verify_body(b"k" * 16, b"{}", headers[SIGNATURE_HEADER], 1_700_000_100)
    assert not verify_body(b"k" * 16, b"{}", headers[SIGNATURE_HEADER], 1_700_001_000)  # stale
    assert not verify_body(b"k" * 16, b"{} ", headers[SIGNATURE_HEADER], 1_700_000_100)
