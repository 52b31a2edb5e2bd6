"""The control stage without Kafka: FLATTEN over a fake venue (cancels, liquidation orders,
idempotent on redelivery), the gate's fail-closed answers, the trip monitor."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from agents.context import Output, Source
from agents.control import (
    ControlStage,
    Flatten,
    TradingGate,
    TripMonitor,
    TripSettings,
    is_liquidation_of,
    liquidation_client_order_id,
    net_position,
)
from agents.decisions.reasons import ReasonCode
from agents.orders import is_ours
from agents.retry import RetryPolicy
from brokers.exceptions import NotCancellable, VenueTimeout
from brokers.port import AccountKind, AccountSnapshot, OrderRequest, Position
from schemas.events import (
    Alert,
    AlertKind,
    ControlAction,
    ControlCommand,
    OrderEvent,
    OrderStatus,
    OrderType,
    Rejection,
    Side,
    TradingMode,
    TradingStateChanged,
)
from schemas.ids import correlation_from_client_order_id
from tests.fakes import T0, FakeVenue

D = Decimal


async def no_sleep(_: float) -> None:
    return None


FAST = RetryPolicy(attempts=3, total_seconds=5, sleep=no_sleep)


class BookVenue(FakeVenue):
    """FakeVenue with positions: a market order fills at once at `price` and moves the
    position; a cancel of a finished order raises NotCancellable, as venues do."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, Decimal] = {}
        self.price = D("100")
        self.fill_market = True
        self.cancel_failures = 0

    async def place(self, order: OrderRequest) -> Any:
        report = await super().place(order)
        if order.order_type is OrderType.MKT and self.fill_market:
            self.fill(order.client_order_id, str(self.price), f"x-{order.client_order_id}")
            sign = 1 if order.side is Side.BUY else -1
            self.held[order.symbol] = self.held.get(order.symbol, D(0)) + sign * order.quantity
            return self.orders[order.client_order_id]
        return report

    async def cancel(self, client_order_id: str) -> Any:
        self.calls.append(("cancel", client_order_id))
        if self.cancel_failures:
            self.cancel_failures -= 1
            raise VenueTimeout("cancel", 1.0, "fake")
        report = await self.status(client_order_id)
        if report.status.is_terminal:
            raise NotCancellable(client_order_id)
        return await super().cancel(client_order_id)

    async def positions(self) -> list[Position]:
        return [Position(account_id="DU1", symbol=s, quantity=q, avg_cost=self.price,
                         market_price=self.price, market_value=q * self.price,
                         unrealized_pnl=D(0)) for s, q in self.held.items() if q]

    def rest(self, coid: str, symbol: str, side: Side, qty: str) -> None:
        self.orders[coid] = self._report(coid, symbol, side, qty)

    def _report(self, coid: str, symbol: str, side: Side, qty: str) -> Any:
        from brokers.port import OrderReport

        return OrderReport(client_order_id=coid, venue_order_id=str(len(self.orders) + 1),
                           account_id="DU1", symbol=symbol, side=side,
                           order_type=OrderType.LMT, quantity=D(qty), limit_price=D("99"),
                           status=OrderStatus.ACCEPTED, created_at=T0, updated_at=T0)


def command(action: ControlAction = ControlAction.FLATTEN, **scope: Any) -> ControlCommand:
    return ControlCommand.model_validate({"command": action, "issued_by": "alice",
                                          "reason": "test", "occurred_at": T0.isoformat(),
                                          **scope})


class Sink:
    def __init__(self) -> None:
        self.outputs: list[Output] = []

    async def __call__(self, outputs: list[Output]) -> None:
        self.outputs.extend(outputs)

    def on(self, topic: str) -> list[Any]:
        return [e for t, e in self.outputs if t == topic]


def account_with_book() -> BookVenue:
    venue = BookVenue()
    venue.held = {"AAPL": D(100), "MSFT": D(-40)}
    ours = "jx-" + "a" * 32
    venue.rest(ours, "AAPL", Side.BUY, "10")  # an open entry of ours
    venue.rest(f"{ours}-tp", "AAPL", Side.SELL, "100")  # bracket exits of a filled entry
    venue.rest(f"{ours}-sl", "AAPL", Side.SELL, "100")
    venue.rest("jx-" + "b" * 32, "MSFT", Side.SELL, "5")
    venue.rest("manual-1", "GOOG", Side.BUY, "1")  # an order someone placed by hand
    return venue


