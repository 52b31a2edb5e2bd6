"""The one declaration of every topic: name, event model, partitions, retention."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import (
    Alert,
    Approval,
    ControlCommand,
    DeadLetter,
    Event,
    Fill,
    Notification,
    OrderEvent,
    OrderIntent,
    Rejection,
    RolloutDecision,
    Signal,
    SignalRecord,
    TradingStateChanged,
)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    model: type[Event]
    partitions: int
    retention_ms: int
    description: str
    compact: bool = False  # cleanup.policy=compact: the latest record per key is kept forever


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("signals", Signal, 3, 14 * DAY_MS, "trade ideas from strategy engines"),
    TopicSpec("approvals", Approval, 3, 90 * DAY_MS, "human decisions on signals"),
    TopicSpec("order-intents", OrderIntent, 3, 90 * DAY_MS, "validated, sized orders to place"),
    TopicSpec("orders", OrderEvent, 3, 90 * DAY_MS, "order lifecycle at the venue"),
    TopicSpec("fills", Fill, 3, 365 * DAY_MS, "executions at the venue"),
    TopicSpec("rejections", Rejection, 3, 90 * DAY_MS, "refusals with reason codes"),
    # One partition: operator commands must be seen in the order they were given.
    TopicSpec("control", ControlCommand, 1, 365 * DAY_MS, "operator commands (kill switch)"),
    TopicSpec("dead-letter", DeadLetter, 1, 90 * DAY_MS, "undecodable input, kept raw"),
    TopicSpec("alerts", Alert, 1, 365 * DAY_MS, "reconciliation and venue alerts for operators"),
    # Compacted, one partition: each scope's latest trading state, read from the beginning by
    # every worker before it trades (the kill switch survives every restart).
    TopicSpec("trading-state", TradingStateChanged, 1, 365 * DAY_MS,
              "latched trading state per scope (kill switch), compacted", compact=True),
    # Compacted, keyed by signal: first seen, and the first valid decision, for good.
    TopicSpec("signal-ledger", SignalRecord, 3, 365 * DAY_MS,
              "each signal's first sighting and its one decision, compacted", compact=True),
    # One partition, kept ten years: the audited record of who let which account trade live.
    TopicSpec("rollout", RolloutDecision, 1, 3650 * DAY_MS,
              "admins' signed go-live and live-ramp decisions"),
    TopicSpec("notifications", Notification, 1, 90 * DAY_MS,
              "each notification delivery: receiver, delivered or failed, attempts"),
)

BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}


def topic_name(name: str, prefix: str = "") -> str:
    """The physical topic name; a prefix isolates test runs on a shared broker."""
    if name not in BY_NAME:
        raise KeyError(f"unknown topic {name!r}; declared: {sorted(BY_NAME)}")
    return f"{prefix}{name}"
