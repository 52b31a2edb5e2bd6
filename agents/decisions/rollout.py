"""The paper-to-live rollout gate. Pure: figures in, report and decisions out.

1. `rollout_report(figures, thresholds)` judges a paper period (figures read from ClickHouse
   by store.queries.rollout_figures): each figure against its threshold, pass or fail.
2. `go_live(...)` makes the GO_LIVE decision naming a live account, only from a passing
   report; an admin signs it (agents.decisions.signatures.sign) and it is published on the
   `rollout` topic.
3. `ramp(...)` steps the live size factor and notional cap, only from the account's current
   grant and by at most ROLLOUT_MAX_RAMP_STEP times per decision; signed the same way.
4. `RolloutBook` folds the signed decisions read back from `rollout` into each account's
   `LiveGrant`; the live guard trades a live account only with a grant, at the grant's ramp.
   A decision whose signature, key or signer does not check out is ignored (and kept in
   `refused` for the record).
5. `live_settings(account, settings, grants)` is that guard: paper unchanged; live only with
   a grant (else LIVE_NOT_GRANTED), sized by `grant.apply(settings)`. The sizing stage calls
   it before decide(), with the grants its worker reads from `rollout` (agents.rollout_reader).

Thresholds are configured in one place: `RolloutThresholds`, environment ROLLOUT_*.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Protocol

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agents.decisions.config import RiskSettings
from agents.decisions.live import account_kind_from_id
from agents.decisions.reasons import ReasonCode, Refusal
from agents.decisions.signatures import KeyRing, verify
from agents.decisions.validation import ensure_utc
from brokers.port import AccountKind, AccountSnapshot
from schemas.events import RolloutAction, RolloutDecision

ZERO = Decimal(0)


class RolloutThresholds(BaseSettings):
    """What a paper period must show before live trading, and how live trading ramps up."""

    model_config = SettingsConfigDict(frozen=True, env_prefix="ROLLOUT_", case_sensitive=False,
                                      extra="ignore", env_ignore_empty=True)

    min_days_traded: int = Field(20, ge=0, description="Days with at least one order placed")
    min_orders: int = Field(50, ge=0, description="Entry orders placed over the period")
    min_fill_rate: Decimal = Field(Decimal("0.5"), ge=0, le=1,
                                   description="Filled entry orders / entry orders")
    max_venue_rejection_rate: Decimal = Field(
        Decimal("0.02"), ge=0, le=1, description="VENUE_REJECTED rejections / entry orders")
    max_avg_slippage_bps: float = Field(10.0, description="Mean entry slippage, bps (+ = worse)")
    max_ack_latency_p95_ms: float = Field(
        2000.0, gt=0, description="95th percentile of approval-to-venue-acknowledgement, ms")
    max_reconciliation_alerts: int = Field(0, ge=0, description="Alerts raised by reconciliation")
    max_kill_switch_trips: int = Field(0, ge=0, description="Automatic kill-switch trips")
    min_realized_pnl: Decimal = Field(Decimal(0), description="Realized P&L over the period")
    max_drawdown: Decimal = Field(Decimal(5000), ge=0,
                                  description="Largest peak-to-trough fall of cumulative P&L")
    initial_ramp_factor: Decimal = Field(Decimal("0.1"), gt=0, le=1,
                                         description="Size factor a GO_LIVE starts at")
    initial_max_order_notional: Decimal = Field(Decimal(1000), gt=0,
                                                description="Notional cap a GO_LIVE starts at")
    max_ramp_step: Decimal = Field(Decimal(2), ge=1,
                                   description="Most a RAMP may multiply factor and cap by")
    admins: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(), description="Who may sign rollout decisions (empty = any keyring signer)")

    @field_validator("admins", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(n.strip() for n in value.split(",") if n.strip())
        return value


@dataclass(frozen=True)
class PaperFigures:
    """The paper period as the store saw it (store.queries.rollout_figures)."""

    since: datetime | None
    until: datetime | None
    days_traded: int
    orders: int
    filled_orders: int
    rejections: Mapping[str, int]
    avg_slippage_bps: float | None
    ack_latency_p95_ms: float | None
    reconciliation_alerts: int
    kill_switch_trips: int
    daily_pnl: tuple[tuple[date, Decimal], ...]

    @property
    def fill_rate(self) -> Decimal:
        return Decimal(self.filled_orders) / self.orders if self.orders else ZERO

    @property
    def venue_rejection_rate(self) -> Decimal:
        venue = self.rejections.get(str(ReasonCode.VENUE_REJECTED), 0)
        if not self.orders:
            return Decimal(1) if venue else ZERO
        return Decimal(venue) / self.orders

    @property
    def realized_pnl(self) -> Decimal:
        return sum((p for _, p in self.daily_pnl), ZERO)

    @property
    def max_drawdown(self) -> Decimal:
        """The largest fall of cumulative realized P&L from a previous peak (0 = none)."""
        peak = total = worst = ZERO
        for _, pnl in sorted(self.daily_pnl):
            total += pnl
            peak = max(peak, total)
            worst = max(worst, peak - total)
        return worst


@dataclass(frozen=True)
class Check:
    """One figure against its threshold."""

    name: str
    value: str
    threshold: str
    passed: bool


@dataclass(frozen=True)
class RolloutReport:
    figures: PaperFigures
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        f = self.figures
        return {
            "since": f.since.isoformat() if f.since else None,
            "until": f.until.isoformat() if f.until else None,
            "passed": self.passed,
            "checks": [c.__dict__ for c in self.checks],
            "rejections_by_reason": dict(sorted(f.rejections.items())),
            "daily_pnl": [[d.isoformat(), str(p)] for d, p in f.daily_pnl],
        }

    def sha256(self) -> str:
        """What a GO_LIVE decision cites: the digest of this report's canonical JSON."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _at_least(name: str, value: Any, low: Any) -> Check:
    return Check(name, str(value), f">= {low}", value >= low)


