"""The contract: one pydantic model per event type and the topic declarations. No I/O."""

from schemas.events import (
    SCHEMA_VERSION,
    Approval,
    ControlCommand,
    DeadLetter,
    Decision,
    Event,
    Fill,
    OrderEvent,
    OrderIntent,
    OrderStatus,
    OrderType,
    Rejection,
    Side,
    Signal,
    SizingBound,
    TimeInForce,
)
from schemas.topics import TOPICS, TopicSpec

__all__ = [
    "SCHEMA_VERSION",
    "TOPICS",
    "Approval",
    "ControlCommand",
    "DeadLetter",
    "Decision",
    "Event",
    "Fill",
    "OrderEvent",
    "OrderIntent",
    "OrderStatus",
    "OrderType",
    "Rejection",
    "Side",
    "Signal",
    "SizingBound",
    "TimeInForce",
    "TopicSpec",
]
