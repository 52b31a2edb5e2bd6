"""Alpaca refusals and failures as the port's exceptions, decided by HTTP status and Alpaca's
own code, never by the client library's behaviour (alpaca-py raises one APIError for all).

transient (the same call may succeed later): 429, every 5xx, connection errors, timeouts;
DuplicateClientOrderId: 422 (Alpaca's answer; 409 too) saying client_order_id must be unique;
UnknownOrder: 404; NotCancellable: a 422 to a cancel; everything else permanent: OrderRejected
carrying Alpaca's code (40310000, 42210000, 40010001, ...) and message."""

from __future__ import annotations

import json
from typing import Any

from brokers.exceptions import (
    BrokerError,
    DuplicateClientOrderId,
    NotCancellable,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
)

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
UNANSWERED = "connection"  # the code of a call that got no HTTP answer at all


def parse_body(text: str) -> tuple[str | None, str]:
    """(Alpaca code, message) of an error body; the raw text when it is not Alpaca's JSON."""
    try:
        body: Any = json.loads(text)
    except (ValueError, TypeError):
        return None, (text or "").strip()[:500]
    if not isinstance(body, dict):
        return None, str(body)[:500]
    code = body.get("code")
    return (str(code) if code is not None else None), str(body.get("message", text))[:500]


def classify(status: int | None, code: str | None, message: str, operation: str) -> BrokerError:
    """The port exception for an HTTP error answer to `operation` ("place", "cancel", ...)."""
    shown = code or (str(status) if status is not None else "unknown")
    text = f"Alpaca {status} ({shown}) on {operation}: {message}"
    if status is None or status in TRANSIENT_STATUSES or status >= 500:
        return TransientBrokerError(text, code=shown)
    if status == 404:
        return UnknownOrder(text, code=shown)
    if status in (409, 422) and "client_order_id" in message and "unique" in message:
        return DuplicateClientOrderId(text, code=shown)
    if operation == "cancel" and status == 422:
        return NotCancellable(text, code=shown)
    return OrderRejected(text, code=shown)


def from_api_error(exc: Any, operation: str) -> BrokerError:
    """An alpaca-py APIError (status on its http error, body as its text)."""
    status = getattr(exc, "status_code", None)
    code, message = parse_body(str(exc))
    return classify(status, code, message, operation)


def unanswered(operation: str, exc: BaseException) -> TransientBrokerError:
    """No HTTP answer (refused, reset, read timeout): transient, and for a placement
    ambiguous (it may have arrived)."""
    return TransientBrokerError(f"Alpaca {operation}: no answer ({exc!r})", code=UNANSWERED)