def ready_gate() -> TradingGate:
    gate = TradingGate("unused:9092", lambda t: t)
    gate.ready.set()
    gate._confirmed = time.time()
    return gate


def stage_for(venue: BookVenue, sink: Sink, gate: TradingGate | None = None) -> ControlStage:
    flatten = Flatten(venue, FAST, sink, settle_seconds=5, sleep=no_sleep)
    return ControlStage(gate or ready_gate(), flatten, sink)


async def test_flatten_cancels_every_order_then_closes_every_position() -> None:
    venue, sink = account_with_book(), Sink()
    stage = stage_for(venue, sink)
    cmd = command()
    assert await stage.handle(cmd.model_dump_json().encode(), Source("control", 0, 7)) == []
    assert await venue.open_orders() == []
    assert await venue.positions() == []
    states = sink.on("trading-state")
    assert [s.mode for s in states] == [TradingMode.FLATTENING, TradingMode.HALTED]
    assert states[-1].details["complete"] == "true"
    assert states[-1].details["orders_cancelled"] == "5"
    assert stage.gate.table.mode_of("account") is TradingMode.HALTED
    orders = sink.on("orders")
    cancelled = {e.client_order_id for e in orders if e.status is OrderStatus.CANCELLED}
    assert cancelled == {o for o in venue.orders if not o.startswith("jx-" + cmd.event_id.hex)}
    liquidations = [e for e in orders if e.reason_code == "liquidation"]
    by_coid: dict[str, list[OrderStatus]] = {}
    for e in liquidations:
        by_coid.setdefault(e.client_order_id, []).append(e.status)
    assert by_coid == {
        liquidation_client_order_id(cmd.event_id, "AAPL"): [
            OrderStatus.SUBMITTED, OrderStatus.FILLED, OrderStatus.FILLED],
        liquidation_client_order_id(cmd.event_id, "MSFT"): [
            OrderStatus.SUBMITTED, OrderStatus.FILLED, OrderStatus.FILLED],
    }
    sides = {e.symbol: (e.side, e.quantity) for e in liquidations}
    assert sides == {"AAPL": (Side.SELL, D(100)), "MSFT": (Side.BUY, D(40))}
    for e in liquidations:  # recorded by reconciliation too, under the command
        assert is_ours(e.client_order_id)
        assert correlation_from_client_order_id(e.client_order_id) == cmd.event_id
        assert e.correlation_id == e.causation_id == cmd.event_id
    manual = [e for e in orders if e.client_order_id == "manual-1"]
    assert manual
    assert manual[0].correlation_id == cmd.event_id
    print(f"flatten: {len(cancelled)} cancelled, {len(by_coid)} liquidation orders; "
          f"details {states[-1].details}")


async def test_a_redelivered_flatten_places_nothing_twice() -> None:
    venue, sink = account_with_book(), Sink()
    venue.fill_market = False  # the market orders rest: the first delivery does not finish
    stage = stage_for(venue, sink)
    cmd = command()
    raw = cmd.model_dump_json().encode()
    stage.flatten.settle_seconds = 0
    await stage.handle(raw, Source("control", 0, 3))
    placed = [c for kind, c in venue.calls if kind == "place"]
    assert len(placed) == 2
    # delivered again (a crash before the commit): the state is FLATTENING -> HALTED(incomplete);
    # rerunning looks the liquidation ids up and places no second order for them
    stage.gate.table.states.clear()
    await stage.handle(raw, Source("control", 0, 3))
    again = [c for kind, c in venue.calls if kind == "place"]
    round0 = {liquidation_client_order_id(cmd.event_id, s) for s in ("AAPL", "MSFT")}
    assert set(placed) == round0
    assert again == placed  # looked up, never placed twice
    # with time to settle, the redelivery closes what the cancelled round-0 orders left
    venue.fill_market = True
    stage.flatten.settle_seconds = 5
    stage.gate.table.states.clear()
    await stage.handle(raw, Source("control", 0, 3))
    last = [c for kind, c in venue.calls if kind == "place"][len(placed):]
    assert sorted(map(str, last)) == sorted(liquidation_client_order_id(cmd.event_id, s, 1)
                                  for s in ("AAPL", "MSFT"))
    assert await venue.positions() == []
    assert sink.on("trading-state")[-1].details["complete"] == "true"
    alerts = sink.on("alerts")
    assert alerts
    assert alerts[0].kind is AlertKind.VENUE_UNREACHABLE


