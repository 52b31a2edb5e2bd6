"""Reconciliation publishes each venue fact once, across failed polls, failed sends and
restarts, and raises an alert where the venue and the pipeline disagree."""

from __future__ import annotations

import json
from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from agents.context import Output
from agents.orders import order_event
from agents.reconciliation import VANISHED, Poll, Reconciler
from agents.reconciliation_seed import SeedBuilder
from agents.submission import request_from
from brokers.exceptions import TransientBrokerError, UnknownOrder
from brokers.port import FillReport, OrderReport, OrderRequest, OrderType, Position
from schemas.events import Alert, AlertKind, Fill, OrderEvent, OrderLeg, OrderStatus, Side
from tests.fakes import T0, FakeVenue
from tests.unit.agents.conftest import approval, intent_for

S = timedelta(seconds=1)


class Venue(FakeVenue):
    """FakeVenue that fails named calls on demand, fills in parts, forgets orders, and holds
    the positions its fills make (plus `extra` shares the pipeline knows nothing of)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: dict[str, deque[Exception]] = {}
        self.extra: dict[tuple[str, str], Decimal] = {}
        self.since: list[datetime] = []

    def fail(self, call: str, times: int = 1) -> None:
        self.failing.setdefault(call, deque()).extend(
            TransientBrokerError("venue down", code="1100") for _ in range(times))

    def _check(self, call: str) -> None:
        pending = self.failing.get(call)
        if pending:
            raise pending.popleft()

    async def open_orders(self) -> list[OrderReport]:
        self._check("open_orders")
        return await super().open_orders()

    async def status(self, client_order_id: str) -> OrderReport:
        self._check("status")
        return await super().status(client_order_id)

    async def fills_since(self, since: datetime) -> list[FillReport]:
        self._check("fills_since")
        self.since.append(since)
        return await super().fills_since(since)

    async def positions(self) -> list[Position]:
        self._check("positions")
        held = dict(self.extra)
        for f in self.fills:
            key = (f.account_id, f.symbol)
            sign = 1 if f.side == "BUY" else -1
            held[key] = held.get(key, Decimal(0)) + sign * f.quantity
        return [Position(account_id=a, symbol=s, quantity=q, avg_cost=Decimal(150),
                         market_price=Decimal(150), market_value=q * 150,
                         unrealized_pnl=Decimal(0)) for (a, s), q in held.items() if q]

    def part(self, coid: str, qty: str, price: str, execution_id: str, at: datetime,
             commission: str | None = "1.00") -> None:
        """A partial execution (cumulative figures on the order, as a venue reports them)."""
        order = self.orders[coid]
        self.fills.append(FillReport(
            execution_id=execution_id, client_order_id=coid, venue_order_id=order.venue_order_id,
            account_id="DU1", symbol=order.symbol, side=order.side, quantity=Decimal(qty),
            price=Decimal(price), commission=Decimal(commission or 0),
            commission_known=commission is not None, executed_at=at))
        filled = order.filled_quantity + Decimal(qty)
        before = order.filled_quantity * (order.avg_fill_price or 0)
        notional = before + Decimal(qty) * Decimal(price)
        status = OrderStatus.FILLED if filled == order.quantity else OrderStatus.PARTIALLY_FILLED
        self.orders[coid] = order.model_copy(update={
            "status": status, "filled_quantity": filled, "avg_fill_price": notional / filled})

    def report_commission(self, execution_id: str, commission: str) -> None:
        self.fills = [f.model_copy(update={"commission": Decimal(commission),
                                           "commission_known": True})
                      if f.execution_id == execution_id else f for f in self.fills]


class Kafka:
    """What the app does with a Poll: send every output, then commit; keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[Output] = []

    def deliver(self, poll: Poll) -> list[Output]:
        self.sent.extend(poll.outputs)
        poll.commit()
        return poll.outputs

    def on(self, topic: str) -> list[Any]:
        return [e for t, e in self.sent if t == topic]

    def seed_builder(self, venue: str = "fake") -> SeedBuilder:
        builder = SeedBuilder(venue)
        visit = {"fills": builder.fill, "orders": builder.order, "alerts": builder.alert}
        for topic, event in self.sent:
            if topic in visit:
                visit[topic](json.loads(event.model_dump_json()))
        return builder


