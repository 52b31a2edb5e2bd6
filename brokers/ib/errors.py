"""IB error codes, classified by code alone: the libraries' own order status is not trusted
(ib_insync 0.9.86 leaves a 110-rejected order in PendingSubmit, ib_async marks it Cancelled)."""

from __future__ import annotations

from enum import StrEnum

from brokers.exceptions import (
    BrokerError,
    NotCancellable,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
)


class ErrorKind(StrEnum):
    TRANSIENT = "transient"
    INFORMATIONAL = "informational"
    PERMANENT = "permanent"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


TRANSIENT_CODES = frozenset({1100, 1101, 1102, 1300, 2103, 2105, 2157, 2110, 502, 504, 326, 100})
INFORMATIONAL_CODES = frozenset({2104, 2106, 2158, 2107, 2108})
PERMANENT_CODES = frozenset({200, 201, 103, 110, 104, 135, 161, 10147, 10148, 10243})
CANCELLED_CODE = 202
# The venue's answer to a cancel request (order not found / already finished): a verdict on the
# cancel, not on the order, whose own status (filled, or cancelled by an OCA sibling or its
# parent) TWS reports separately.
CANCEL_REFUSALS = frozenset({10147, 10148})
CONNECTION_LOST = 1100
CONNECTION_RESTORED = frozenset({1101, 1102})


def classify(code: int) -> ErrorKind:
    """What an IB error code means for the request it answers."""
    if code in TRANSIENT_CODES:
        return ErrorKind.TRANSIENT
    if code in INFORMATIONAL_CODES:
        return ErrorKind.INFORMATIONAL
    if code in PERMANENT_CODES:
        return ErrorKind.PERMANENT
    if code == CANCELLED_CODE:
        return ErrorKind.CANCELLED
    return ErrorKind.UNKNOWN


def is_order_rejection(code: int) -> bool:
    """Whether an error tied to an order id ends that order (anything but notices, the cancel
    notice 202 and a refused cancel: 10148 comes for an order already finished, e.g. an exit
    its OCA sibling's cancel took with it, which must stay cancelled, not turn rejected)."""
    if code in CANCEL_REFUSALS:
        return False
    kind = classify(code)
    return kind is ErrorKind.PERMANENT or (kind is ErrorKind.UNKNOWN and not 2100 <= code < 2200)


def to_exception(code: int, message: str) -> BrokerError:
    """The port exception for an IB error code."""
    text = f"IB error {code}: {message}"
    if code == 10147:
        return UnknownOrder(text, code=str(code))
    if code == 10148:
        return NotCancellable(text, code=str(code))
    if classify(code) is ErrorKind.TRANSIENT:
        return TransientBrokerError(text, code=str(code))
    return OrderRejected(text, code=str(code))