async def test_a_finished_flatten_redelivered_does_nothing() -> None:
    venue, sink = account_with_book(), Sink()
    stage = stage_for(venue, sink)
    raw = command().model_dump_json().encode()
    await stage.handle(raw, Source("control", 0, 3))
    calls, events = len(venue.calls), len(sink.outputs)
    await stage.handle(raw, Source("control", 0, 3))
    assert len(venue.calls) == calls
    assert len(sink.outputs) == events


async def test_flatten_of_one_symbol_leaves_the_rest() -> None:
    venue, sink = account_with_book(), Sink()
    stage = stage_for(venue, sink)
    await stage.handle(command(symbol="MSFT").model_dump_json().encode(), Source("control", 0, 1))
    assert {o.symbol for o in await venue.open_orders()} == {"AAPL", "GOOG"}
    assert {p.symbol: p.quantity for p in await venue.positions()} == {"AAPL": D(100)}
    assert stage.gate.table.mode_of("symbol:MSFT") is TradingMode.HALTED
    assert stage.gate.table.mode_of("account") is TradingMode.ACTIVE


async def test_flatten_retries_a_transient_cancel_failure() -> None:
    venue, sink = account_with_book(), Sink()
    venue.cancel_failures = 2
    stage = stage_for(venue, sink)
    await stage.handle(command().model_dump_json().encode(), Source("control", 0, 1))
    assert await venue.open_orders() == []
    assert sink.on("trading-state")[-1].details["complete"] == "true"


async def test_halt_resume_and_bad_input() -> None:
    venue, sink = BookVenue(), Sink()
    stage = stage_for(venue, sink)
    await stage.handle(command(ControlAction.HALT, symbol="AAPL").model_dump_json().encode(),
                       Source("control", 0, 1))
    assert stage.gate.check("AAPL", None, Side.BUY, D(1), D(0)) is not None
    assert stage.gate.check("MSFT", None, Side.BUY, D(1), D(0)) is None
    await stage.handle(command(ControlAction.RESUME, symbol="AAPL").model_dump_json().encode(),
                       Source("control", 0, 2))
    assert stage.gate.check("AAPL", None, Side.BUY, D(1), D(0)) is None
    assert venue.calls == []  # HALT / RESUME never touch the venue
    dead = await stage.handle(b"{not json", Source("control", 0, 3))
    assert dead
    assert dead[0][0] == "dead-letter"
    dead = await stage.handle(b'{"command": "explode", "issued_by": "x"}', Source("control", 0, 4))
    assert dead
    assert dead[0][0] == "dead-letter"


async def test_the_gate_fails_closed() -> None:
    gate = TradingGate("unused:9092", lambda t: t, stale_after=5)
    refusal = gate.check("AAPL", None, Side.SELL, D(1), D(10))
    assert refusal is not None
    assert refusal.code is ReasonCode.TRADING_STATE_UNKNOWN
    gate.ready.set()
    gate._confirmed = time.time() - 6  # no answer from the broker for 6 s
    refusal = gate.blocked("AAPL", None, "submission")
    assert refusal is not None
    assert refusal.code is ReasonCode.TRADING_STATE_UNKNOWN
    assert refusal.stage == "submission"
    gate._confirmed = time.time()
    assert gate.check("AAPL", None, Side.SELL, D(1), D(10)) is None


async def test_admit_reads_the_position_only_under_reduce_only() -> None:
    gate, reads = ready_gate(), []

    async def position() -> Decimal:
        reads.append(1)
        return D(10)

    assert await gate.admit("AAPL", "s", Side.SELL, D(5), position) is None
    assert reads == []
    from agents.decisions import trading_state as ts

    state = ts.apply_command(gate.table, command(ControlAction.REDUCE_ONLY), 0, T0).state
    assert state is not None
    gate.observe(state)
    assert await gate.admit("AAPL", "s", Side.SELL, D(5), position) is None
    refusal = await gate.admit("AAPL", "s", Side.BUY, D(5), position, client_order_id="jx-1")
    assert refusal is not None
    assert refusal.code is ReasonCode.REDUCE_ONLY
    assert refusal.details["client_order_id"] == "jx-1"
    assert len(reads) == 2