def _at_most(name: str, value: Any, high: Any) -> Check:
    return Check(name, str(value), f"<= {high}", value <= high)


def _optional_at_most(name: str, value: float | None, high: float) -> Check:
    """A figure with no data (no fills, no acknowledgements) fails: nothing was shown."""
    if value is None:
        return Check(name, "no data", f"<= {high}", False)
    return Check(name, f"{value:.2f}", f"<= {high}", value <= high)


def rollout_report(figures: PaperFigures, t: RolloutThresholds) -> RolloutReport:
    """Every figure of the paper period against its threshold."""
    f = figures
    checks = (
        _at_least("days traded", f.days_traded, t.min_days_traded),
        _at_least("orders", f.orders, t.min_orders),
        _at_least("fill rate", f.fill_rate.quantize(Decimal("0.0001")), t.min_fill_rate),
        _at_most("venue rejection rate", f.venue_rejection_rate.quantize(Decimal("0.0001")),
                 t.max_venue_rejection_rate),
        _optional_at_most("avg slippage (bps)", f.avg_slippage_bps, t.max_avg_slippage_bps),
        _optional_at_most("approval-to-ack p95 (ms)", f.ack_latency_p95_ms,
                          t.max_ack_latency_p95_ms),
        _at_most("reconciliation alerts", f.reconciliation_alerts, t.max_reconciliation_alerts),
        _at_most("kill-switch trips", f.kill_switch_trips, t.max_kill_switch_trips),
        _at_least("realized P&L", f.realized_pnl, t.min_realized_pnl),
        _at_most("max drawdown", f.max_drawdown, t.max_drawdown),
    )
    return RolloutReport(figures, checks)


