"""The IB session's trades and fills indexed as they arrive (brokers/ib/session_index.py): every
read answers what walking all of ib_async's trades and fills answers, while the past is set
aside; a session of random placements, fills, cancels, acknowledgements, other accounts'
orders, an orderRef seen again, completed orders from a full read, resets and a clock that
moves."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ib_async import Execution, Fill, Order, OrderStatus, Stock, Trade, TradeLogEntry

from brokers.ib.session_index import SessionIndex

T0 = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
FINAL = {"Filled", "Cancelled", "ApiCancelled"}  # IB's: never working again (Inactive may)
ACCOUNT = "DU1"


class Wrapper:
    """What the index touches of ib_async's wrapper; reset() as the library's."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.trades: dict[Any, Any] = {}
        self.fills: dict[str, Any] = {}


class Session:
    """A random session of orders, driven step by step, with the clock it runs on."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = T0
        self.wrapper = Wrapper()
        self.next_id = 1
        self.refs: list[str] = []
        self.completed: list[Any] = []  # the last full read's completed orders

    def clock(self) -> datetime:
        return self.now

    def place(self) -> None:
        rng, n = self.rng, self.next_id
        self.next_id += 1
        ref = rng.choice(self.refs) if self.refs and rng.random() < 0.03 else (
            "" if rng.random() < 0.05 else f"jx-{n}")
        self.refs.append(ref)
        account = ACCOUNT if rng.random() < 0.9 else "DU2"
        order = Order(orderId=n, permId=0 if rng.random() < 0.1 else 1000 + n, orderRef=ref,
                      account=account, action="BUY", totalQuantity=10)
        log = [] if rng.random() < 0.05 else [TradeLogEntry(self.now, "PreSubmitted", "")]
        status = OrderStatus(orderId=n, status=rng.choice(
            ["PendingSubmit", "Submitted", "Submitted", "Filled", "Filled", "Cancelled",
             "Inactive"]))
        self.wrapper.trades[(1, n)] = Trade(Stock("AAPL", "SMART", "USD"), order, status, [],
                                            log)

    def progress(self) -> None:
        """Some working orders fill, are cancelled or acknowledged; a fill is reported."""
        rng = self.rng
        trades = list(self.wrapper.trades.values())
        for trade in rng.sample(trades, min(len(trades), 3)):
            if trade.orderStatus.status in FINAL:
                continue
            trade.orderStatus.status = rng.choice(["Submitted", "Filled", "Cancelled"])
            trade.log.append(TradeLogEntry(self.now, trade.orderStatus.status, ""))
            if not trade.order.permId and rng.random() < 0.5:
                trade.order.permId = 1000 + trade.order.orderId
            if trade.orderStatus.status in FINAL and rng.random() < 0.3:
                # a full read's copy: known by permId, or not (another client's order)
                copy = Trade(trade.contract, Order(
                    orderId=0, permId=rng.choice([trade.order.permId, 900_000 + len(
                        self.completed)]), orderRef=trade.order.orderRef,
                    account=trade.order.account), OrderStatus(status="Filled"), [], [])
                self.completed.append(copy)
            if trade.orderStatus.status == "Filled":
                executed = self.now - timedelta(seconds=rng.choice([0, 0, 5, 900]))
                fill = Fill(trade.contract, Execution(execId=f"e{len(self.wrapper.fills)}",
                                                      time=executed), None, executed)
                self.wrapper.fills[fill.execution.execId] = fill


def created_at(trades: list[Any]) -> datetime | None:
    logged = [t.log[0].time for t in trades if t.log]
    return min(logged) if logged else None


def mine(trade: Any) -> bool:
    return bool((trade.order.account or ACCOUNT) == ACCOUNT)


def every_trade(session: Session) -> list[Any]:
    """What the adapter grouped before the index: every trade, then the completed orders of
    the last full read whose permId no trade has."""
    trades = list(session.wrapper.trades.values())
    known = {t.order.permId for t in trades if t.order.permId}
    return [*trades, *(t for t in session.completed if t.order.permId not in known)]


def groups(trades: list[Any], since: datetime) -> dict[str, list[int]]:
    """What orders_since builds of these trades: per orderRef created at or after `since`
    (dated by its earliest log, else it has none: kept), its trades in order (as the
    adapter's _orders_since groups them)."""
    by_ref: dict[str, list[Any]] = {}
    for t in trades:
        if t.order.orderRef and t.order.permId and mine(t):
            by_ref.setdefault(t.order.orderRef, []).append(t)
    out = {}
    for ref, group in by_ref.items():
        created = created_at(group)
        if created is None or created >= since:
            out[ref] = [id(t) for t in group]
    return out


def check(index: SessionIndex, session: Session) -> None:
    index.sync(session.wrapper)
    every = list(session.wrapper.trades.values())
    assert [id(t) for t in index.open_trades()] == [id(t) for t in every if not t.isDone()]
    for ago in (30, 60, 120, 600, 3600):
        since = session.now - timedelta(seconds=ago)
        assert groups(index.trades_since(since, session.completed), since) == groups(
            every_trade(session), since), ago
        fills = [f for f in session.wrapper.fills.values() if f.execution.time >= since]
        assert sorted(id(f) for f in index.fills_for(since) if f.execution.time >= since) \
            == sorted(id(f) for f in fills)
    known = index.known()
    for t in every:
        assert known(t.order.permId) is bool(t.order.permId)
    assert not known(0)
    assert not known(999_999_999)
    for ref in set(session.refs[-20:]):
        assert [id(t) for t in index.with_ref(ref)] == [
            id(t) for t in every if t.order.orderRef == ref]


@pytest.mark.parametrize("every", [0, 30])  # seconds between passes: each read, or fewer
def test_every_read_answers_what_walking_everything_answers(every: float) -> None:
    for seed in range(4):
        session = Session(seed)
        index = SessionIndex(mine, created_at, horizon=timedelta(minutes=3), every=every,
                             clock=session.clock,
                             monotonic=lambda s=session: s.now.timestamp())
        set_aside = 0
        for step in range(400):
            for _ in range(session.rng.randint(0, 4)):
                session.place()
            session.progress()
            session.now += timedelta(seconds=session.rng.choice([1, 2, 5, 30]))
            if step == 250:
                session.wrapper.reset()  # a new connection: the library starts again
            check(index, session)
            set_aside = max(set_aside, len(session.wrapper.trades) - len(index.young))
        # it did set the past aside: reads walk what is recent or working
        assert set_aside > 100
        assert len(index.working) < len(session.wrapper.trades) / 2


def test_a_group_dated_before_the_cut_stays_skipped_whatever_joins_it() -> None:
    session = Session(0)
    index = SessionIndex(mine, created_at, horizon=timedelta(minutes=3), every=0,
                         clock=session.clock)
    old = Trade(Stock("AAPL", "SMART", "USD"),
                Order(orderId=1, permId=11, orderRef="jx-a", account=ACCOUNT),
                OrderStatus(orderId=1, status="Submitted"), [],
                [TradeLogEntry(T0, "Submitted", "")])
    session.wrapper.trades[(1, 1)] = old
    session.now = T0 + timedelta(minutes=10)
    index.sync(session.wrapper)
    assert index.old_refs == {"jx-a"}
    assert index.open_trades() == [old]  # still working: still open
    since = session.now - timedelta(minutes=1)
    assert index.trades_since(since, []) == []
    again = Trade(Stock("AAPL", "SMART", "USD"),
                  Order(orderId=2, permId=12, orderRef="jx-a", account=ACCOUNT),
                  OrderStatus(orderId=2, status="Submitted"), [],
                  [TradeLogEntry(session.now, "Submitted", "")])
    session.wrapper.trades[(1, 2)] = again
    copy = Trade(Stock("AAPL", "SMART", "USD"),
                 Order(orderId=0, permId=13, orderRef="jx-a", account=ACCOUNT),
                 OrderStatus(status="Filled"), [], [])
    index.sync(session.wrapper)
    # the group is still dated by its first placement: not an order since then
    assert groups(index.trades_since(since, [copy]), since) == {}
    assert groups([old, again, copy], since) == {}
    assert index.open_trades() == [old, again]
    assert list(index.with_ref("jx-a")) == [old, again]


def test_a_read_from_before_the_cut_walks_everything() -> None:
    session = Session(1)
    index = SessionIndex(mine, created_at, horizon=timedelta(minutes=3), every=0,
                         clock=session.clock)
    for _ in range(30):
        session.place()
    session.now += timedelta(minutes=5)
    index.sync(session.wrapper)
    assert index.old_below == session.now - timedelta(minutes=3)
    assert len(index.trades_since(session.now - timedelta(minutes=4), [])) == 30
