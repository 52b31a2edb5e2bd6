"""Microsoft Teams through an incoming webhook, no network: a local HTTP receiver stands in for
Teams and gets an Adaptive Card (or a legacy MessageCard) with the notice's title and figures;
a Teams URL that is down is retried and recorded like any receiver."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from agents.decisions.notifications import notice_for, teams_card
from agents.notify import (
    DeliveryPolicy,
    NotifySettings,
    TeamsHook,
    TeamsReceiver,
    build_notify,
    deliver,
)
from tests.integration.harness import free_port

FILL = {"event_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()), "status": "filled",
        "side": "BUY", "quantity": "133", "symbol": "AAPL", "filled_quantity": "133",
        "avg_fill_price": "150.00", "client_order_id": "jx-1", "leg": "entry"}


@pytest.fixture
async def teams() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(text="1")  # what a connector answers

    app = web.Application()
    app.router.add_post("/webhookb2/abc", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/webhookb2/abc", got
    await runner.cleanup()


@pytest.mark.parametrize("card", ["adaptive", "messagecard"])
async def test_a_fill_reaches_teams_as_a_card(teams: tuple[str, list[dict[str, Any]]],
                                              card: str) -> None:
    url, got = teams
    notice = notice_for("orders", FILL)
    assert notice is not None
    async with httpx.AsyncClient() as client:
        receiver = TeamsReceiver(TeamsHook(name="desk", url=url, card=card), client)
        record = await deliver(notice, receiver, DeliveryPolicy(attempts=2, total=5.0))
    assert record.delivered, record
    assert (record.channel, record.target, record.status_code) == ("teams", "desk", 200)
    [body] = got
    flat = json.dumps(body)
    assert "BUY 133 AAPL (entry): filled 133 @ 150.00" in flat
    assert '"jx-1"' in flat
    if card == "adaptive":
        [attachment] = body["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert attachment["content"]["type"] == "AdaptiveCard"
    else:
        assert body["@type"] == "MessageCard"
        assert body["themeColor"] == "2EB67D"


async def test_a_teams_url_that_is_down_is_retried_and_recorded() -> None:
    notice = notice_for("orders", FILL)
    assert notice is not None
    down = f"http://127.0.0.1:{free_port()}/webhookb2/abc"
    async with httpx.AsyncClient() as client:
        receiver = TeamsReceiver(TeamsHook(name="desk", url=down), client)
        record = await deliver(notice, receiver, DeliveryPolicy(attempts=3, attempt_timeout=0.5,
                                                                backoff=0.05, total=3.0))
    assert not record.delivered
    assert record.attempts == 3
    assert record.error


def test_teams_is_configured_like_the_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_TEAMS", json.dumps(
        [{"name": "desk", "url": "https://example.invalid/workflows/x", "card": "messagecard"}]))
    settings = NotifySettings()
    [hook] = settings.teams
    assert (hook.name, hook.card) == ("desk", "messagecard")
    assert "example.invalid" not in repr(settings)  # the URL is a secret


    service = build_notify(_settings(), settings)
    assert service is not None
    assert [r.channel for r in service.stage.receivers] == ["teams"]


def _settings() -> Any:
    from jax_exec.settings import Settings

    return Settings()


def test_cards_carry_the_kill_switch_change() -> None:
    halt = notice_for("trading-state", {"event_id": "e", "scope": "account", "mode": "halted",
                                        "previous_mode": "active", "command": "halt",
                                        "issued_by": "root", "reason": "drill"})
    assert halt is not None
    body = teams_card(halt, "messagecard")
    facts = {f["name"]: f["value"] for f in body["sections"][0]["facts"]}
    assert (facts["mode"], facts["issued_by"], facts["reason"]) == ("halted", "root", "drill")
