"""Broker errors: small leaf classes that carry the venue's code and whether to retry."""

from __future__ import annotations

from schemas.errors import JaxError


class BrokerError(JaxError):
    """A venue refused or failed; `code` is the venue's own code when it gave one, `reason`
    the simulator's neutral reason (brokers.sim.reasons.Reason) when its core refused."""

    code = "broker_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        transient: bool | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        if code is not None:
            self.code = code
        if transient is not None:
            self.transient = transient
        self.retry_after = retry_after


class TransientBrokerError(BrokerError):
    """Connectivity, outage, rate limit: the same request may succeed later."""

    code = "venue_unavailable"
    transient = True


class OrderRejected(BrokerError):
    """The venue refused the order for good (unknown symbol, off-tick price, no margin ...)."""

    code = "order_rejected"
    transient = False


class DuplicateClientOrderId(BrokerError):
    """An order with this client order id exists already; look it up instead of placing."""

    code = "duplicate_client_order_id"
    transient = False


class UnknownOrder(BrokerError):
    """No order with this id at the venue."""

    code = "unknown_order"
    transient = False


class NotCancellable(BrokerError):
    """The order is finished (filled, cancelled) and cannot be cancelled."""

    code = "not_cancellable"
    transient = False


class VenueTimeout(TransientBrokerError):
    """A venue call got no answer within its deadline; the same call may succeed later."""

    code = "timeout"

    def __init__(self, operation: str, seconds: float, venue: str = "venue") -> None:
        super().__init__(f"{venue} {operation}: no answer within {seconds:g}s")
        self.operation = operation
        self.seconds = seconds
