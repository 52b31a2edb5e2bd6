"""Event models, one per topic. Frozen, strict, Decimal money, UTC time.

Every event carries its own id, the correlation id of the signal it descends from, the id of
the event that caused it, a schema version, and when it happened and was recorded. Ids that
must be idempotent are derived from their inputs (schemas.ids), never random.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schemas.ids import client_order_id, derive_id, signal_event_id

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (UTC offset), e.g. 2026-11-21T14:30:00Z")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
# Prices may arrive non-finite or non-positive; the validation rules refuse them with a
# reason code, so the model keeps them instead of failing the decode.
Price = Annotated[Decimal, Field(allow_inf_nan=True)]


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MKT = "MKT"
    LMT = "LMT"
    STP = "STP"
    STP_LMT = "STP_LMT"


class TimeInForce(StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class OrderStatus(StrEnum):
    """An order's life; `agents.decisions.order_state` holds the legal transitions."""

    PENDING_SUBMIT = "pending_submit"  # the submission stage is about to place it
    SUBMITTED = "submitted"  # sent to the venue
    ACCEPTED = "accepted"  # the venue acknowledged it and it is working
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"  # a cancel was asked for, the venue has not confirmed it
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class OrderLeg(StrEnum):
    ENTRY = "entry"
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"


class SizingBound(StrEnum):
    """Which constraint decided an order's quantity."""

    RISK = "risk"
    POSITION_PCT = "max_position_pct"
    MAX_POSITION_SIZE = "max_position_size"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    BUYING_POWER = "buying_power"
    LIVE_NOTIONAL_CAP = "live_notional_cap"


def check_order_prices(order_type: OrderType, limit_price: Decimal | None,
                       stop_price: Decimal | None) -> None:
    """Limit types need a limit price, stop types a stop price (one rule for every order)."""
    if order_type in (OrderType.LMT, OrderType.STP_LMT) and limit_price is None:
        raise ValueError(f"{order_type} order needs a limit_price")
    if order_type in (OrderType.STP, OrderType.STP_LMT) and stop_price is None:
        raise ValueError(f"{order_type} order needs a stop_price")


class ControlAction(StrEnum):
    """Operator commands (imperative): what the control stage does to a scope's trading."""

    HALT = "halt"  # no new orders; approvals and intents in flight are refused
    REDUCE_ONLY = "reduce_only"  # only orders that shrink a position without flipping it
    FLATTEN = "flatten"  # cancel the open orders, close the positions, then HALTED
    RESUME = "resume"  # trade normally again


class ScopeKind(StrEnum):
    ACCOUNT = "account"
    SYMBOL = "symbol"
    STRATEGY = "strategy"


class TradingMode(StrEnum):
    """A scope's trading state, derived from commands (agents.decisions.trading_state)."""

    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"
    FLATTENING = "flattening"  # a FLATTEN is running: refuses like HALTED
    HALTED = "halted"


class Event(BaseModel):
    """The envelope every event shares."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    event_id: UUID
    correlation_id: UUID
    causation_id: UUID | None = None
    schema_version: int = SCHEMA_VERSION
    occurred_at: UtcDatetime = Field(default_factory=utcnow)
    recorded_at: UtcDatetime = Field(default_factory=utcnow)

    @property
    def kafka_key(self) -> bytes:
        """Events of one signal share a key, so they stay in order on one partition."""
        return str(self.correlation_id).encode()


class Signal(Event):
    """A trade idea from an upstream strategy engine. The seed's JSON is accepted as is."""

    event_type: Literal["signal"] = "signal"
    id: str = Field(min_length=1, max_length=128)
    symbol: str
    signal_type: Side
    entry_price: Price
    stop_loss: Price
    take_profit: Price | None = None
    confidence: Decimal | None = Field(default=None, allow_inf_nan=True)
    strategy_id: str = Field(min_length=1, max_length=128)
    ttl_seconds: int | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _envelope_from_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id" in data and isinstance(data["id"], str):
            data = dict(data)
            eid = data.setdefault("event_id", str(signal_event_id(data["id"])))
            data.setdefault("correlation_id", eid)
        return data

    @property
    def side(self) -> Side:
        return self.signal_type


APPROVAL_KEY = b"account"  # the Kafka key of every approval (see Approval.kafka_key)


