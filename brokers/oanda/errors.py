"""OANDA's answers classified: transient (retry later) or permanent (the port's exceptions).

Transient: HTTP 429 and 5xx, connection failures and timeouts. Permanent: 400 / 403 / 404 with
an errorCode (the reject reason, e.g. INSTRUMENT_UNKNOWN, PRICE_PRECISION_EXCEEDED) ->
OrderRejected with that code; CLIENT_ORDER_ID_ALREADY_EXISTS -> DuplicateClientOrderId;
ORDER_DOESNT_EXIST -> UnknownOrder; 401 -> OrderRejected("UNAUTHORIZED")."""

from __future__ import annotations

from typing import Any

from brokers.exceptions import (
    BrokerError,
    DuplicateClientOrderId,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
)

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
DUPLICATE = "CLIENT_ORDER_ID_ALREADY_EXISTS"
UNKNOWN = frozenset({"ORDER_DOESNT_EXIST", "NO_SUCH_ORDER"})
# a create that OANDA cancels at once for one of these reasons was refused, not cancelled
REFUSING_CANCELS = frozenset({
    "INSUFFICIENT_MARGIN", "MARKET_HALTED", "ACCOUNT_NEW_POSITIONS_LOCKED",
    "POSITION_CLOSEOUT_FAILED", "INSUFFICIENT_LIQUIDITY_FOK", "FIFO_VIOLATION",
    "BOUNDS_VIOLATION", "TAKE_PROFIT_ON_FILL_LOSS", "STOP_LOSS_ON_FILL_LOSS",
    "CLIENT_ORDER_ID_ALREADY_EXISTS",
})  # fmt: skip


def reject_code(body: dict[str, Any]) -> str:
    """The venue's code of a refusal body: errorCode, else the reject transaction's reason."""
    for key in ("orderRejectTransaction", "orderCancelRejectTransaction"):
        txn = body.get(key)
        if isinstance(txn, dict) and txn.get("rejectReason"):
            return str(txn["rejectReason"])
    return str(body.get("errorCode") or "")


def from_response(status: int, body: dict[str, Any], what: str) -> BrokerError:
    """The port's exception for a non-2xx answer."""
    message = str(body.get("errorMessage") or f"HTTP {status}")
    code = reject_code(body)
    text = f"OANDA {what}: {message}" + (f" ({code})" if code else "")
    if status in TRANSIENT_STATUS:
        return TransientBrokerError(text, code=str(status))
    if code == DUPLICATE:
        return DuplicateClientOrderId(text, code=code)
    if status == 404 or code in UNKNOWN:
        return UnknownOrder(text, code=code or "404")
    if status == 401:
        return OrderRejected(text, code="UNAUTHORIZED")
    return OrderRejected(text, code=code or str(status))


def connection_error(what: str, exc: BaseException) -> TransientBrokerError:
    return TransientBrokerError(f"OANDA {what}: {exc}", code="connection")
