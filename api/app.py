"""The FastAPI application: routes over api.services and store.queries, bearer users with
roles, RFC 9457 errors. OpenAPI at /openapi.json, Swagger UI at /docs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path as PathLib
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api import problems
from api.problems import Problem
from api.services import (
    ControlService,
    DecisionService,
    Forbidden,
    NotFound,
    Readiness,
    RolloutService,
    ServiceError,
    SignalService,
    Unavailable,
    rollout_service,
)
from api.users import Role, User, UserStore
from brokers.port import OrderService
from schemas.events import ControlAction, Decision
from store.queries import (
    MAX_LIMIT,
    Cursor,
    FillRow,
    Order,
    OrderEventRow,
    PnlRow,
    Queries,
    RejectionRow,
    SignalRow,
    TraceStep,
    TradeRecord,
)

T = TypeVar("T")
API = "/api/v1"
WEB = PathLib(__file__).with_name("web")  # the operator's page: static files, vendored libs


@dataclass
class Services:
    """Everything a request may use; built once per process (api.server)."""

    users: UserStore
    queries: Queries
    decisions: DecisionService
    signals: SignalService
    control: ControlService
    readiness: Readiness
    venue: OrderService | None
    timeout: float
    live: Any = None  # api.live.LiveFeed where a Kafka tail feeds the page (else no stream)
    slack: Any = None  # slack_bolt AsyncApp (api.slack.slack_for) when Slack is configured
    rollout: RolloutService | None = None  # unless given, built from the settings (create_app)


# --- models ------------------------------------------------------------------------------


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class PageOut(Out, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; "
                                                      "null on the last page")


class Health(Out):
    status: Literal["ok"] = "ok"


class Ready(Out):
    status: Literal["ready"] = "ready"
    checks: dict[str, dict[str, Any]]


class Me(Out):
    name: str
    role: Role


class SizeNow(Out):
    quantity: Decimal | None = Field(description="The quantity an approval now would get; "
                                                 "null when it would be refused or is unknown")
    binding: str | None = Field(description="The limit that decides: a sizing bound "
                                            "(risk, max_position_pct, ...) or a refusal code")
    message: str | None = None
    figures: dict[str, Any] = {}


class SignalOut(SignalRow):
    size_now: SizeNow | None = None


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=1000)
    approved_by: str | None = Field(
        None, max_length=128, description="Ignored unless it names the authenticated user "
                                          "(the approver is who the token belongs to)")


class RejectIn(DecisionIn):
    reason: str = Field(min_length=1, max_length=1000)


class ExecuteIn(DecisionIn):
    signal_id: str = Field(min_length=1, max_length=128)


class DecisionOut(Out):
    approval_event_id: str
    correlation_id: str
    signal_id: str
    decision: str
    approved_by: str
    key_id: str
    decided_at: datetime
    expires_at: datetime
    reason: str | None
    topic: str
    partition: int
    offset: int


class OrderDetail(Out):
    order: Order
    lifecycle: list[OrderEventRow]
    fills: list[FillRow]


class PositionOut(Out):
    account_id: str
    symbol: str
    quantity: Decimal = Field(description="Net quantity from our fills (signed)")
    avg_price: Decimal | None
    venue_quantity: Decimal | None = Field(description="What the venue holds (signed)")
    market_price: Decimal | None = Field(description="The venue's mark")
    market_value: Decimal | None
    unrealized_pnl: Decimal | None = Field(description="(mark - avg price) x quantity")
    mark_error: str | None = None


class TraceOut(Out):
    correlation_id: UUID
    steps: list[TraceStep]


class StateOut(Out):
    scope: str
    mode: str
    since: datetime
    issued_by: str
    reason: str | None
    command: str
    details: dict[str, str]


class CheckOut(Out):
    name: str
    value: str = Field(description="The paper period's figure")
    threshold: str = Field(description="What it must be (ROLLOUT_* settings)")
    passed: bool


class DailyPnl(Out):
    day: date
    realized_pnl: Decimal


class RolloutReportOut(Out):
    since: datetime | None
    until: datetime | None
    passed: bool = Field(description="Every check passed: an admin may sign the go-live")
    sha256: str = Field(description="What a go-live decision cites (report_sha256)")
    checks: list[CheckOut]
    rejections_by_reason: dict[str, int]
    daily_pnl: list[DailyPnl]


class GrantOut(Out):
    account_id: str
    ramp_factor: Decimal = Field(description="Sized quantities are scaled by this")
    max_order_notional: Decimal = Field(description="Largest live order value")
    decided_by: str = Field(description="The admin whose signed decision is in force")
    decision_event_id: UUID


class IgnoredDecision(Out):
    reason_code: str
    message: str


class GrantsOut(Out):
    grants: list[GrantOut] = Field(description="Live accounts allowed to trade, at what ramp")
    ignored: list[IgnoredDecision] = Field(
        description="Decisions on `rollout` whose signature, signer or chain did not check out")


class ControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    symbol: str | None = Field(None, min_length=1, max_length=32)
    strategy: str | None = Field(None, min_length=1, max_length=128)
    confirm: bool = Field(False, description="flatten only: must be true")


class ControlOut(Out):
    command_id: UUID
    command: str
    scope: str
    issued_by: str
    reason: str | None
    offset: int


# --- auth --------------------------------------------------------------------------------


bearer = HTTPBearer(auto_error=False, description="A token from `jax-exec users add`")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def require(role: Role) -> Callable[..., Awaitable[User]]:
    async def check(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> User:
        challenge = {"WWW-Authenticate": 'Bearer realm="jax-execution"'}
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _Http(401, "a bearer token is required (Authorization: Bearer <token>; "
                             "`jax-exec users add NAME --role R` makes one)", challenge)
        user = _services(request).users.authenticate(credentials.credentials)
        if user is None:
            raise _Http(401, "the bearer token is not valid (unknown or revoked)", challenge)
        if not user.role.allows(role):
            raise Forbidden(f"{user.name} is a {user.role.value}; this needs the "
                            f"{role.value} role")
        return user
    return check


class _Http(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


Viewer = Annotated[User, Depends(require(Role.VIEWER))]
Approver = Annotated[User, Depends(require(Role.APPROVER))]
Admin = Annotated[User, Depends(require(Role.ADMIN))]
Svc = Annotated[Services, Depends(_services)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
CursorQ = Annotated[str | None, Query(max_length=512, description="From next_cursor")]
Since = Annotated[AwareDatetime | None, Query(description="From (inclusive), with a UTC offset")]
Until = Annotated[AwareDatetime | None, Query(description="Until (exclusive), with a UTC offset")]
Text = Annotated[str | None, Query(min_length=1, max_length=128)]
SignalId = Annotated[str, Path(min_length=1, max_length=128)]
Action = Annotated[Literal["halt", "reduce-only", "flatten", "resume"], Path()]


def _cursor(text: str | None) -> Cursor | None:
    return Cursor.decode(text) if text else None


async def _bounded(services: Services, call: Awaitable[T]) -> T:
    async with asyncio.timeout(services.timeout):
        return await call


# --- the app -----------------------------------------------------------------------------


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 422, 500, 503)
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
CONFLICT: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 409: {"model": Problem}}


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Jax Execution API", version="1", description=(
        "Approve signals (signed for the authenticated user), query orders, fills, positions, "
        "trades and P&L, and command the kill switch. Bearer tokens from `jax-exec users add`;"
        " errors are RFC 9457 problem+json."))
    if services.rollout is None and getattr(services.queries, "ch", None) is not None:
        services.rollout = rollout_service(services.decisions.settings, services.queries)
    app.state.services = services
    problems.install(app)

    @app.exception_handler(_Http)
    async def http_problem(request: Request, exc: _Http) -> JSONResponse:
        return problems.problem(exc.status, exc.detail, request, headers=exc.headers)

    @app.get("/health", response_model=Health, tags=["health"])
    async def health() -> Health:
        """The process is alive (nothing else is checked)."""
        return Health()

    @app.get("/ready", response_model=Ready, tags=["health"],
             responses={503: {"model": Problem}})
    async def ready(request: Request, svc: Svc) -> Any:
        """Kafka, ClickHouse, the venue, the audit sink's lag and the trading state."""
        results = await svc.readiness.run()
        checks = {name: {"ok": c.ok, **c.detail} for name, c in results.items()}
        failing = [name for name, c in results.items() if not c.ok]
        if failing:
            return problems.problem(503, f"not ready: {', '.join(failing)}", request,
                                    failing=failing, checks=checks)
        return Ready(checks=checks)

    app.include_router(_router(), prefix=API)
    _pages(app)
    _problem_media_type(app)
    return app