class Approval(Event):
    """A human's (or an upstream system's) decision on one signal, carrying that signal."""

    event_type: Literal["approval"] = "approval"
    signal: Signal
    decision: Decision
    approved_by: str = Field(min_length=1, max_length=128)
    decided_at: UtcDatetime
    reason: str | None = Field(default=None, max_length=1000)
    # Signed approvals (schemas.canonical, agents.decisions.signatures). Optional so that an
    # unsigned approval still decodes and is refused with a reason instead of dead-lettered.
    expires_at: UtcDatetime | None = Field(
        default=None, description="The approval's own expiry (UTC); refused from then on")
    key_id: str | None = Field(default=None, min_length=1, max_length=128,
                               description="Id of the signing key in the approval keyring")
    algorithm: Literal["ed25519", "hmac-sha256"] | None = Field(
        default=None, description="Signature algorithm; must match the key's")
    signature: str | None = Field(
        default=None, min_length=1, max_length=512,
        description="Base64 (RFC 4648; URL-safe alphabet and missing padding accepted) of the "
                    "signature over RFC 8785 (JCS) of this JSON object without `signature`")

    @model_validator(mode="before")
    @classmethod
    def _envelope_from_signal(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        signal = data.get("signal")
        if isinstance(signal, dict):
            signal = Signal.model_validate(signal)
        if not isinstance(signal, Signal):
            return data
        data = dict(data)
        data["signal"] = signal
        data.setdefault(
            "event_id",
            str(derive_id("approval", signal.event_id, data.get("decision"),
                          data.get("approved_by"))),
        )
        data.setdefault("correlation_id", str(signal.correlation_id))
        data.setdefault("causation_id", str(signal.event_id))
        if "decided_at" in data:
            data.setdefault("occurred_at", data["decided_at"])
        return data

    @property
    def kafka_key(self) -> bytes:
        """Keyed by account, not by signal: one account's decisions share a partition, so one
        sizing worker at a time decides them, in order, and a limit holds for a burst however
        many workers share the group. A deployment trades one venue account, hence one key;
        upstream publishers must use it too (APPROVAL_KEY)."""
        return APPROVAL_KEY


class SizingFigures(BaseModel):
    """How a quantity was reached, so every order is explainable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    equity: Decimal
    buying_power: Decimal
    risk_per_trade: Decimal
    stop_distance: Decimal
    risk_amount: Decimal
    risk_percent: Decimal
    position_value: Decimal
    rr_ratio: Decimal | None
    bound_by: SizingBound
    uncapped_quantity: Decimal
    scale: Decimal = Decimal(1)


class OrderIntent(Event):
    """A sized, validated order that the submission stage will place exactly once."""

    event_type: Literal["order_intent"] = "order_intent"
    client_order_id: str
    account_id: str
    venue: str
    symbol: str
    side: Side
    quantity: Decimal = Field(gt=0)
    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    strategy_id: str
    signal_id: str
    approved_by: str
    sizing: SizingFigures
    # The signed approvals this intent descends from, verbatim as published: the submission
    # stage verifies them again before placing (defence in depth).
    approvals: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _prices_match_type(self) -> OrderIntent:
        check_order_prices(self.order_type, self.limit_price, self.stop_price)
        return self

    @classmethod
    def ids_for(cls, approval: Approval) -> dict[str, Any]:
        """Envelope and client order id derived from the approval: one signal, one order."""
        return {
            "event_id": derive_id("intent", approval.signal.event_id),
            "correlation_id": approval.correlation_id,
            "causation_id": approval.event_id,
            "client_order_id": client_order_id(approval.correlation_id),
        }


class OrderEvent(Event):
    """A fact in an order's life at the venue: submitted, accepted, filled, cancelled, ..."""

    event_type: Literal["order"] = "order"
    client_order_id: str
    parent_client_order_id: str | None = None
    leg: OrderLeg = OrderLeg.ENTRY
    venue: str
    venue_order_id: str | None = None
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    status: OrderStatus
    filled_quantity: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    reason_code: str | None = None
    message: str | None = None
    attempts: int | None = Field(default=None, ge=1)  # placement attempts, on submission events

    @staticmethod
    def derive_event_id(client_order_id: str, status: OrderStatus, filled: Decimal) -> UUID:
        return derive_id("order", client_order_id, status.value, filled.normalize())


class Fill(Event):
    """One execution at the venue."""

    event_type: Literal["fill"] = "fill"
    execution_id: str
    client_order_id: str
    parent_client_order_id: str | None = None
    leg: OrderLeg = OrderLeg.ENTRY
    venue: str
    venue_order_id: str | None = None
    account_id: str
    symbol: str
    side: Side
    quantity: Decimal = Field(gt=0)
    price: Decimal = Field(gt=0)
    commission: Decimal = Decimal(0)
    currency: str = "USD"

    @staticmethod
    def derive_event_id(venue: str, execution_id: str) -> UUID:
        return derive_id("fill", venue, execution_id)


class Rejection(Event):
    """A refusal with a reason code, a human sentence and the numbers behind it."""

    event_type: Literal["rejection"] = "rejection"
    stage: str
    reason_code: str
    message: str
    details: dict[str, str] = Field(default_factory=dict)
    subject_event_id: UUID | None = None
    signal_id: str | None = None
    symbol: str | None = None
    strategy_id: str | None = None


class ControlCommand(Event):
    """An operator's (or an automatic trip's) command on one scope: the whole account (no
    symbol, no strategy), one symbol, or one strategy."""

    event_type: Literal["control"] = "control"
    command: ControlAction
    issued_by: str = Field(min_length=1, max_length=128,
                           description="Who: an operator's name, or auto:<trigger> for a trip")
    reason: str | None = Field(default=None, max_length=2000)
    symbol: str | None = Field(default=None, min_length=1, max_length=32,
                               description="Scope: this symbol only")
    strategy_id: str | None = Field(default=None, min_length=1, max_length=128,
                                    description="Scope: this strategy only")
    details: dict[str, str] = Field(default_factory=dict,
                                    description="The figures behind an automatic trip")

    @model_validator(mode="before")
    @classmethod
    def _derive_envelope(cls, data: Any) -> Any:
        if isinstance(data, dict) and "event_id" not in data:
            data = dict(data)
            data.setdefault("occurred_at", utcnow().isoformat())
            scope = [p for p in (data.get("symbol"), data.get("strategy_id")) if p]
            eid = derive_id("control", data.get("command"), data.get("issued_by"),
                            data["occurred_at"], *scope)
            data["event_id"] = str(eid)
            data.setdefault("correlation_id", str(eid))
        return data

    @model_validator(mode="after")
    def _one_scope(self) -> ControlCommand:
        if self.symbol is not None and self.strategy_id is not None:
            raise ValueError("a command has one scope: the account, a symbol or a strategy")
        if self.command is ControlAction.FLATTEN and self.strategy_id is not None:
            raise ValueError("FLATTEN applies to the account or a symbol: the venue nets "
                             "positions per symbol, not per strategy")
        return self

    @property
    def scope_kind(self) -> ScopeKind:
        if self.symbol is not None:
            return ScopeKind.SYMBOL
        if self.strategy_id is not None:
            return ScopeKind.STRATEGY
        return ScopeKind.ACCOUNT

    @property
    def scope(self) -> str:
        """The scope's key: `account`, `symbol:<S>` or `strategy:<id>`."""
        return scope_key(self.scope_kind, self.symbol or self.strategy_id)


def scope_key(kind: ScopeKind, value: str | None = None) -> str:
    return kind.value if kind is ScopeKind.ACCOUNT else f"{kind.value}:{value}"


class TradingStateChanged(Event):
    """A scope's trading state after a command was applied (compacted topic, keyed by scope):
    the latest one per scope is the state every worker's gate enforces."""

    event_type: Literal["trading_state"] = "trading_state"
    scope: str  # account | symbol:<S> | strategy:<id>
    scope_kind: ScopeKind
    symbol: str | None = None
    strategy_id: str | None = None
    mode: TradingMode
    previous_mode: TradingMode
    command: ControlAction
    command_offset: int = Field(ge=0, description="Offset of the command on `control`: "
                                "a later command's state replaces an earlier one's")
    issued_by: str
    reason: str | None = None
    account_id: str | None = None
    details: dict[str, str] = Field(default_factory=dict)

    @property
    def kafka_key(self) -> bytes:
        """Keyed by scope: compaction keeps each scope's latest state."""
        return self.scope.encode()

    @staticmethod
    def derive_event_id(command_event_id: UUID, mode: TradingMode) -> UUID:
        return derive_id("trading-state", command_event_id, mode.value)


# Base64 grows bytes by 4/3; a record must stay under the producer's 1 MB request limit.
DEAD_LETTER_RAW_BYTES = 256 * 1024


class LedgerStatus(StrEnum):
    SEEN = "seen"  # on `signals`, valid, undecided
    AWAITING_SECOND_APPROVAL = "awaiting_second_approval"  # four-eyes: one approver so far
    DECIDED = "decided"  # the first valid decision; final


class SignalRecord(Event):
    """A signal's entry in the signal ledger (compacted, keyed by the signal's correlation
    id): when it was first seen on `signals`, and its first valid decision, which wins for
    good. Every stage that decides reads the whole ledger at start."""

    event_type: Literal["signal_record"] = "signal_record"
    signal_id: str
    status: LedgerStatus
    first_seen_at: UtcDatetime | None = None  # None: an approval came before its signal
    decision: Decision | None = None
    decided_by: tuple[str, ...] = ()  # approvers so far, in order
    decision_event_id: UUID | None = None  # the approval that decided (or the first, waiting)
    decision_source: str | None = None  # "approvals/<partition>/<offset>" of that approval
    approvals: tuple[str, ...] = ()  # the signed approvals counted, verbatim (four-eyes)

    @classmethod
    def seen(cls, signal: Signal, at: datetime) -> SignalRecord:
        return cls(event_id=derive_id("signal-seen", signal.event_id), correlation_id=
                   signal.correlation_id, causation_id=signal.event_id, occurred_at=at,
                   signal_id=signal.id, status=LedgerStatus.SEEN, first_seen_at=at)

    def after(self, approval: Approval, raw: str, status: LedgerStatus, source: str,
              at: datetime) -> SignalRecord:
        """This entry once `approval` (valid; `raw` as it was signed) was counted."""
        by = (*self.decided_by, approval.approved_by)
        return self.model_copy(update={
            "event_id": derive_id("signal-record", self.correlation_id, status.value, *by),
            "causation_id": approval.event_id, "occurred_at": at, "recorded_at": at,
            "status": status, "decision": approval.decision, "decided_by": by,
            "decision_event_id": approval.event_id, "decision_source": source,
            "approvals": (*self.approvals, raw)})


class DeadLetter(Event):
    """Input that could not be processed, kept byte for byte (up to DEAD_LETTER_RAW_BYTES;
    beyond, the head is kept and the whole is referenced by topic, partition and offset) with
    where it came from and why."""

    event_type: Literal["dead_letter"] = "dead_letter"
    source_topic: str
    partition: int
    offset: int
    error: str
    raw_base64: str
    raw_size: int | None = Field(default=None, ge=0)  # bytes of the original message
    truncated: bool = False  # raw_base64 holds only the first DEAD_LETTER_RAW_BYTES

    @classmethod
    def of(cls, raw: bytes, topic: str, partition: int, offset: int, error: str) -> DeadLetter:
        eid = derive_id("dead-letter", topic, partition, offset)
        truncated = len(raw) > DEAD_LETTER_RAW_BYTES
        return cls(
            event_id=eid,
            correlation_id=eid,
            source_topic=topic,
            partition=partition,
            offset=offset,
            error=error[:2000],
            raw_base64=base64.b64encode(raw[:DEAD_LETTER_RAW_BYTES]).decode(),
            raw_size=len(raw),
            truncated=truncated,
        )

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.raw_base64)


