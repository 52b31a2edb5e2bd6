"""The operator's page in Debian's chromium (Playwright) against the real stack: log in, see
the seed signal pending with 133 shares, approve it, and watch its order at the venue and its
fill arrive without a reload (server-sent events from Kafka); filter trade history, halt and
resume as admin; a viewer gets no Approve button and the API refuses a forced approval.

The tests share one stack (module fixture) and run in file order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.examples import SEED_SIGNAL
from schemas.ids import client_order_id, signal_event_id
from tests.integration.harness import ROOT, signal_with
from tests.web.conftest import Stack, keep_screenshot

pytestmark = pytest.mark.integration
SID = SEED_SIGNAL["id"]
COID = client_order_id(signal_event_id(SID))
WAIT_MS = 60_000
DOCS_SHOT = ROOT / "docs" / "web-page.png"


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


def login(page: Any, stack: Stack, role: str) -> None:
    page.goto(stack.url + "/")
    page.fill("input[name=token]", stack.tokens[role])
    page.click("form[data-testid=login] button[type=submit]")
    page.wait_for_selector("[data-testid=who]")
    page.wait_for_selector("[data-testid=live].on")  # the event stream is open


def answer_dialogs(page: Any, text: str) -> None:
    """Accept every confirm() and answer every prompt() with `text`."""
    page.on("dialog", lambda dialog: dialog.accept(text))


def pending(stack: Stack, signal_id: str) -> Any:
    items = stack.get("/api/v1/signals", status="pending")["items"]
    return next((s for s in items if s["signal_id"] == signal_id), None)


def test_approve_the_seed_signal_and_watch_order_and_fill_arrive_live(
        page: Any, stack: Stack, tmp_path: Path) -> None:
    stack.publish("signals", SEED_SIGNAL, key=str(signal_event_id(SID)).encode())
    stack.wait("the seed signal pending in the API", lambda: pending(stack, SID))

    login(page, stack, "approver")
    row = page.locator(f"[data-testid=pending] tr[data-signal='{SID}']")
    row.wait_for()
    assert row.locator("[data-testid=size]").inner_text() == "133"
    page.evaluate("window.__noReload = 'still here'")  # gone if the page reloads

    answer_dialogs(page, "seed example, from the browser test")
    row.locator("[data-testid=approve]").click()
    row.wait_for(state="detached")  # off the pending list

    order = page.locator(f"[data-testid=orders] tr[data-order='{COID}']")
    order.wait_for()
    status = order.locator("[data-testid=order-status]")
    page.wait_for_function(
        "el => ['submitted', 'accepted', 'partially_filled', 'filled'].includes(el.textContent)",
        arg=status.element_handle())
    fill = page.locator(f"[data-testid=fills] tr[data-fill='{COID}']")
    fill.wait_for()
    assert fill.locator("[data-testid=fill-qty]").inner_text() == "133"
    page.wait_for_function("el => el.textContent === 'filled'", arg=status.element_handle())
    assert page.evaluate("window.__noReload") == "still here", "the page reloaded"
    print(f"order {COID}: {status.inner_text()}; fill 133 @ "
          f"{fill.locator('td').nth(5).inner_text()}")

    page.locator("[data-testid=trades] tr[data-trade]").first.wait_for()
    keep_screenshot(page, tmp_path, "approve-and-fill", docs=DOCS_SHOT)


def test_filter_trade_history_then_halt_and_resume_as_admin(
        page: Any, stack: Stack, tmp_path: Path) -> None:
    stack.wait("the seed trade in the API", lambda: stack.get("/api/v1/trades")["items"])
    login(page, stack, "admin")
    trades = page.locator("[data-testid=trades] tr[data-trade]")
    trades.first.wait_for()

    page.fill("input[name=symbol]", "MSFT")
    page.click("[data-testid=filter]")
    page.locator("[data-testid=trades] td.empty").wait_for(state="visible")
    assert trades.count() == 0
    page.fill("input[name=symbol]", "aapl")
    page.select_option("select[name=side]", "BUY")
    page.click("[data-testid=filter]")
    trades.first.wait_for()
    assert {trades.nth(i).locator("[data-testid=trade-symbol]").inner_text()
            for i in range(trades.count())} == {"AAPL"}
    page.select_option("select[name=side]", "SELL")
    page.click("[data-testid=filter]")
    page.locator("[data-testid=trades] td.empty").wait_for(state="visible")

    with page.expect_download() as download:
        page.select_option("select[name=side]", "")
        page.click("[data-testid=filter]")
        trades.first.wait_for()
        page.click("[data-testid=csv]")
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[0].startswith("id,signal_id,order_id")
    assert ",AAPL,BUY,133" in csv_text

    mode = page.locator("[data-testid=trading-mode]")
    assert mode.inner_text() == "ACTIVE"
    answer_dialogs(page, "browser test drill")
    page.click("[data-testid=halt]")
    page.wait_for_function("el => el.textContent === 'HALTED'", arg=mode.element_handle())
    keep_screenshot(page, tmp_path, "halted")
    states = {s["scope"]: s for s in stack.get("/api/v1/kill-switch")}
    assert (states["account"]["mode"], states["account"]["issued_by"]) == ("halted", "root")
    page.click("[data-testid=resume]")
    page.wait_for_function("el => el.textContent === 'ACTIVE'", arg=mode.element_handle())


def test_a_viewer_sees_no_approve_button_and_the_api_refuses_a_forced_approval(
        page: Any, stack: Stack, tmp_path: Path) -> None:
    other = signal_with(symbol="MSFT", entry_price=400.0, stop_loss=390.0, take_profit=420.0)
    stack.publish("signals", other, key=str(signal_event_id(other["id"])).encode())
    stack.wait("a second pending signal", lambda: pending(stack, other["id"]))

    login(page, stack, "viewer")
    row = page.locator(f"[data-testid=pending] tr[data-signal='{other['id']}']")
    row.wait_for()
    assert row.locator("[data-testid=approve]").count() == 0
    assert page.locator("[data-testid=approve], [data-testid=halt]").count() == 0
    keep_screenshot(page, tmp_path, "viewer")

    forced = stack.post(f"/api/v1/signals/{other['id']}/approve", "viewer", {})
    assert forced.status_code == 403, forced.text
    assert re.search(r"approver role", forced.json()["detail"])
    assert pending(stack, other["id"]) is not None  # still undecided
