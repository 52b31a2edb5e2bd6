"""Why the simulated exchange refuses: neutral reasons, one enum. Each front door (TWS, Alpaca,
OANDA) maps a reason to its own wire codes; the core never speaks a venue's codes.

The core raises `refusal(Reason.X, message)`: the port exception that fits the reason, with
`exc.reason` the reason and `exc.code` its value (the in-process venue "sim" has no wire, so
its own code is the neutral reason). The message is neutral text; a door adds its own
wording around it.
"""

from __future__ import annotations

from enum import StrEnum

from brokers.exceptions import (
    BrokerError,
    DuplicateClientOrderId,
    NotCancellable,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
)


class Reason(StrEnum):
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    SYMBOL_NOT_ALLOWED = "symbol_not_allowed"  # refused symbols (SIM_REJECT_SYMBOLS)
    OFF_TICK = "off_tick"  # a price off the instrument's tick / precision
    INVALID_PRICE = "invalid_price"  # non-positive, bracket exits on the wrong side, ...
    INVALID_QUANTITY = "invalid_quantity"  # off the lot / below the minimum / above the maximum
    INSUFFICIENT_BUYING_POWER = "insufficient_buying_power"
    NOT_SHORTABLE = "not_shortable"
    DUPLICATE_CLIENT_ID = "duplicate_client_id"
    DUPLICATE_ORDER_ID = "duplicate_order_id"  # a venue order id reused
    UNKNOWN_ORDER = "unknown_order"
    NOT_CANCELLABLE = "not_cancellable"  # finished already
    NOT_MODIFIABLE = "not_modifiable"  # finished, or a quantity cut to what has filled
    UNKNOWN_ACCOUNT = "unknown_account"
    VENUE_BUSY = "venue_busy"  # a transient refusal (injected transient errors)
    OUTAGE = "outage"  # the venue is unreachable (injected outage)


_CLASS: dict[Reason, type[BrokerError]] = {
    Reason.DUPLICATE_CLIENT_ID: DuplicateClientOrderId,
    Reason.UNKNOWN_ORDER: UnknownOrder,
    Reason.NOT_CANCELLABLE: NotCancellable,
    Reason.VENUE_BUSY: TransientBrokerError,
    Reason.OUTAGE: TransientBrokerError,
}


def refusal(reason: Reason, message: str, cls: type[BrokerError] | None = None) -> BrokerError:
    """The port exception for `reason` (OrderRejected unless the reason has its own class;
    `cls` picks a subclass, e.g. the core's UnknownAccount)."""
    chosen = cls or _CLASS.get(reason, OrderRejected)
    return chosen(message, code=reason.value, reason=reason)