class AlertKind(StrEnum):
    EXTERNAL_ORDER = "external_order"  # an order at the venue the pipeline never placed
    ORDER_VANISHED = "order_vanished"  # an open order the venue no longer knows
    POSITION_MISMATCH = "position_mismatch"  # venue position != what our fills add up to
    ILLEGAL_TRANSITION = "illegal_transition"  # a report that would move a final order
    LATE_COMMISSION = "late_commission"  # a fill published before its commission was known
    VENUE_UNREACHABLE = "venue_unreachable"  # a stage gave up on the venue


class Alert(Event):
    """Something an operator must look at: the pipeline and the venue disagree."""

    event_type: Literal["alert"] = "alert"
    kind: AlertKind
    source: str  # the stage that raised it
    message: str
    account_id: str | None = None
    symbol: str | None = None
    client_order_id: str | None = None
    details: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, kind: AlertKind, source: str, message: str, *parts: object,
           **fields: Any) -> Alert:
        """An alert whose id derives from its kind and identifying parts (a repeat matches)."""
        eid = derive_id("alert", kind.value, *parts)
        return cls(event_id=eid, correlation_id=fields.pop("correlation_id", eid), kind=kind,
                   source=source, message=message, **fields)


EVENT_TYPES: dict[str, type[Event]] = {
    "signal": Signal,
    "approval": Approval,
    "order_intent": OrderIntent,
    "order": OrderEvent,
    "fill": Fill,
    "rejection": Rejection,
    "control": ControlCommand,
    "dead_letter": DeadLetter,
    "alert": Alert,
    "signal_record": SignalRecord,
    "trading_state": TradingStateChanged,
}


