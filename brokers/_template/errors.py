"""The venue's error codes -> the port's exceptions (pure: tested without a socket)."""

from __future__ import annotations

from brokers.exceptions import (
    BrokerError,
    DuplicateClientOrderId,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
)

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def to_exception(status: int, code: str, message: str) -> BrokerError:
    """One refusal as the exception the stages act on; the venue's code is kept."""
    if status in TRANSIENT_STATUSES:
        return TransientBrokerError(message, code=code)
    if status == 404:
        return UnknownOrder(message, code=code)
    if status == 409:
        return DuplicateClientOrderId(message, code=code)
    return OrderRejected(message, code=code)
