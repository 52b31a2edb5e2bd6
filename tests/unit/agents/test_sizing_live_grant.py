"""The sizing stage with a live account: refused without a signed go-live decision (on record
as LIVE_NOT_GRANTED), sized at the grant's ramp once there is one; paper never asks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from agents.context import Source, StageContext
from agents.decisions.rollout import (
    RolloutBook,
    RolloutThresholds,
    go_live,
    rollout_report,
    unsigned_body,
)
from agents.decisions.signatures import sign
from agents.sizing import handle_approval
from brokers.port import AccountKind, AccountSnapshot
from schemas.events import OrderIntent, Rejection, RolloutDecision
from tests.fakes import T0, FakeVenue
from tests.unit.agents.conftest import KEYRING, KEYS, approval, raw
from tests.unit.decisions.test_rollout import figures

SRC = Source("approvals", 0, 7)
LIVE = "U7654321"
T = RolloutThresholds(min_days_traded=20, min_orders=50, admins=frozenset({"carol"}))


class LiveVenue(FakeVenue):
    async def account(self) -> AccountSnapshot:
        self.calls.append(("account", None))
        return AccountSnapshot(account_id=LIVE, kind=AccountKind.LIVE, equity=self.equity,
                               cash=self.equity, buying_power=self.buying_power, as_of=T0)


def outcome(outputs: Sequence[tuple[str, object]]) -> list[tuple[str, object]]:
    """The stage's outputs without its signal-ledger records."""
    return [(t, e) for t, e in outputs if t != "signal-ledger"]


def live_ctx(ctx: StageContext, grants: RolloutBook | None) -> StageContext:
    return StageContext(risk=ctx.risk, venue=LiveVenue(), clock=ctx.clock, retry=ctx.retry,
                        keyring=ctx.keyring, ledger=ctx.ledger, grants=grants)


async def test_live_without_a_grant_is_refused_with_a_sentence(ctx: StageContext) -> None:
    (topic, rejection), = outcome(await handle_approval(
        raw(approval()), SRC, live_ctx(ctx, RolloutBook(KEYRING, T))))
    assert topic == "rejections"
    assert isinstance(rejection, Rejection)
    print(rejection.message)
    assert rejection.reason_code == "LIVE_NOT_GRANTED"
    assert rejection.stage == "live_guard"
    assert rejection.message.startswith(f"live account {LIVE} has no signed go-live decision")


async def test_live_with_no_reader_is_refused(ctx: StageContext) -> None:
    (_, rejection), = outcome(await handle_approval(raw(approval()), SRC, live_ctx(ctx, None)))
    assert isinstance(rejection, Rejection)
    assert rejection.reason_code == "LIVE_NOT_GRANTED"


async def test_live_with_a_grant_is_sized_at_its_ramp(ctx: StageContext) -> None:
    decision = go_live(rollout_report(figures(), T), LIVE, "carol", T0, T)
    assert isinstance(decision, RolloutDecision)
    book = RolloutBook(KEYRING, T)
    body = sign(unsigned_body(decision), KEYS["carol"], "carol-test")
    assert book.on_record(json.dumps(body).encode(), T0) is None
    (topic, intent), = outcome(await handle_approval(raw(approval()), SRC, live_ctx(ctx, book)))
    assert topic == "order-intents"
    assert isinstance(intent, OrderIntent)
    assert intent.account_id == LIVE
    assert intent.quantity == Decimal(6)  # x0.1 and the 1,000 cap at 150.00
    assert intent.sizing.bound_by == "live_notional_cap"


async def test_paper_never_asks_for_a_grant(ctx: StageContext) -> None:
    assert ctx.grants is None
    (topic, intent), = outcome(await handle_approval(raw(approval()), SRC, ctx))
    assert topic == "order-intents"
    assert isinstance(intent, OrderIntent)
    assert intent.quantity == 133