class RolloutAction(StrEnum):
    GO_LIVE = "go_live"  # the named live account may trade, at the given ramp
    RAMP = "ramp"  # a new size factor and notional cap for an account already live


class RolloutDecision(Event):
    """An admin's signed decision on the paper-to-live rollout (agents.decisions.rollout):
    which live account may trade, and at what ramp. Signed like an approval (the signer is
    `approved_by`); the live guard honours only decisions whose signature checks out."""

    event_type: Literal["rollout"] = "rollout"
    action: RolloutAction
    account_id: str = Field(min_length=1, max_length=64)
    ramp_factor: Decimal = Field(gt=0, le=1, description="Sized quantities are scaled by this")
    max_order_notional: Decimal = Field(gt=0, description="Largest live order value")
    approved_by: str = Field(min_length=1, max_length=128, description="The admin who decides")
    decided_at: UtcDatetime
    reason: str | None = Field(default=None, max_length=2000)
    report_sha256: str | None = Field(default=None, min_length=64, max_length=64,
                                      description="SHA-256 of the passing rollout report")
    previous_event_id: UUID | None = Field(
        default=None, description="The decision this one steps up from (a ramp)")
    key_id: str | None = Field(default=None, min_length=1, max_length=128)
    algorithm: Literal["ed25519", "hmac-sha256"] | None = None
    signature: str | None = Field(default=None, min_length=1, max_length=512)

    @property
    def kafka_key(self) -> bytes:
        """Keyed by account: one account's decisions stay in order."""
        return self.account_id.encode()

    @staticmethod
    def derive_event_id(account_id: str, action: RolloutAction, decided_at: datetime) -> UUID:
        return derive_id("rollout", account_id, action.value, decided_at.isoformat())