def _pages(app: FastAPI) -> None:
    """The operator's page at / (static; it calls the API with the token the user typed)
    and its live stream. Not in the OpenAPI spec: they are not part of the API contract."""
    app.mount("/web", StaticFiles(directory=WEB), name="web")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-store"})

    @app.get(f"{API}/stream", include_in_schema=False)
    async def stream(user: Viewer, svc: Svc) -> StreamingResponse:
        """Server-sent events: orders, fills, rejections, trading-state, signals, alerts as
        they reach Kafka (the page's live updates; a viewer token is enough)."""
        if svc.live is None:
            raise Unavailable("no live feed in this process (the API runs without its Kafka "
                              "tail); reload the page for fresh data")
        return StreamingResponse(svc.live.subscribe(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    @app.post("/slack/events", include_in_schema=False)
    async def slack(request: Request, svc: Svc) -> Any:
        """Slack's interactivity requests (buttons); slack-bolt verifies the signature and
        the timestamp before any handler runs."""
        if svc.slack is None:
            raise NotFound("Slack is not configured (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET)")
        from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler

        return await AsyncSlackRequestHandler(svc.slack).handle(request)


def _problem_media_type(app: FastAPI) -> None:
    """Document every 4xx/5xx answer as application/problem+json (what it is)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = plain()
            for path in spec.get("paths", {}).values():
                for operation in path.values():
                    for code, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if str(code)[0] in "45" and "application/json" in content:
                            content[problems.MEDIA_TYPE] = content.pop("application/json")
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _router() -> APIRouter:
    r = APIRouter(responses=ERRORS)
    _reads(r)
    _decisions(r)
    _kill_switch(r)
    _rollout(r)
    return r


def _reads(r: APIRouter) -> None:  # noqa: C901 - one small function per endpoint
    @r.get("/me", response_model=Me, tags=["users"])
    async def me(user: Viewer) -> Me:
        """Who the token belongs to."""
        return Me(name=user.name, role=user.role)

    @r.get("/signals", response_model=PageOut[SignalOut], tags=["signals"])
    async def signals(
        user: Viewer, svc: Svc,
        status: Annotated[Literal["pending", "approved", "rejected", "expired"],
                          Query(description="pending: valid, undecided, unexpired")] = "pending",
        symbol: Text = None, strategy: Text = None, limit: Limit = 100, cursor: CursorQ = None,
    ) -> PageOut[SignalOut]:
        """Signals by status; pending ones with the size an approval now would get."""
        page, previews = await _bounded(svc, svc.signals.list(
            status, limit, _cursor(cursor), symbol, strategy))
        items = [SignalOut(**row.model_dump(), size_now=_size(previews.get(row.signal_id)))
                 for row in page.items]
        return PageOut[SignalOut](items=items, next_cursor=page.next_cursor)

    @r.get("/orders", response_model=PageOut[Order], tags=["orders"])
    async def orders(
        user: Viewer, svc: Svc,
        status: Annotated[Literal["open", "closed", "all"], Query()] = "all",
        symbol: Text = None, strategy: Text = None, since: Since = None, until: Until = None,
        limit: Limit = 100, cursor: CursorQ = None,
    ) -> PageOut[Order]:
        """Orders in their current state, newest first."""
        page = await _bounded(svc, svc.queries.orders(status, symbol, strategy, since, until,
                                                      limit, _cursor(cursor)))
        return PageOut[Order](items=page.items, next_cursor=page.next_cursor)

    @r.get("/orders/{client_order_id}", response_model=OrderDetail, tags=["orders"],
           responses=NOT_FOUND)
    async def order(user: Viewer, svc: Svc,
                    client_order_id: Annotated[str, Path(max_length=200)]) -> OrderDetail:
        """One order, its lifecycle (every state it went through) and its fills."""
        found = await _bounded(svc, svc.queries.order(client_order_id))
        if found is None:
            raise NotFound(f"no order {client_order_id!r}")
        lifecycle = await _bounded(svc, svc.queries.order_lifecycle(client_order_id))
        fills = await _bounded(svc, svc.queries.fills_page(client_order_id=client_order_id))
        return OrderDetail(order=found, lifecycle=lifecycle, fills=fills.items)

    @r.get("/fills", response_model=PageOut[FillRow], tags=["orders"])
    async def fills(
        user: Viewer, svc: Svc, symbol: Text = None, strategy: Text = None,
        since: Since = None, until: Until = None, limit: Limit = 100, cursor: CursorQ = None,
    ) -> PageOut[FillRow]:
        """Executions, newest first."""
        page = await _bounded(svc, svc.queries.fills_page(
            symbol, strategy, since=since, until=until, limit=limit, cursor=_cursor(cursor)))
        return PageOut[FillRow](items=page.items, next_cursor=page.next_cursor)

    @r.get("/positions", response_model=list[PositionOut], tags=["orders"])
    async def positions(user: Viewer, svc: Svc) -> list[PositionOut]:
        """Open positions from our fills, with unrealized P&L at the venue's mark."""
        return await _bounded(svc, _positions(svc))

    @r.get("/trades", response_model=PageOut[TradeRecord], tags=["trades"])
    async def trades(
        user: Viewer, svc: Svc, symbol: Text = None, strategy: Text = None,
        status: Annotated[Literal["pending", "open", "closed", "cancelled", "rejected",
                                  "expired"] | None, Query()] = None,
        since: Since = None, until: Until = None, limit: Limit = 100, cursor: CursorQ = None,
    ) -> PageOut[TradeRecord]:
        """The seeds' trade records, newest first."""
        page = await _bounded(svc, svc.queries.trade_records(
            symbol, strategy, status, since, until, limit, _cursor(cursor)))
        return PageOut[TradeRecord](items=page.items, next_cursor=page.next_cursor)

    @r.get("/trades/{trade_id}", response_model=TradeRecord, tags=["trades"],
           responses=NOT_FOUND)
    async def trade(user: Viewer, svc: Svc,
                    trade_id: Annotated[str, Path(max_length=128)]) -> TradeRecord:
        """One trade by its id (the signal's correlation id) or its signal id."""
        found = await _bounded(svc, svc.queries.trade_record(trade_id))
        if found is None:
            raise NotFound(f"no trade {trade_id!r}")
        return found

    @r.get("/pnl", response_model=list[PnlRow], tags=["trades"])
    async def pnl(user: Viewer, svc: Svc,
                  by: Annotated[Literal["day", "strategy", "symbol"], Query()] = "day",
                  symbol: Text = None, strategy: Text = None, since: Since = None,
                  until: Until = None) -> list[PnlRow]:
        """Realized P&L of closed round trips by exit day (UTC), strategy or symbol."""
        return await _bounded(svc, svc.queries.pnl(by, since, until, symbol, strategy))

    @r.get("/rejections", response_model=PageOut[RejectionRow], tags=["orders"])
    async def rejections(
        user: Viewer, svc: Svc, stage: Text = None, reason_code: Text = None,
        symbol: Text = None, strategy: Text = None, since: Since = None, until: Until = None,
        limit: Limit = 100, cursor: CursorQ = None,
    ) -> PageOut[RejectionRow]:
        """Refusals with their reason codes and numbers, newest first."""
        page = await _bounded(svc, svc.queries.rejections_page(
            stage, reason_code, symbol, strategy, since, until, limit, _cursor(cursor)))
        return PageOut[RejectionRow](items=page.items, next_cursor=page.next_cursor)

    @r.get("/trace/{correlation_id}", response_model=TraceOut, tags=["trades"],
           responses=NOT_FOUND)
    async def trace(user: Viewer, svc: Svc, correlation_id: UUID) -> TraceOut:
        """One signal's whole story in causal order, with who approved it."""
        steps = await _bounded(svc, svc.queries.trace(correlation_id))
        if not steps:
            raise NotFound(f"no event with correlation id {correlation_id}")
        return TraceOut(correlation_id=correlation_id, steps=steps)


def _size(preview: Any) -> SizeNow | None:
    if preview is None:
        return None
    return SizeNow(quantity=preview.quantity, binding=preview.binding, message=preview.message,
                   figures=preview.figures)


async def _positions(svc: Services) -> list[PositionOut]:
    recorded = await svc.queries.positions()
    marks: dict[tuple[str, str], Any] = {}
    error = None
    if svc.venue is None:
        error = "no venue connection in this process"
    else:
        try:
            marks = {(p.account_id, p.symbol): p for p in await svc.venue.positions()}
        except Exception as exc:  # positions still answer, without the mark
            error = f"the venue could not be read: {exc!r}"[:300]
    out = []
    for p in recorded:
        mark = marks.pop((p.account_id, p.symbol), None)
        price = mark.market_price if mark is not None else None
        unrealized = (price - p.avg_price) * p.net_quantity if price is not None and \
            p.avg_price is not None else None
        out.append(PositionOut(
            account_id=p.account_id, symbol=p.symbol, quantity=p.net_quantity,
            avg_price=p.avg_price, venue_quantity=mark.quantity if mark else None,
            market_price=price, market_value=mark.market_value if mark else None,
            unrealized_pnl=unrealized, mark_error=error))
    for (account, symbol), mark in marks.items():  # held at the venue, not from our fills
        out.append(PositionOut(
            account_id=account, symbol=symbol, quantity=Decimal(0), avg_price=mark.avg_cost,
            venue_quantity=mark.quantity, market_price=mark.market_price,
            market_value=mark.market_value, unrealized_pnl=mark.unrealized_pnl))
    return out


def _decisions(r: APIRouter) -> None:
    async def decide(svc: Services, user: User, signal_id: str, decision: Decision,
                     body: DecisionIn) -> DecisionOut:
        if body.approved_by is not None and body.approved_by != user.name:
            raise ServiceError(
                f"approved_by is {body.approved_by!r} but the token is {user.name!r}'s: the "
                "approver is the authenticated user (omit approved_by)")
        decided = await _bounded(svc, svc.decisions.decide(signal_id, decision, user.name,
                                                          body.reason))
        return DecisionOut(**decided.__dict__)

    responses: dict[int | str, dict[str, Any]] = {**CONFLICT, 400: {"model": Problem}}

    @r.post("/signals/{signal_id}/approve", response_model=DecisionOut, status_code=202,
            tags=["signals"], responses=responses)
    async def approve(user: Approver, svc: Svc, signal_id: SignalId,
                      body: Annotated[DecisionIn | None, Body()] = None) -> DecisionOut:
        """Approve: a decision signed with your key is published on `approvals`."""
        return await decide(svc, user, signal_id, Decision.APPROVED, body or DecisionIn())

    @r.post("/signals/{signal_id}/reject", response_model=DecisionOut, status_code=202,
            tags=["signals"], responses=responses)
    async def reject(user: Approver, svc: Svc, signal_id: SignalId,
                     body: RejectIn) -> DecisionOut:
        """Reject (a reason is required): signed and published; the signal never trades."""
        return await decide(svc, user, signal_id, Decision.REJECTED, body)

    @r.post("/execute", response_model=DecisionOut, status_code=202, tags=["signals"],
            responses=responses)
    async def execute(user: Approver, svc: Svc, body: ExecuteIn) -> DecisionOut:
        """The seeds' execute: approve `signal_id` (same as /signals/{id}/approve)."""
        return await decide(svc, user, body.signal_id, Decision.APPROVED, body)


def _kill_switch(r: APIRouter) -> None:
    @r.get("/kill-switch", response_model=list[StateOut], tags=["kill switch"])
    async def state(user: Viewer, svc: Svc) -> list[StateOut]:
        """Every scope that ever got a command: mode, since, by whom, why (others: active)."""
        return [StateOut(scope=s.scope, mode=s.mode.value, since=s.occurred_at,
                         issued_by=s.issued_by, reason=s.reason, command=s.command.value,
                         details=s.details) for s in svc.control.states()]

    @r.post("/kill-switch/{action}", response_model=ControlOut, status_code=202,
            tags=["kill switch"], responses={400: {"model": Problem}})
    async def command(user: Admin, svc: Svc, action: Action, body: ControlIn) -> ControlOut:
        """halt | reduce-only | flatten | resume, for the account, a symbol or a strategy;
        published on `control` with you as issued_by. flatten needs "confirm": true."""
        if action == "flatten" and not body.confirm:
            raise ServiceError("flatten cancels every open order and closes every position at "
                               "market: send \"confirm\": true")
        issued, offset = await _bounded(svc, svc.control.issue(
            ControlAction(action.replace("-", "_")), user.name, body.reason, body.symbol,
            body.strategy))
        return ControlOut(command_id=issued.event_id, command=issued.command.value,
                          scope=issued.scope, issued_by=issued.issued_by, reason=issued.reason,
                          offset=offset)


def _rollout_of(svc: Services) -> RolloutService:
    if svc.rollout is None:  # like Slack unconfigured: nothing to serve here, not a fault
        raise NotFound("the rollout gate is not read in this process (it has no ClickHouse); "
                       "use `jax-exec rollout report` and `jax-exec rollout status`")
    return svc.rollout


def _rollout(r: APIRouter) -> None:
    @r.get("/rollout/report", response_model=RolloutReportOut, tags=["rollout"],
           responses=NOT_FOUND)
    async def report(user: Viewer, svc: Svc, since: Since = None, until: Until = None,
                     account: Text = None) -> RolloutReportOut:
        """The paper period judged against the ROLLOUT_* thresholds (`jax-exec rollout
        report`): each check with its figure, its threshold and whether it passed."""
        judged = await _bounded(svc, _rollout_of(svc).report(since, until, account))
        d = judged.as_dict()
        return RolloutReportOut(
            since=since, until=until, passed=judged.passed, sha256=judged.sha256(),
            checks=[CheckOut(**c) for c in d["checks"]],
            rejections_by_reason=d["rejections_by_reason"],
            daily_pnl=[DailyPnl(day=day, realized_pnl=pnl)
                       for day, pnl in judged.figures.daily_pnl])

    @r.get("/rollout/grants", response_model=GrantsOut, tags=["rollout"],
           responses=NOT_FOUND)
    async def grants(user: Viewer, svc: Svc) -> GrantsOut:
        """The live grants in force, folded from the admins' signed decisions on `rollout`
        (read-only: `jax-exec rollout go-live | ramp` signs and publishes them)."""
        book = await _bounded(svc, _rollout_of(svc).grants())
        return GrantsOut(
            grants=[GrantOut(account_id=g.account_id, ramp_factor=g.ramp_factor,
                             max_order_notional=g.max_order_notional, decided_by=g.decided_by,
                             decision_event_id=g.event_id) for g in book.grants.values()],
            ignored=[IgnoredDecision(reason_code=str(x.code), message=x.message)
                     for x in book.refused])