# --- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveGrant:
    """What the signed decisions allow one live account now."""

    account_id: str
    ramp_factor: Decimal
    max_order_notional: Decimal
    decided_by: str
    event_id: Any  # UUID of the decision in force

    def apply(self, settings: RiskSettings) -> RiskSettings:
        """The risk settings with this account enabled at this grant's ramp."""
        return settings.model_copy(update={
            "live_trading_account": self.account_id,
            "live_ramp_factor": self.ramp_factor,
            "live_max_order_notional": self.max_order_notional,
        })


def _refuse(message: str, **details: object) -> Refusal:
    return Refusal.of(ReasonCode.LIVE_TRADING_NOT_ENABLED, message, "live_guard", **details)


def _admin(by: str, t: RolloutThresholds) -> Refusal | None:
    if t.admins and by not in t.admins:
        return _refuse(f"{by!r} is not a rollout admin (ROLLOUT_ADMINS: "
                       f"{', '.join(sorted(t.admins))})", approved_by=by)
    return None


def go_live(report: RolloutReport, account_id: str, by: str, now: datetime,
            t: RolloutThresholds, reason: str | None = None) -> RolloutDecision | Refusal:
    """The unsigned GO_LIVE decision, or why not (a failing report, a paper account)."""
    if not report.passed:
        failed = "; ".join(f"{c.name} {c.value} (needs {c.threshold})" for c in report.failed)
        return _refuse(f"the paper period does not pass the rollout report: {failed}",
                       account_id=account_id, failed=len(report.failed))
    if account_kind_from_id(account_id) is not AccountKind.LIVE:
        return _refuse(f"{account_id} is a paper account: go-live names the live account",
                       account_id=account_id)
    refused = _admin(by, t)
    if refused is not None:
        return refused
    at = ensure_utc(now)
    return RolloutDecision(
        event_id=RolloutDecision.derive_event_id(account_id, RolloutAction.GO_LIVE, at),
        correlation_id=RolloutDecision.derive_event_id(account_id, RolloutAction.GO_LIVE, at),
        occurred_at=at, recorded_at=at, action=RolloutAction.GO_LIVE, account_id=account_id,
        ramp_factor=t.initial_ramp_factor, max_order_notional=t.initial_max_order_notional,
        approved_by=by, decided_at=at, reason=reason, report_sha256=report.sha256())


def ramp(current: LiveGrant | None, account_id: str, factor: Decimal, notional: Decimal,
         by: str, now: datetime, t: RolloutThresholds,
         reason: str | None = None) -> RolloutDecision | Refusal:
    """The unsigned RAMP decision from the account's current grant, or why not."""
    if current is None or current.account_id != account_id:
        return _refuse(f"{account_id} has no signed go-live decision: ramp steps only from "
                       "a live grant", account_id=account_id)
    if not (ZERO < factor <= 1) or notional <= 0:
        return _refuse(f"a ramp factor is in (0, 1] and a cap is positive; got {factor}, "
                       f"{notional}", factor=factor, notional=notional)
    step = t.max_ramp_step
    if factor > current.ramp_factor * step or notional > current.max_order_notional * step:
        return _refuse(
            f"a ramp step may at most multiply by {step}: factor {current.ramp_factor} -> "
            f"{factor}, cap {current.max_order_notional} -> {notional}",
            factor=factor, notional=notional, current_factor=current.ramp_factor,
            current_notional=current.max_order_notional, max_ramp_step=step)
    refused = _admin(by, t)
    if refused is not None:
        return refused
    at = ensure_utc(now)
    eid = RolloutDecision.derive_event_id(account_id, RolloutAction.RAMP, at)
    return RolloutDecision(
        event_id=eid, correlation_id=current.event_id, causation_id=current.event_id,
        occurred_at=at, recorded_at=at, action=RolloutAction.RAMP, account_id=account_id,
        ramp_factor=factor, max_order_notional=notional, approved_by=by, decided_at=at,
        reason=reason, previous_event_id=current.event_id)