@pytest.fixture
def venue() -> Venue:
    return Venue()


def kinds(outputs: list[Output]) -> list[tuple[str, str]]:
    return [(t, getattr(e, "status", None) or getattr(e, "kind", None) or t[:-1])
            for t, e in outputs]


def event(output: Output) -> Any:
    """An output's event, typed loosely: the tests read fields of several event types."""
    return output[1]


async def placed(venue: Venue, signal: str = "123e4567-e89b-12d3-a456-426614174000") -> str:
    intent = intent_for(approval(id=signal))
    await venue.place(request_from(intent))
    return intent.client_order_id


def signal_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


async def started(venue: Venue, kafka: Kafka, **kw: Any) -> Reconciler:
    rec = Reconciler(venue, lookback=timedelta(hours=1), **kw)
    kafka.deliver(await rec.poll(T0))
    return rec


async def test_a_fill_is_published_once_then_the_order_state(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = Reconciler(venue, lookback=timedelta(hours=1))
    first = kafka.deliver(await rec.poll(T0))
    assert kinds(first) == [("orders", OrderStatus.ACCEPTED)]
    venue.fill(coid, "150.00", "exec-1", at=T0 + S)
    second = kafka.deliver(await rec.poll(T0 + 2 * S))
    assert kinds(second) == [("fills", "fill"), ("orders", OrderStatus.FILLED)]
    fill = second[0][1]
    assert isinstance(fill, Fill)
    assert (fill.price, fill.commission) == (Decimal("150.00"), Decimal("1.00"))
    assert fill.event_id == Fill.derive_event_id("fake", "exec-1")
    assert kafka.deliver(await rec.poll(T0 + 3 * S)) == []
    assert rec.watched == set()


@pytest.mark.parametrize("failing", ["open_orders", "status", "fills_since"])
async def test_a_venue_error_mid_poll_loses_no_fill(venue: Venue, failing: str) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    venue.fill(coid, "150.00", "exec-1", at=T0 + S)
    venue.fail(failing)
    if failing == "status":  # status is asked only for orders not open any more
        venue.orders[coid] = venue.orders[coid].model_copy(
            update={"status": OrderStatus.FILLED})
    with pytest.raises(TransientBrokerError):
        await rec.poll(T0 + 2 * S)
    assert kafka.deliver(await rec.poll(T0 + 3 * S))[:1] == [
        ("fills", kafka.on("fills")[0])]
    assert [f.execution_id for f in kafka.on("fills")] == ["exec-1"]
    assert kafka.deliver(await rec.poll(T0 + 4 * S)) == []
    assert [f.execution_id for f in kafka.on("fills")] == ["exec-1"]


async def test_a_failed_send_commits_nothing(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    venue.fill(coid, "150.00", "exec-1", at=T0 + S)
    lost = await rec.poll(T0 + 2 * S)  # the sends failed: commit() is never called
    again = await rec.poll(T0 + 3 * S)
    assert [e.event_id for _, e in again.outputs] == [e.event_id for _, e in lost.outputs]
    assert kinds(kafka.deliver(again)) == [("fills", "fill"), ("orders", OrderStatus.FILLED)]
    assert kafka.deliver(await rec.poll(T0 + 4 * S)) == []


async def test_a_commission_reported_late_is_waited_for(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    venue.part(coid, "133", "150.00", "exec-1", at=T0 + S, commission=None)
    held = kafka.deliver(await rec.poll(T0 + 2 * S))
    assert held == []  # neither the fill nor the filled state it made
    venue.report_commission("exec-1", "1.33")
    out = kafka.deliver(await rec.poll(T0 + 5 * S))
    assert kinds(out) == [("fills", "fill"), ("orders", OrderStatus.FILLED)]
    assert kafka.on("fills")[0].commission == Decimal("1.33")
    assert kafka.on("alerts") == []


async def test_a_commission_missing_after_the_grace_period_is_alerted(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka, commission_grace=timedelta(seconds=10))
    venue.part(coid, "133", "150.00", "exec-1", at=T0 + S, commission=None)
    assert kafka.deliver(await rec.poll(T0 + 2 * S)) == []
    assert kafka.deliver(await rec.poll(T0 + 11 * S)) == []
    out = kafka.deliver(await rec.poll(T0 + 12 * S))
    assert kinds(out) == [("alerts", AlertKind.LATE_COMMISSION), ("fills", "fill"),
                          ("orders", OrderStatus.FILLED)]
    alert = kafka.on("alerts")[0]
    print("late commission alert:", alert.message)
    assert alert.correlation_id == kafka.on("fills")[0].correlation_id
    assert kafka.on("fills")[0].commission == Decimal(0)
    assert rec.commission_wait == {}


async def test_a_held_fill_keeps_the_cursor_behind_it(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    venue.part(coid, "33", "150.00", "exec-1", at=T0 + S, commission=None)
    venue.part(coid, "100", "150.00", "exec-2", at=T0 + 90 * S)
    kafka.deliver(await rec.poll(T0 + 100 * S))
    assert [f.execution_id for f in kafka.on("fills")] == ["exec-2"]
    assert [e.status for e in kafka.on("orders")] == [OrderStatus.ACCEPTED]  # waits for exec-1
    assert rec.cursor is not None
    assert rec.cursor <= T0 + S
    venue.report_commission("exec-1", "1.00")
    kafka.deliver(await rec.poll(T0 + 101 * S))
    assert sorted(f.execution_id for f in kafka.on("fills")) == ["exec-1", "exec-2"]
    assert rec.cursor == T0 + 90 * S - rec.overlap


async def test_an_external_order_is_alerted_once_and_not_traded_on(venue: Venue) -> None:
    kafka = Kafka()
    await venue.place(OrderRequest(client_order_id="manual-1", symbol="MSFT", side="BUY",
                                   quantity=Decimal(1), order_type="MKT"))
    rec = await started(venue, kafka)
    assert kinds(kafka.sent) == [("alerts", AlertKind.EXTERNAL_ORDER)]
    alert = kafka.on("alerts")[0]
    assert (alert.client_order_id, alert.details["venue_order_id"]) == ("manual-1", "1")
    assert kafka.deliver(await rec.poll(T0 + S)) == []
    venue.fill("manual-1", "400.00", "exec-m", at=T0 + S)  # its fill: the same order, no news
    assert kafka.deliver(await rec.poll(T0 + 2 * S)) == []
    assert kafka.on("fills") == []
    assert kafka.on("orders") == []
    restarted = Reconciler(venue, lookback=timedelta(hours=1))
    restarted.seed(kafka.seed_builder().build())
    assert kafka.deliver(await restarted.poll(T0 + 3 * S)) == []  # read once: maybe in flight
    out = kafka.deliver(await restarted.poll(T0 + 4 * S))
    assert kinds(out) == [("alerts", AlertKind.POSITION_MISMATCH)]  # 1 MSFT not ours


async def test_an_external_order_seen_only_by_its_fill_is_alerted(venue: Venue) -> None:
    kafka = Kafka()
    rec = await started(venue, kafka)
    await venue.place(OrderRequest(client_order_id="7:12", symbol="MSFT", side="SELL",
                                   quantity=Decimal(2), order_type="MKT"))
    venue.fill("7:12", "400.00", "exec-m", at=T0 + S)
    out = kafka.deliver(await rec.poll(T0 + 2 * S))
    assert kinds(out) == [("alerts", AlertKind.EXTERNAL_ORDER)]
    assert event(out[0]).details["execution_id"] == "exec-m"


async def test_a_watched_order_the_venue_forgot_is_resolved(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    del venue.orders[coid]
    out = kafka.deliver(await rec.poll(T0 + S))
    assert kinds(out) == [("orders", OrderStatus.CANCELLED), ("alerts", AlertKind.ORDER_VANISHED)]
    cancelled, alert = event(out[0]), event(out[1])
    assert cancelled.reason_code == VANISHED
    assert cancelled.event_id == OrderEvent.derive_event_id(coid, OrderStatus.CANCELLED,
                                                            Decimal(0))
    assert alert.correlation_id == cancelled.correlation_id
    assert rec.watched == set()
    assert kafka.deliver(await rec.poll(T0 + 2 * S)) == []


async def test_a_pending_submit_order_is_given_time_to_reach_the_venue(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    pending = kafka.on("orders")[0].model_copy(update={
        "client_order_id": coid.replace("jx-123e", "jx-999e"),
        "status": OrderStatus.PENDING_SUBMIT, "occurred_at": T0})
    rec.on_order_event(pending)
    assert kafka.deliver(await rec.poll(T0 + 60 * S)) == []
    out = kafka.deliver(await rec.poll(T0 + 301 * S))
    assert kinds(out) == [("orders", OrderStatus.CANCELLED), ("alerts", AlertKind.ORDER_VANISHED)]


class LateNews(Venue):
    """Open orders read, then, before the pass judges them, the order fills and the
    submission stage's event of it arrives on `orders` (`during_read`)."""

    during_read: Any = None

    async def open_orders(self) -> list[OrderReport]:
        read = await super().open_orders()
        if self.during_read is not None:
            self.during_read()
            self.during_read = None
        return read


async def test_a_report_read_before_the_order_moved_on_is_stale_not_illegal() -> None:
    venue = LateNews()
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    assert rec.watched == {coid}

    def fills_meanwhile() -> None:
        venue.fill(coid, "150.00", "exec-1", at=T0 + S)
        rec.on_order_event(order_event(venue.orders[coid], venue.venue, T0 + S))

    venue.during_read = fills_meanwhile
    out = kafka.deliver(await rec.poll(T0 + 2 * S))  # judged `accepted` read vs `filled` known
    assert ("alerts", AlertKind.ILLEGAL_TRANSITION) not in kinds(out)
    out += kafka.deliver(await rec.poll(T0 + 3 * S))  # the fill, read again: published once
    assert [k for k in kinds(out) if k[0] == "alerts"] == []
    assert [e.execution_id for e in kafka.on("fills")] == ["exec-1"]
    assert rec.moved_at == {}  # forgotten once no pass in flight began before the move
    # The same report after the move was known is the venue going back: alerted.
    venue.orders[coid] = venue.orders[coid].model_copy(update={"status": OrderStatus.ACCEPTED})
    out = kafka.deliver(await rec.poll(T0 + 4 * S))
    assert kinds(out) == [("alerts", AlertKind.ILLEGAL_TRANSITION)]


async def test_a_report_that_moves_a_final_order_is_refused_and_alerted(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    venue.fill(coid, "150.00", "exec-1", at=T0 + S)
    kafka.deliver(await rec.poll(T0 + 2 * S))
    venue.orders[coid] = venue.orders[coid].model_copy(update={"status": OrderStatus.ACCEPTED})
    out = kafka.deliver(await rec.poll(T0 + 3 * S))
    assert kinds(out) == [("alerts", AlertKind.ILLEGAL_TRANSITION)]
    print("illegal transition alert:", event(out[0]).message)
    assert kafka.deliver(await rec.poll(T0 + 4 * S)) == []  # once
    assert [e.status for e in kafka.on("orders")] == [OrderStatus.ACCEPTED, OrderStatus.FILLED]


async def test_a_late_copy_of_an_earlier_state_does_not_reopen_an_order(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    venue.fill(coid, "150.00", "exec-1", at=T0)
    rec = await started(venue, kafka)
    late = OrderEvent(
        event_id=OrderEvent.derive_event_id(coid, OrderStatus.SUBMITTED, Decimal(0)),
        correlation_id=intent_for(approval()).correlation_id, client_order_id=coid,
        venue="fake", account_id="DU1", symbol="AAPL", side="BUY", order_type="LMT",
        quantity=Decimal(133), status=OrderStatus.SUBMITTED)
    rec.on_order_event(late)
    assert coid not in rec.watched
    assert kafka.deliver(await rec.poll(T0 + S)) == []


async def test_start_up_compares_positions_with_the_fills(venue: Venue) -> None:
    coid = await placed(venue)
    venue.fill(coid, "150.00", "exec-1", at=T0)
    venue.extra[("DU1", "AAPL")] = Decimal(-33)
    kafka = Kafka()
    rec = await started(venue, kafka)
    assert kafka.on("alerts") == []  # one read: it could be a fill between the two reads
    kafka.deliver(await rec.poll(T0 + S))
    (alert,) = kafka.on("alerts")
    assert alert.kind is AlertKind.POSITION_MISMATCH
    assert (alert.account_id, alert.symbol) == ("DU1", "AAPL")
    assert alert.details == {"venue_quantity": "100", "fills_quantity": "133",
                             "difference": "-33"}
    print("position mismatch alert:", alert.message)


async def test_a_fill_between_the_two_reads_is_not_a_mismatch(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = Reconciler(venue, lookback=timedelta(hours=1))
    read_fills = venue.fills_since

    async def fill_after_reading(since: datetime) -> list[FillReport]:
        out = await read_fills(since)
        if not venue.fills:
            venue.fill(coid, "150.00", "exec-1", at=T0)  # lands before positions are read
        return out

    venue.fills_since = fill_after_reading  # type: ignore[method-assign]
    kafka.deliver(await rec.poll(T0))
    assert rec.suspects == {("DU1", "AAPL"): (Decimal(133), Decimal(0), 1)}
    kafka.deliver(await rec.poll(T0 + S))
    assert kafka.on("alerts") == []
    assert rec.suspects == {}
    assert [f.execution_id for f in kafka.on("fills")] == ["exec-1"]


async def test_start_up_with_matching_positions_alerts_nothing(venue: Venue) -> None:
    coid = await placed(venue)
    venue.part(coid, "33", "150.00", "exec-1", at=T0)
    venue.part(coid, "100", "150.00", "exec-2", at=T0, commission=None)  # held, still counted
    kafka = Kafka()
    await started(venue, kafka)
    assert kafka.on("alerts") == []


async def test_memory_stays_bounded_over_many_finished_orders(venue: Venue) -> None:
    kafka = Kafka()
    rec = await started(venue, kafka, recent_limit=50)
    for n in range(400):
        coid = await placed(venue, signal_id(n))
        venue.fill(coid, "150.00", f"exec-{n}", at=T0 + n * S)
        kafka.deliver(await rec.poll(T0 + n * S + S))
    sizes = {"orders": len(rec.orders), "finished": len(rec.finished),
             "seen_executions": len(rec.seen_executions), "alerted": len(rec.alerted)}
    print("after 400 finished orders:", sizes)
    assert len(kafka.on("fills")) == 400
    assert sizes["orders"] == 0
    assert sizes["finished"] == 50
    assert sizes["seen_executions"] <= 31  # the fills within the overlap


async def test_a_restart_seeded_from_kafka_publishes_nothing_twice(venue: Venue) -> None:
    kafka = Kafka()
    a = await placed(venue, signal_id(1))
    b = await placed(venue, signal_id(2))
    c = await placed(venue, signal_id(3))
    await venue.place(OrderRequest(client_order_id="manual-1", symbol="MSFT", side="BUY",
                                   quantity=Decimal(1), order_type="LMT",
                                   limit_price=Decimal(1)))
    rec = await started(venue, kafka)
    venue.fill(a, "150.00", "exec-a", at=T0 + S)
    venue.part(b, "33", "150.00", "exec-b", at=T0 + S)
    del venue.orders[c]
    kafka.deliver(await rec.poll(T0 + 2 * S))
    before = len(kafka.sent)
    print("published before the restart:", kinds(kafka.sent))
    restarted = Reconciler(venue, lookback=timedelta(hours=1))
    restarted.seed(kafka.seed_builder().build())
    assert restarted.cursor == T0 + S - restarted.overlap
    assert restarted.watched == {b}
    assert kafka.deliver(await restarted.poll(T0 + 3 * S)) == []
    assert venue.since[-1] == T0 + S - restarted.overlap  # not the blind lookback
    venue.part(b, "100", "151.00", "exec-b2", at=T0 + 4 * S)  # while the worker was down
    out = kafka.deliver(await restarted.poll(T0 + 5 * S))
    assert kinds(out) == [("fills", "fill"), ("orders", OrderStatus.FILLED)]
    assert len(kafka.sent) == before + 2
    ids = [e.event_id for _, e in kafka.sent]
    assert len(ids) == len(set(ids))


async def test_partial_fills_aggregate_to_the_venue_figures(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    for n, (qty, price) in enumerate([("33", "150.00"), ("50", "149.50"), ("50", "149.97")]):
        venue.part(coid, qty, price, f"exec-{n}", at=T0 + n * S)
        kafka.deliver(await rec.poll(T0 + n * S + S))
    from agents.decisions.order_state import aggregate

    fills = kafka.on("fills")
    last = kafka.on("orders")[-1]
    assert aggregate((f.quantity, f.price) for f in fills) == (
        last.filled_quantity, last.avg_fill_price)
    assert [e.status for e in kafka.on("orders")] == [
        OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED]


def test_alerts_on_kafka_seed_only_reconciliation_alerts() -> None:
    builder = SeedBuilder("fake")
    alert = Alert.of(AlertKind.VENUE_UNREACHABLE, "submission", "down", "x")
    builder.alert(json.loads(alert.model_dump_json()))
    builder.alert({"not": "an alert"})
    builder.fill({"garbage": True})
    builder.order({"status": "nonsense"})
    assert builder.build().alerts == set()


class OneCancelsAll(Venue):
    """A bracket whose entry and take-profit filled, and whose stop-loss the take-profit's
    fill cancelled, all between two passes: no pass ever saw an exit open."""

    def __init__(self, parent: str, with_stop: bool = True) -> None:
        super().__init__()
        self.parent = parent
        self.with_stop = with_stop
        self.looked_up: list[str] = []

    async def open_orders(self) -> list[OrderReport]:
        return []

    async def fills_since(self, since: datetime) -> list[FillReport]:
        return [FillReport(
            execution_id="exec-tp", client_order_id=f"{self.parent}-tp",
            venue_order_id="2", parent_client_order_id=self.parent, leg=OrderLeg.TAKE_PROFIT,
            account_id="DU1", symbol="AAPL", side=Side.SELL, quantity=Decimal(10),
            price=Decimal("160"), executed_at=T0 + S)]

    async def status(self, client_order_id: str) -> OrderReport:
        self.looked_up.append(client_order_id)
        leg = {"tp": OrderLeg.TAKE_PROFIT, "sl": OrderLeg.STOP_LOSS}[client_order_id[-2:]]
        if leg is OrderLeg.STOP_LOSS and not self.with_stop:
            raise UnknownOrder(client_order_id)
        filled = leg is OrderLeg.TAKE_PROFIT
        return OrderReport(
            client_order_id=client_order_id, venue_order_id=str(len(self.looked_up)),
            parent_client_order_id=self.parent, leg=leg, account_id="DU1", symbol="AAPL",
            side=Side.SELL, order_type=OrderType.LMT if filled else OrderType.STP,
            quantity=Decimal(10), limit_price=Decimal("160") if filled else None,
            stop_price=None if filled else Decimal("140"),
            status=OrderStatus.FILLED if filled else OrderStatus.CANCELLED,
            filled_quantity=Decimal(10) if filled else Decimal(0),
            avg_fill_price=Decimal("160") if filled else None, created_at=T0, updated_at=T0 + S)


@pytest.mark.parametrize("with_stop", [True, False])
async def test_an_exit_its_sibling_cancelled_between_two_passes_is_published(
    with_stop: bool,
) -> None:
    parent = "jx-123e4567e89b12d3a456426614174000"
    venue = OneCancelsAll(parent, with_stop)
    kafka = Kafka()
    rec = Reconciler(venue, lookback=timedelta(hours=1))
    rec.started = True  # a pass after start-up
    outputs = kafka.deliver(await rec.poll(T0 + 2 * S))
    orders = {e.client_order_id: e.status for e in kafka.on("orders")}
    expected = {f"{parent}-tp": OrderStatus.FILLED}
    if with_stop:
        expected[f"{parent}-sl"] = OrderStatus.CANCELLED
    assert orders == expected
    assert [t for t, _ in outputs].count("fills") == 1
    assert not kafka.on("alerts")
    # once known, the sibling is not looked up again
    venue.looked_up.clear()
    kafka.deliver(await rec.poll(T0 + 3 * S))
    assert f"{parent}-sl" not in venue.looked_up


def counting_judgements(rec: Reconciler, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    judged: list[str] = []
    judge = rec._order

    def counted(report: OrderReport, found: Any) -> None:
        judged.append(report.client_order_id)
        judge(report, found)

    monkeypatch.setattr(rec, "_order", counted)
    return judged


async def test_an_open_order_unchanged_since_a_committed_pass_is_not_judged_again(
        venue: Venue, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day's resting orders are thousands: a pass judges what changed, not all of them."""
    coids = [await placed(venue, signal_id(n)) for n in range(50)]
    kafka = Kafka()
    rec = await started(venue, kafka)
    kafka.deliver(await rec.poll(T0 + S))  # judged against the states start-up published
    judged = counting_judgements(rec, monkeypatch)
    assert kafka.deliver(await rec.poll(T0 + 2 * S)) == []
    assert judged == []
    venue.part(coids[7], "33", "150.00", "exec-1", at=T0 + 2 * S)
    out = kafka.deliver(await rec.poll(T0 + 3 * S))
    assert judged == [coids[7]]
    assert kinds(out) == [("fills", "fill"), ("orders", OrderStatus.PARTIALLY_FILLED)]


async def test_a_pass_not_committed_judges_its_orders_again(venue: Venue) -> None:
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    kafka.deliver(await rec.poll(T0 + S))
    venue.part(coid, "33", "150.00", "exec-1", at=T0 + S)
    lost = await rec.poll(T0 + 2 * S)  # its sends failed: never committed
    again = kafka.deliver(await rec.poll(T0 + 3 * S))
    assert kinds(again) == kinds(lost.outputs) == [("fills", "fill"),
                                                   ("orders", OrderStatus.PARTIALLY_FILLED)]


async def test_an_unchanged_report_is_judged_again_once_the_order_moved_on(
        venue: Venue) -> None:
    """The venue still shows an order accepted after `orders` said it filled: the same report
    object as before, judged again against the new state (the venue going back: alerted)."""
    coid = await placed(venue)
    kafka = Kafka()
    rec = await started(venue, kafka)
    kafka.deliver(await rec.poll(T0 + S))
    accepted = venue.orders[coid]
    filled = accepted.model_copy(update={"status": OrderStatus.FILLED,
                                         "filled_quantity": accepted.quantity,
                                         "avg_fill_price": Decimal(150)})
    rec.on_order_event(order_event(filled, venue.venue, T0 + S))
    out = kafka.deliver(await rec.poll(T0 + 2 * S))
    assert venue.orders[coid] is accepted
    assert kinds(out) == [("alerts", AlertKind.ILLEGAL_TRANSITION)]
