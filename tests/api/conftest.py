"""The API over fakes of its ports: queries (no ClickHouse), Kafka publisher, signal lookup,
trading gate and venue. Users and approval keys are real files under a temp JAX_HOME."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from agents.decisions.config import RiskSettings
from agents.decisions.trading_state import TradingTable
from api.app import Services, create_app
from api.services import (
    Check,
    ControlService,
    DecisionService,
    Readiness,
    SignalService,
    venue_check,
)
from api.users import Role, UserStore
from jax_exec.keys import ensure_approver_key
from jax_exec.settings import Settings
from schemas.examples import SEED_SIGNAL
from schemas.ids import signal_event_id
from store.queries import (
    Cursor,
    FillRow,
    Order,
    OrderEventRow,
    Page,
    PnlRow,
    Queries,
    RejectionRow,
    SignalRow,
    TraceStep,
    TradeRecord,
)
from tests.fakes import FakeVenue

NOW = datetime.now(UTC)
SEED_CID = signal_event_id(SEED_SIGNAL["id"])
COID = f"jx-{SEED_CID.hex}"


def _order() -> Order:
    return Order(client_order_id=COID, correlation_id=SEED_CID, leg="entry", venue="sim",
                 account_id="DU0000001", symbol="AAPL", side="BUY", order_type="LMT",
                 quantity=Decimal(133), limit_price=Decimal("150.00"), status="accepted",
                 filled_quantity=Decimal(0), created_at=NOW, updated_at=NOW,
                 strategy_id="ma_crossover_v1")


def _trade() -> TradeRecord:
    return TradeRecord(id=SEED_CID, signal_id=SEED_SIGNAL["id"], order_id=COID,
                       account_id="DU0000001", venue="sim", symbol="AAPL", direction="BUY",
                       quantity=Decimal("133.000000"), order_type="LMT",
                       entry_price=Decimal("150.000000"), stop_loss=Decimal(145),
                       take_profit=Decimal(160), strategy_id="ma_crossover_v1",
                       approved_by="alice", risk_amount=Decimal("665.00"),
                       risk_percent=Decimal("0.00665"), position_value=Decimal("19950.00"),
                       rr_ratio=Decimal("2.0"), bound_by="max_position_pct", status="pending",
                       created_at=NOW)


def _signal_row(status: str = "pending") -> SignalRow:
    return SignalRow(correlation_id=SEED_CID, signal_id=SEED_SIGNAL["id"], symbol="AAPL",
                     side="BUY", entry_price=Decimal(150), stop_loss=Decimal(145),
                     take_profit=Decimal(160), confidence=Decimal("0.85"),
                     strategy_id="ma_crossover_v1", first_seen_at=NOW, signal_at=NOW,
                     expires_at=NOW + timedelta(hours=1), ledger_status="seen", status=status)


class FakeQueries(Queries):
    """Canned rows; records the calls (no ClickHouse)."""

    def __init__(self) -> None:
        super().__init__(clickhouse=None)  # type: ignore[arg-type]
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.signal_status = "pending"

    def _call(self, name: str, **kw: Any) -> None:
        self.calls.append((name, kw))

    async def orders(self, *a: Any, **kw: Any) -> Page[Order]:  # type: ignore[override]
        self._call("orders", args=a, **kw)
        return Page([_order()], Cursor(NOW, COID).encode())

    async def order(self, client_order_id: str) -> Order | None:
        return _order() if client_order_id == COID else None

    async def order_lifecycle(self, client_order_id: str) -> list[OrderEventRow]:
        return [OrderEventRow(event_id=uuid4(), occurred_at=NOW, status="submitted",
                              filled_quantity=Decimal(0))]

    async def fills_page(self, *a: Any, **kw: Any) -> Page[FillRow]:  # type: ignore[override]
        return Page([FillRow(event_id=uuid4(), correlation_id=SEED_CID, execution_id="e1",
                             client_order_id=COID, leg="entry", venue="sim",
                             account_id="DU0000001", symbol="AAPL", side="BUY",
                             quantity=Decimal(133), price=Decimal(150), commission=Decimal(1),
                             currency="USD", occurred_at=NOW)])

    async def positions(self, account_id: str | None = None) -> list[Any]:
        from store.queries import Position
        return [Position(account_id="DU1", symbol="AAPL", net_quantity=Decimal(133),
                         bought_quantity=Decimal(133), sold_quantity=Decimal(0),
                         avg_price=Decimal(150), commission=Decimal(1), last_fill_at=NOW)]

    async def trade_records(self, *a: Any, **kw: Any) -> Page[TradeRecord]:  # type: ignore[override]
        return Page([_trade()])

    async def trade_record(self, trade_id: UUID | str) -> TradeRecord | None:
        return _trade() if str(trade_id) in (str(SEED_CID), SEED_SIGNAL["id"]) else None

    async def signals(self, status: Any, now: datetime, default_ttl_seconds: int,
                      *a: Any, **kw: Any) -> Page[SignalRow]:
        row = _signal_row(self.signal_status)
        if kw.get("signal_id") not in (None, row.signal_id):
            return Page([])
        return Page([row] if status in (None, row.status) else [])

    async def pnl(self, by: Any, *a: Any, **kw: Any) -> list[PnlRow]:
        return [PnlRow(key="AAPL", trades=1, wins=1, losses=0, realized_pnl=Decimal("1328.00"),
                       commission=Decimal(2))]

    async def rejections_page(self, *a: Any, **kw: Any) -> Page[RejectionRow]:  # type: ignore[override]
        return Page([RejectionRow(event_id=uuid4(), correlation_id=SEED_CID, occurred_at=NOW,
                                  stage="sizing", reason_code="HALTED", message="halted")])

    async def trace(self, correlation_id: UUID) -> list[TraceStep]:
        if correlation_id != SEED_CID:
            return []
        return [TraceStep(event_id=SEED_CID, event_type="signal", occurred_at=NOW,
                          recorded_at=NOW, topic="signals", partition=0, offset=0)]


@dataclass
class FakePublisher:
    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    async def publish(self, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
        self.sent.append((topic, key, value))
        return 0, len(self.sent) - 1


class FakeGate:
    def __init__(self) -> None:
        self.table = TradingTable()

    def unknown(self, stage: Any) -> Any:
        return None

    def blocked(self, symbol: str, strategy_id: str | None, stage: Any = "sizing") -> Any:
        return None


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]
    publisher: FakePublisher
    queries: FakeQueries
    venue: FakeVenue
    settings: Settings
    readiness: Readiness

    def auth(self, role: str | None) -> dict[str, str]:
        if role is None:
            return {}
        token = self.tokens.get(role, "jxa_not-a-token")
        return {"Authorization": f"Bearer {token}"}


def make_api(home: Path) -> Api:
    settings = Settings(jax_home=home)
    users = UserStore.under(home)
    tokens = {role.value: users.add(f"{role.value}-user", role) for role in Role}
    for role in (Role.APPROVER, Role.ADMIN):
        ensure_approver_key(home, f"{role.value}-user")
    publisher, queries, venue, gate = FakePublisher(), FakeQueries(), FakeVenue(), FakeGate()
    risk = RiskSettings()

    async def lookup(signal_id: str, around: Any) -> dict[str, Any] | None:
        return dict(SEED_SIGNAL) if signal_id == SEED_SIGNAL["id"] else None

    async def ok() -> Check:
        return Check(True, {})

    readiness = Readiness({"kafka": ok, "clickhouse": ok, "venue": venue_check(venue)}, 5.0)
    services = Services(
        users=users, queries=queries,
        decisions=DecisionService(settings, publisher, lookup, timedelta(minutes=5), queries,
                                  risk),
        signals=SignalService(queries, risk, venue, gate, 5.0),
        control=ControlService(publisher, gate), readiness=readiness, venue=venue, timeout=5.0)
    client = TestClient(create_app(services), raise_server_exceptions=False)
    return Api(client, tokens, publisher, queries, venue, settings, readiness)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = make_api(tmp_path / "home")
    with made.client:
        yield made


def approval_sent(api: Api) -> dict[str, Any]:
    topic, _, value = api.publisher.sent[-1]
    assert topic == "approvals"
    obj: dict[str, Any] = json.loads(value)
    return obj
