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
    OrderEvent,
    OrderIntent,
    Rejection,
    Signal,
)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    model: type[Event]
    partitions: int
    retention_ms: int
    description: str


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
)

BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}


def topic_name(name: str, prefix: str = "") -> str:
    """The physical topic name; a prefix isolates test runs on a shared broker."""
    if name not in BY_NAME:
        raise KeyError(f"unknown topic {name!r}; declared: {sorted(BY_NAME)}")
    return f"{prefix}{name}"
