"""Known-answer scenarios (real schema models) and fast synthetic load for tests and bench."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from schemas.events import (
    Approval,
    Decision,
    Event,
    Fill,
    OrderEvent,
    OrderIntent,
    OrderLeg,
    OrderStatus,
    OrderType,
    Rejection,
    Side,
    Signal,
    SizingBound,
    SizingFigures,
)
from schemas.ids import derive_id
from store.writer import EventRecord

TOPIC_OF = {
    "signal": "signals",
    "approval": "approvals",
    "order_intent": "order-intents",
    "order": "orders",
    "fill": "fills",
    "rejection": "rejections",
    "control": "control",
    "dead_letter": "dead-letter",
    "alert": "alerts",
}
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
D = Decimal


def _sizing(qty: Decimal, risk: Decimal) -> SizingFigures:
    return SizingFigures(
        equity=D("100000"),
        buying_power=D("200000"),
        risk_per_trade=D("0.01"),
        stop_distance=risk,
        risk_amount=risk * qty,
        risk_percent=D("0.5"),
        position_value=qty * D("150"),
        rr_ratio=D("2"),
        bound_by=SizingBound.RISK,
        uncapped_quantity=qty,
    )


@dataclass
class Scenario:
    """The events of a scripted trading day, and the ids tests check against."""

    events: list[Event] = field(default_factory=list)
    aapl_chain: list[UUID] = field(default_factory=list)

    def add(self, event: Event, *, chain: bool = False) -> Event:
        """Append an event; `chain` marks it as part of the AAPL causal story."""
        self.events.append(event)
        if chain:
            self.aapl_chain.append(event.event_id)
        return event

    def records(self, partitions: int = 1) -> list[EventRecord]:
        """Kafka-like records: topic per event type, offsets per (topic, partition)."""
        offsets: dict[tuple[str, int], int] = {}
        out: list[EventRecord] = []
        for event in self.events:
            topic = TOPIC_OF[str(getattr(event, "event_type", ""))]
            part = event.correlation_id.int % partitions
            off = offsets.get((topic, part), 0)
            offsets[(topic, part)] = off + 1
            out.append(
                EventRecord(
                    topic,
                    part,
                    off,
                    event.kafka_key,
                    event.model_dump_json().encode(),
                    event.recorded_at.timestamp(),
                )
            )
        return out


def _signal(sid: str, symbol: str, side: Side, entry: str, stop: str, at: datetime) -> Signal:
    return Signal.model_validate(
        {
            "id": sid,
            "symbol": symbol,
            "signal_type": side,
            "entry_price": D(entry),
            "stop_loss": D(stop),
            "strategy_id": "momo",
            "occurred_at": at,
            "recorded_at": at,
        }
    )


def _approval(sig: Signal, decision: Decision, by: str, at: datetime) -> Approval:
    return Approval.model_validate(
        {
            "signal": sig,
            "decision": decision,
            "approved_by": by,
            "decided_at": at,
            "recorded_at": at,
        }
    )


def _intent(
    appr: Approval, otype: OrderType, qty: str, limit: str | None, at: datetime
) -> OrderIntent:
    sig = appr.signal
    return OrderIntent(
        **OrderIntent.ids_for(appr),
        account_id="DU1",
        venue="sim",
        symbol=sig.symbol,
        side=sig.side,
        quantity=D(qty),
        order_type=otype,
        limit_price=D(limit) if limit else None,
        stop_loss=sig.stop_loss,
        strategy_id=sig.strategy_id,
        signal_id=sig.id,
        approved_by=appr.approved_by,
        sizing=_sizing(D(qty), abs(sig.entry_price - sig.stop_loss)),
        occurred_at=at,
        recorded_at=at,
    )


def _order(
    intent: OrderIntent, status: OrderStatus, cause: UUID, at: datetime, **kw: object
) -> OrderEvent:
    cid = str(kw.pop("client_order_id", intent.client_order_id))
    filled = D(str(kw.pop("filled", "0")))
    base: dict[str, object] = {
        "client_order_id": cid,
        "venue": "sim",
        "account_id": "DU1",
        "symbol": intent.symbol,
        "side": intent.side,
        "order_type": intent.order_type,
        "quantity": intent.quantity,
        "limit_price": intent.limit_price,
        "status": status,
        "filled_quantity": filled,
    }
    base.update(kw)
    return OrderEvent.model_validate(
        {
            **base,
            "event_id": OrderEvent.derive_event_id(cid, status, filled),
            "correlation_id": intent.correlation_id,
            "causation_id": cause,
            "occurred_at": at,
            "recorded_at": at,
        }
    )


def _fill(
    order: OrderEvent,
    exec_id: str,
    side: Side,
    qty: str,
    price: str,
    at: datetime,
    leg: OrderLeg = OrderLeg.ENTRY,
) -> Fill:
    return Fill(
        event_id=Fill.derive_event_id("sim", exec_id),
        correlation_id=order.correlation_id,
        causation_id=order.event_id,
        execution_id=exec_id,
        client_order_id=order.client_order_id,
        leg=leg,
        venue="sim",
        account_id="DU1",
        symbol=order.symbol,
        side=side,
        quantity=D(qty),
        price=D(price),
        commission=D("1.00"),
        occurred_at=at,
        recorded_at=at,
    )


def _aapl_round_trip(sc: Scenario) -> None:
    """BUY 100 AAPL at 150.00 (limit 149.95), exit 100 at 160.00 two hours later."""
    s = sc.add(_signal("sig-aapl", "AAPL", Side.BUY, "150.00", "145.00", T0), chain=True)
    assert isinstance(s, Signal)
    a = _approval(s, Decision.APPROVED, "alice", T0 + timedelta(seconds=30))
    sc.add(a, chain=True)
    i = _intent(a, OrderType.LMT, "100", "149.95", T0 + timedelta(seconds=30.5))
    sc.add(i, chain=True)
    sub = sc.add(
        _order(i, OrderStatus.SUBMITTED, i.event_id, T0 + timedelta(seconds=31)), chain=True
    )
    acc = sc.add(
        _order(i, OrderStatus.ACCEPTED, sub.event_id, T0 + timedelta(seconds=31.2)), chain=True
    )
    assert isinstance(acc, OrderEvent)
    f1 = sc.add(
        _fill(acc, "x-aapl-1", Side.BUY, "100", "150.00", T0 + timedelta(seconds=32)), chain=True
    )
    done = _order(
        i,
        OrderStatus.FILLED,
        f1.event_id,
        T0 + timedelta(seconds=32),
        filled="100",
        avg_fill_price=D("150.00"),
    )
    sc.add(done, chain=True)
    tp_id = f"{i.client_order_id}-tp"
    tp = _order(
        i,
        OrderStatus.ACCEPTED,
        done.event_id,
        T0 + timedelta(seconds=33),
        client_order_id=tp_id,
        side=Side.SELL,
        leg=OrderLeg.TAKE_PROFIT,
        parent_client_order_id=i.client_order_id,
        limit_price=D("160.00"),
    )
    sc.add(tp, chain=True)
    exit_at = T0 + timedelta(hours=2)
    f2 = sc.add(
        _fill(tp, "x-aapl-2", Side.SELL, "100", "160.00", exit_at, OrderLeg.TAKE_PROFIT), chain=True
    )
    sc.add(
        _order(
            i,
            OrderStatus.FILLED,
            f2.event_id,
            exit_at,
            client_order_id=tp_id,
            side=Side.SELL,
            leg=OrderLeg.TAKE_PROFIT,
            filled="100",
            parent_client_order_id=i.client_order_id,
            limit_price=D("160.00"),
        ),
        chain=True,
    )


def _others(sc: Scenario) -> None:
    """A rejected approval, a validation rejection, an open short and an open order."""
    msft = sc.add(_signal("sig-msft", "MSFT", Side.BUY, "400", "390", T0 + timedelta(minutes=5)))
    assert isinstance(msft, Signal)
    sc.add(_approval(msft, Decision.REJECTED, "bob", T0 + timedelta(minutes=5, seconds=90)))
    tsla = sc.add(_signal("sig-tsla", "TSLA", Side.BUY, "200", "190", T0 + timedelta(minutes=6)))
    assert isinstance(tsla, Signal)
    sc.add(
        Rejection(
            event_id=derive_id("rej", tsla.event_id),
            correlation_id=tsla.correlation_id,
            causation_id=tsla.event_id,
            stage="validation",
            reason_code="max_position_size",
            message="too big",
            details={"limit": "100"},
            signal_id=tsla.id,
            symbol="TSLA",
            strategy_id="momo",
            occurred_at=T0 + timedelta(minutes=6, seconds=1),
        )
    )
    nvda = sc.add(
        _signal("sig-nvda", "NVDA", Side.SELL, "100.00", "105.00", T0 + timedelta(minutes=7))
    )
    assert isinstance(nvda, Signal)
    na = _approval(nvda, Decision.APPROVED, "alice", T0 + timedelta(minutes=7, seconds=10))
    sc.add(na)
    ni = _intent(na, OrderType.MKT, "10", None, T0 + timedelta(minutes=7, seconds=11))
    sc.add(ni)
    nacc = _order(ni, OrderStatus.ACCEPTED, ni.event_id, T0 + timedelta(minutes=7, seconds=12))
    sc.add(nacc)
    nf = _fill(nacc, "x-nvda-1", Side.SELL, "10", "99.90", T0 + timedelta(minutes=7, seconds=13))
    sc.add(nf)
    sc.add(
        _order(
            ni,
            OrderStatus.FILLED,
            nf.event_id,
            nf.occurred_at,
            filled="10",
            avg_fill_price=D("99.90"),
        )
    )
    amd = sc.add(_signal("sig-amd", "AMD", Side.BUY, "120", "115", T0 + timedelta(minutes=8)))
    assert isinstance(amd, Signal)
    aa = _approval(amd, Decision.APPROVED, "carol", T0 + timedelta(minutes=8, seconds=5))
    sc.add(aa)
    ai = _intent(aa, OrderType.LMT, "20", "119.50", T0 + timedelta(minutes=8, seconds=6))
    sc.add(ai)
    sc.add(_order(ai, OrderStatus.ACCEPTED, ai.event_id, T0 + timedelta(minutes=8, seconds=7)))
    sc.add(_order(ai, OrderStatus.SUBMITTED, ai.event_id, T0 + timedelta(minutes=8, seconds=6.5)))


def trading_day() -> Scenario:
    """The scripted day the integration tests know the answers to."""
    sc = Scenario()
    _aapl_round_trip(sc)
    _others(sc)
    return sc


# ---------------------------------------------------------------- bench load (no pydantic)

_SIG = (
    '{{"event_id":"{eid}","correlation_id":"{cid}","causation_id":null,"schema_version":1,'
    '"occurred_at":"{at}","recorded_at":"{at}","event_type":"signal","id":"b-{n}",'
    '"symbol":"{sym}","signal_type":"BUY","entry_price":"{px}","stop_loss":"{stop}",'
    '"take_profit":null,"confidence":null,"strategy_id":"{strat}","ttl_seconds":null}}'
)
_FILL = (
    '{{"event_id":"{eid}","correlation_id":"{cid}","causation_id":"{cause}","schema_version":1,'
    '"occurred_at":"{at}","recorded_at":"{at}","event_type":"fill","execution_id":"e-{eid}",'
    '"client_order_id":"jx-{cidhex}","parent_client_order_id":null,"leg":"{leg}","venue":"sim",'
    '"venue_order_id":null,"account_id":"DU1","symbol":"{sym}","side":"{side}",'
    '"quantity":"100","price":"{px}","commission":"1.00","currency":"USD"}}'
)
_ORDER = (
    '{{"event_id":"{eid}","correlation_id":"{cid}","causation_id":"{cause}","schema_version":1,'
    '"occurred_at":"{at}","recorded_at":"{at}","event_type":"order","client_order_id":"jx-{cidhex}",'
    '"parent_client_order_id":null,"leg":"entry","venue":"sim","venue_order_id":null,'
    '"account_id":"DU1","symbol":"{sym}","side":"BUY","order_type":"MKT","quantity":"100",'
    '"limit_price":null,"stop_price":null,"status":"{status}","filled_quantity":"{filled}",'
    '"avg_fill_price":null,"reason_code":null,"message":null}}'
)
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMD", "TSLA", "META", "AMZN", "GOOG")
STRATEGIES = ("momo", "meanrev", "breakout")
EVENTS_PER_TRADE = 5


def synthetic_trade(n: int, start: datetime = T0) -> Iterator[tuple[str, UUID, str]]:
    """Signal, submitted, filled order and entry+exit fills of trade n: (topic, key, json)."""
    cid = derive_id("bench", n)
    at = start + timedelta(seconds=n * 3)
    sym, strat = SYMBOLS[n % len(SYMBOLS)], STRATEGIES[n % len(STRATEGIES)]
    px = 100 + n % 50
    ts = [
        (at + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")
        for ms in (0, 40, 90, 95, 600_000)
    ]
    sig_id = cid
    sub_id, filled_id = derive_id("bench-sub", n), derive_id("bench-filled", n)
    f1, f2 = derive_id("bench-f1", n), derive_id("bench-f2", n)
    common = {"cid": cid, "cidhex": cid.hex, "sym": sym}
    yield (
        "signals",
        cid,
        _SIG.format(eid=sig_id, at=ts[0], n=n, px=px, stop=px - 2, strat=strat, **common),
    )
    yield (
        "orders",
        cid,
        _ORDER.format(eid=sub_id, cause=sig_id, at=ts[1], status="submitted", filled=0, **common),
    )
    yield (
        "fills",
        cid,
        _FILL.format(eid=f1, cause=sub_id, at=ts[2], leg="entry", side="BUY", px=px, **common),
    )
    yield (
        "orders",
        cid,
        _ORDER.format(eid=filled_id, cause=f1, at=ts[3], status="filled", filled=100, **common),
    )
    exit_px = px + (n % 7) - 3
    yield (
        "fills",
        cid,
        _FILL.format(
            eid=f2, cause=f1, at=ts[4], leg="take_profit", side="SELL", px=exit_px, **common
        ),
    )
