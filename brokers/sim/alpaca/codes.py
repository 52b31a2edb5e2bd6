"""The core's neutral refusal reasons as Alpaca answers them: HTTP status, Alpaca error code and
message. Codes and statuses follow Alpaca's Trading API v2 (see ../shared/notes/brokers.md):
403 / 40310000 buying power, 422 / 40010001 invalid request (a duplicate client_order_id among
them: Alpaca answers 422, not 409), 422 / 42210000 unprocessable (sub-penny prices, orders no
longer cancelable), 404 / 40410000 not found, 429 / 42910000 rate limit, 503 / 50310000 the
venue is down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brokers.exceptions import (
    BrokerError,
    DuplicateClientOrderId,
    NotCancellable,
    TransientBrokerError,
    UnknownOrder,
)
from brokers.sim.reasons import Reason

INVALID = 40010001
UNAUTHORIZED = 40110000
FORBIDDEN = 40310000
NOT_FOUND = 40410000
UNPROCESSABLE = 42210000
RATE_LIMITED = 42910000
INTERNAL = 50010000
UNAVAILABLE = 50310000

DUPLICATE_MESSAGE = "client_order_id must be unique"


@dataclass(frozen=True)
class WireError:
    """One Alpaca error answer: the HTTP status and the JSON body {"code", "message", ...}."""

    status: int
    code: int
    message: str
    extra: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **dict(self.extra)}


ALPACA_CODES: dict[Reason, tuple[int, int]] = {
    Reason.UNKNOWN_INSTRUMENT: (422, INVALID),
    Reason.SYMBOL_NOT_ALLOWED: (422, UNPROCESSABLE),
    Reason.OFF_TICK: (422, UNPROCESSABLE),
    Reason.INVALID_PRICE: (422, INVALID),
    Reason.INVALID_QUANTITY: (422, INVALID),
    Reason.INSUFFICIENT_BUYING_POWER: (403, FORBIDDEN),
    Reason.NOT_SHORTABLE: (403, FORBIDDEN),
    Reason.DUPLICATE_CLIENT_ID: (422, INVALID),
    Reason.DUPLICATE_ORDER_ID: (422, INVALID),
    Reason.UNKNOWN_ORDER: (404, NOT_FOUND),
    Reason.NOT_CANCELLABLE: (422, UNPROCESSABLE),
    Reason.UNKNOWN_ACCOUNT: (401, UNAUTHORIZED),
    Reason.VENUE_BUSY: (429, RATE_LIMITED),
    Reason.OUTAGE: (503, UNAVAILABLE),
}
# an exit-state name the core may add later still maps to a refusal, never to a 500
_DEFAULT = (422, UNPROCESSABLE)


def _wording(reason: Reason, message: str, symbol: str) -> str:
    """Alpaca's own sentence where it has a fixed one; the core's text otherwise."""
    fixed = {
        Reason.UNKNOWN_INSTRUMENT: f'asset "{symbol}" not found',
        Reason.SYMBOL_NOT_ALLOWED: f"asset {symbol} is not tradable",
        Reason.INSUFFICIENT_BUYING_POWER: "insufficient buying power",
        Reason.NOT_SHORTABLE: f"asset {symbol} cannot be sold short",
        Reason.DUPLICATE_CLIENT_ID: DUPLICATE_MESSAGE,
        Reason.UNKNOWN_ORDER: "order not found",
        Reason.VENUE_BUSY: "too many requests",
        Reason.OUTAGE: "service unavailable",
    }
    return fixed.get(reason, message)


def wire_error(reason: Reason, message: str, symbol: str = "") -> WireError:
    status, code = ALPACA_CODES.get(reason, _DEFAULT)
    return WireError(status, code, _wording(reason, message, symbol))


def reason_of(exc: BrokerError) -> Reason:
    """The neutral reason of a core refusal: `exc.reason`, or (a core that still speaks IB
    codes) the reason its code and class stand for."""
    given = getattr(exc, "reason", None)
    if given is not None:
        return Reason(given)
    if isinstance(exc, DuplicateClientOrderId):
        return Reason.DUPLICATE_CLIENT_ID
    if isinstance(exc, UnknownOrder):
        return Reason.UNKNOWN_ORDER
    if isinstance(exc, NotCancellable):
        return Reason.NOT_CANCELLABLE
    if isinstance(exc, TransientBrokerError):
        return Reason.VENUE_BUSY
    return _IB_CODES.get(str(exc.code), _from_text(exc.message))


_IB_CODES = {
    "200": Reason.UNKNOWN_INSTRUMENT,
    "110": Reason.OFF_TICK,
    "10243": Reason.INVALID_QUANTITY,
    "103": Reason.DUPLICATE_ORDER_ID,
}


def _from_text(message: str) -> Reason:
    text = message.lower()
    if "buying power" in text:
        return Reason.INSUFFICIENT_BUYING_POWER
    if "short" in text:
        return Reason.NOT_SHORTABLE
    if "not allowed" in text:
        return Reason.SYMBOL_NOT_ALLOWED
    return Reason.INVALID_PRICE