def test_liquidation_ids() -> None:
    cmd = command()
    coid = liquidation_client_order_id(cmd.event_id, "BRK.B", 2)
    assert coid == f"jx-{cmd.event_id.hex}-lq2-BRK.B"
    assert is_liquidation_of(coid, cmd.event_id)
    assert is_ours(coid)
    assert len(liquidation_client_order_id(cmd.event_id, "X" * 24, 9)) <= 64
    positions = [Position(account_id="DU1", symbol=s, quantity=D(q), avg_cost=D(1),
                          market_price=D(1), market_value=D(q), unrealized_pnl=D(0))
                 for s, q in (("AAPL", "5"), ("AAPL", "-2"), ("MSFT", "1"))]
    assert net_position(positions, "AAPL") == D(3)


class Published:
    def __init__(self) -> None:
        self.commands: list[ControlCommand] = []

    async def __call__(self, command: ControlCommand) -> None:
        self.commands.append(command)


def rejection(code: str, at: Any = None) -> Rejection:
    import uuid

    return Rejection(event_id=uuid.uuid4(), correlation_id=uuid.uuid4(), stage="submission",
                     reason_code=code, message="x", occurred_at=at or T0, recorded_at=T0)


async def test_trip_monitor_fires_and_names_its_trigger() -> None:
    published = Published()
    settings = TripSettings(venue_failures=3, rejection_burst=0, daily_loss_limit=D(500),
                            daily_loss_action="flatten")
    monitor = TripMonitor(settings, ready_gate(), published, clock=lambda: T0)
    for _ in range(3):
        await monitor.on_rejection(rejection("VENUE_UNAVAILABLE"))
    await monitor.on_rejection(rejection("VENUE_UNAVAILABLE", T0 - timedelta(hours=1)))  # old
    alert = Alert.of(AlertKind.POSITION_MISMATCH, "reconciliation", "DU1 AAPL: 10 vs 0", "a",
                     symbol="AAPL", details={"venue_quantity": "10", "fills_quantity": "0"})
    await monitor.on_alert(alert)
    venue = BookVenue()

    async def losing() -> AccountSnapshot:
        return AccountSnapshot(account_id="DU1", kind=AccountKind.PAPER, equity=D(99000),
                               cash=D(99000), buying_power=D(1), realized_pnl_today=D(-300),
                               unrealized_pnl=D(-250), as_of=T0)

    venue.account = losing  # type: ignore[method-assign]
    await monitor.on_account(venue)
    await monitor.on_account(venue)  # latched: once per breach
    by = [(c.issued_by, c.command) for c in published.commands]
    assert by == [("auto:venue_failures", ControlAction.HALT),
                  ("auto:reconciliation_mismatch", ControlAction.HALT),
                  ("auto:daily_loss", ControlAction.FLATTEN)]
    for c in published.commands:
        print(f"{c.issued_by}: {c.reason} {c.details}")
    assert published.commands[2].details["pnl"] == "-550"


async def test_a_halt_trip_is_not_repeated_on_a_halted_account() -> None:
    from agents.decisions import trading_state as ts

    published = Published()
    gate = ready_gate()
    state = ts.apply_command(gate.table, command(ControlAction.HALT), 0, T0).state
    assert isinstance(state, TradingStateChanged)
    gate.observe(state)
    monitor = TripMonitor(TripSettings(rejection_burst=2), gate, published, clock=lambda: T0)
    await monitor.on_rejection(rejection("INVALID_SYMBOL"))
    await monitor.on_rejection(rejection("INVALID_SYMBOL"))
    assert published.commands == []


def test_trip_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIP_DAILY_LOSS_LIMIT", "")
    monkeypatch.setenv("TRIP_VENUE_FAILURES", "7")
    monkeypatch.setenv("TRIP_DAILY_LOSS_ACTION", "flatten")
    s = TripSettings()
    assert s.daily_loss_limit is None
    assert s.venue_failures == 7
    assert s.daily_loss_action == "flatten"
    monkeypatch.setenv("TRIP_DAILY_LOSS_ACTION", "panic")
    with pytest.raises(ValueError, match="daily_loss_action"):
        TripSettings()


def test_order_events_are_valid() -> None:
    assert OrderEvent.model_fields["reason_code"]  # liquidation marks ride on reason_code
