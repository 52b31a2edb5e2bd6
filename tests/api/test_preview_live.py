"""The pending-signal size preview (GET /api/v1/signals) follows the sizing stage's live rule:
a live account without a signed go-live grant shows LIVE_NOT_GRANTED, with one the ramped size;
a paper account is sized as before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from agents.decisions.config import RiskSettings
from agents.decisions.rollout import LiveGrant, LiveGrants
from api.services import SignalService
from brokers.port import AccountKind, AccountSnapshot
from tests.api.conftest import Api, FakeGate
from tests.fakes import FakeVenue

LIVE = "U7654321"


class LiveVenue(FakeVenue):
    """The FakeVenue's figures on a live account."""

    async def account(self) -> AccountSnapshot:
        paper = await super().account()
        return paper.model_copy(update={"account_id": LIVE, "kind": AccountKind.LIVE})


class Grants:
    """What the worker's rollout reader answers."""

    def __init__(self, *grants: LiveGrant, unavailable: str | None = None) -> None:
        self.grants = {g.account_id: g for g in grants}
        self.why = unavailable

    def grant(self, account_id: str) -> LiveGrant | None:
        return self.grants.get(account_id)

    def unavailable(self) -> str | None:
        return self.why

    def __repr__(self) -> str:
        return f"Grants({sorted(self.grants)}, unavailable={self.why!r})"


def grant(ramp: str, cap: str, account: str = LIVE) -> LiveGrant:
    return LiveGrant(account_id=account, ramp_factor=Decimal(ramp),
                     max_order_notional=Decimal(cap), decided_by="admin-user", event_id=uuid4())


def reader(answer: LiveGrants | Exception) -> Callable[[datetime], Awaitable[Any]]:
    async def read(now: datetime) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer
    return read


def size_now(api: Api, venue: FakeVenue, *, risk: RiskSettings | None = None,
             **grants: Any) -> dict[str, Any]:
    """The seed signal's size_now through the HTTP API, over `venue` and these grants."""
    services = api.client.app.state.services  # type: ignore[attr-defined]
    services.signals = SignalService(api.queries, risk or RiskSettings(), venue, FakeGate(), 5.0,
                                     **grants)
    page = api.client.get("/api/v1/signals", headers=api.auth("viewer")).json()
    [signal] = page["items"]
    size: dict[str, Any] = signal["size_now"]
    print(f"size_now {grants or 'no grants'}: {size}")
    return size


def test_paper_account_is_sized_as_before(api: Api) -> None:
    size = size_now(api, FakeVenue())  # no grants needed, none read
    assert (Decimal(size["quantity"]), size["binding"]) == (133, "max_position_pct")


@pytest.mark.parametrize(
    ("grants", "unknown"),
    [
        ({}, "reads no go-live decisions"),
        ({"grants": Grants()}, "has no signed go-live decision"),
        ({"grants": Grants(grant("0.5", "50000", account="U1111111"))},
         "has no signed go-live decision"),
        ({"grants": Grants(unavailable="not read to the end yet")}, "not read to the end yet"),
        ({"read_grants": reader(Grants())}, "has no signed go-live decision"),
        ({"read_grants": reader(TimeoutError("rollout topic"))}, "could not be read"),
    ],
    ids=["no_reader", "no_grant", "another_accounts_grant", "grants_unknown", "read_none",
         "read_fails"],
)
def test_live_account_without_a_grant_would_be_refused(api: Api, grants: dict[str, Any],
                                                       unknown: str) -> None:
    size = size_now(api, LiveVenue(), **grants)
    assert size["quantity"] is None
    assert size["binding"] == "LIVE_NOT_GRANTED"
    assert unknown in size["message"]


def test_raw_live_settings_do_not_size_a_live_account(api: Api) -> None:
    # LIVE_TRADING_ACCOUNT alone, as the sizing stage: never without a signed grant
    risk = RiskSettings(live_trading_account=LIVE)
    size = size_now(api, LiveVenue(), risk=risk)
    assert size["binding"] == "LIVE_NOT_GRANTED"


@pytest.mark.parametrize(
    ("source", "ramp", "cap", "quantity"),
    [
        ("grants", "0.10", "1000000", 13),  # 133 shares at 10%
        ("grants", "1", "3000", 20),  # the notional cap: 3,000 / 150.00
        ("read_grants", "0.25", "1000000", 33),  # read from `rollout` by a standalone API
    ],
)
def test_live_account_with_a_grant_gets_the_ramped_size(api: Api, source: str, ramp: str,
                                                        cap: str, quantity: int) -> None:
    granted = Grants(grant(ramp, cap))
    given: dict[str, Any] = {source: granted if source == "grants" else reader(granted)}
    size = size_now(api, LiveVenue(), **given)
    assert Decimal(size["quantity"]) == quantity
    assert size["binding"] != "LIVE_NOT_GRANTED"


def test_grants_are_read_only_for_a_live_account(api: Api) -> None:
    calls: list[datetime] = []

    async def read(now: datetime) -> Any:
        calls.append(now)
        return Grants()

    size_now(api, FakeVenue(), read_grants=read)
    assert calls == []