def unsigned_body(decision: RolloutDecision) -> dict[str, Any]:
    """The decision as JSON values, ready for signatures.sign."""
    body = decision.model_dump(mode="json", exclude_none=True)
    for name in ("key_id", "algorithm", "signature"):
        body.pop(name, None)
    return body


@dataclass
class RolloutBook:
    """Each account's grant, folded from the `rollout` topic in order (rebuilt at start)."""

    keyring: KeyRing
    thresholds: RolloutThresholds
    grants: dict[str, LiveGrant] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)

    def on_record(self, raw: bytes, now: datetime) -> Refusal | None:
        """Apply one record; a bad signature, a stranger or a broken chain is refused."""
        verified = verify(raw, self.keyring, now, stage="live_guard")
        refusal = verified if isinstance(verified, Refusal) else self._apply(raw)
        if refusal is not None:
            self.refused.append(refusal)
        return refusal

    def _apply(self, raw: bytes) -> Refusal | None:
        try:
            decision = RolloutDecision.model_validate_json(raw)
        except ValidationError as exc:
            return _refuse(f"not a rollout decision: {exc.errors()[0]['msg']}")
        refused = _admin(decision.approved_by, self.thresholds)
        if refused is not None:
            return refused
        current = self.grants.get(decision.account_id)
        if decision.action is RolloutAction.RAMP and (
                current is None or decision.previous_event_id != current.event_id):
            return _refuse(f"ramp {decision.event_id} does not step from the grant in force",
                           account_id=decision.account_id)
        self.grants[decision.account_id] = LiveGrant(
            decision.account_id, decision.ramp_factor, decision.max_order_notional,
            decision.approved_by, decision.event_id)
        return None

    def grant(self, account_id: str) -> LiveGrant | None:
        return self.grants.get(account_id.strip())

    def unavailable(self) -> str | None:
        """A book in hand is known (the Kafka reader answers otherwise while it cannot read)."""
        return None


class LiveGrants(Protocol):
    """What the live guard reads: a RolloutBook, or agents.rollout_reader.RolloutReader."""

    def grant(self, account_id: str) -> LiveGrant | None: ...

    def unavailable(self) -> str | None:
        """Why the grants are not known now (not read to the end yet, unread too long)."""
        ...


def _not_granted(account: AccountSnapshot, message: str, **details: object) -> Refusal:
    return Refusal.of(ReasonCode.LIVE_NOT_GRANTED, message, "live_guard",
                      account_id=account.account_id, kind=account.kind, **details)


def live_settings(account: AccountSnapshot, settings: RiskSettings,
                  grants: LiveGrants | None) -> RiskSettings | Refusal:
    """The settings to size with: a paper account's as they are; a live account's only with an
    admin's signed go-live decision for it, at that decision's ramp (size factor and notional
    cap). LIVE_TRADING_ACCOUNT alone never lets a live account trade."""
    if account.kind is not AccountKind.LIVE:
        return settings
    account_id = account.account_id.strip()
    why = "this process reads no go-live decisions" if grants is None else grants.unavailable()
    if why is not None:
        return _not_granted(
            account, f"live account {account_id} does not trade while its go-live decisions "
            f"are unknown ({why}); paper accounts are unaffected", unknown=why)
    grant = grants.grant(account_id) if grants is not None else None
    if grant is None or grant.account_id != account_id:
        return _not_granted(
            account, f"live account {account_id} has no signed go-live decision: run `jax-exec "
            f"rollout report` and, once it passes, an admin runs `jax-exec rollout go-live "
            f"--account {account_id} --by <admin>`")
    return grant.apply(settings)


def fold(records: Iterable[bytes], keyring: KeyRing, thresholds: RolloutThresholds,
         now: datetime) -> RolloutBook:
    """A book from the records of `rollout`, in topic order."""
    book = RolloutBook(keyring, thresholds)
    for raw in records:
        book.on_record(raw, now)
    return book
