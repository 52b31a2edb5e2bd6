"""Why the simulated exchange refuses: neutral reasons, one enum. Each front door (TWS, Alpaca,
OANDA) maps a reason to its own wire codes; the core never speaks a venue's codes."""

from __future__ import annotations

from enum import StrEnum


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
    UNKNOWN_ACCOUNT = "unknown_account"
    VENUE_BUSY = "venue_busy"  # a transient refusal (injected transient errors)
    OUTAGE = "outage"  # the venue is unreachable (injected outage)