EVENT_TYPES["rollout"] = RolloutDecision


class NotificationKind(StrEnum):
    ORDER_REJECTED = "order_rejected"  # the venue refused an order
    ORDER_FILLED = "order_filled"
    ORDER_PARTIALLY_FILLED = "order_partially_filled"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_EXPIRED = "order_expired"
    SIGNAL_REFUSED = "signal_refused"  # a stage refused (a `rejections` record)
    KILL_SWITCH_CHANGED = "kill_switch_changed"  # an operator's command changed a state
    AUTOMATIC_TRIP = "automatic_trip"  # a trip (issued_by auto:<trigger>) changed a state
    RECONCILIATION_ALERT = "reconciliation_alert"  # an `alerts` record


class Notification(Event):
    """One delivery of one notification to one receiver (Slack or a webhook), as it ended:
    delivered, or failed after its bounded retries. The subject is the event it reports."""

    event_type: Literal["notification"] = "notification"
    kind: NotificationKind
    channel: Literal["slack", "webhook", "teams"]
    target: str = Field(max_length=256, description="The receiver's name (never its secret)")
    subject_event_id: UUID
    subject_topic: str
    title: str = Field(max_length=500)
    delivered: bool
    attempts: int = Field(ge=1)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=1000)
    elapsed_seconds: float = Field(ge=0)

    @property
    def kafka_key(self) -> bytes:
        return str(self.subject_event_id).encode()


EVENT_TYPES["notification"] = Notification
