"""The page's Rollout section in Debian's chromium against the real stack: the paper period's
report (each check, value, threshold, verdict) from the worker's ClickHouse, and the live grants
folded from a signed go-live decision published on `rollout`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.decisions.rollout import unsigned_body
from agents.decisions.signatures import sign
from jax_exec.keys import signing_key
from schemas.events import RolloutAction, RolloutDecision
from tests.web.conftest import Stack, keep_screenshot

pytestmark = pytest.mark.integration
WAIT_MS = 60_000
LIVE = "U7654321"


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def signed_go_live(stack: Stack) -> dict[str, Any]:
    """A GO_LIVE as `jax-exec rollout go-live` publishes it, signed with root's key."""
    at = datetime.now(UTC)
    eid = RolloutDecision.derive_event_id(LIVE, RolloutAction.GO_LIVE, at)
    decision = RolloutDecision(
        event_id=eid, correlation_id=eid, occurred_at=at, recorded_at=at,
        action=RolloutAction.GO_LIVE, account_id=LIVE, ramp_factor=Decimal("0.1"),
        max_order_notional=Decimal(1000), approved_by="root", decided_at=at,
        reason=f"web test {uuid.uuid4().hex[:6]}", report_sha256="0" * 64)
    key = signing_key(stack.worker.home, "root")
    return sign(unsigned_body(decision), key.private_key, key.key_id)


def test_rollout_section_shows_the_report_and_the_grants(
        page: Any, stack: Stack, tmp_path: Path) -> None:
    page.goto(stack.url + "/")
    page.fill("input[name=token]", stack.tokens["viewer"])
    page.click("form[data-testid=login] button[type=submit]")
    section = page.locator("[data-testid=rollout]")
    # an empty paper period: it fails (no days traded), each check listed with its threshold
    page.wait_for_selector("[data-testid=rollout-verdict]")
    assert section.locator("[data-testid=rollout-verdict]").inner_text() == "FAIL"
    days = section.locator("tr[data-check='days traded'] td")
    assert days.nth(1).inner_text() == "0"
    assert days.nth(2).inner_text().startswith(">=")
    assert days.nth(3).inner_text() == "FAIL"
    assert section.locator("[data-testid=rollout-checks] tbody tr").count() == 10
    assert "No live account may trade" in section.locator("[data-testid=rollout-grants]") \
        .inner_text()

    stack.publish("rollout", signed_go_live(stack), key=LIVE.encode())
    stack.wait("the grant through the API", lambda: stack.get("/api/v1/rollout/grants")["grants"])
    section.locator("[data-testid=rollout-refresh]").click()
    row = section.locator(f"tr[data-grant='{LIVE}'] td")
    row.first.wait_for()
    cells = [row.nth(i).inner_text() for i in range(4)]
    print("grant row:", cells)
    assert cells[0] == LIVE
    assert cells[1] == "0.1"
    assert cells[3] == "root"
    assert not section.locator("[data-testid=rollout-error]").is_visible()
    section.scroll_into_view_if_needed()
    keep_screenshot(page, tmp_path, "rollout-page")
