"""The TWS door's wording of the core's neutral reasons: IB's error codes and texts.

A refusal the core raised carries `exc.reason`; one without (the door's own wire checks in
book.py) carries an IB code as `exc.code` already.
"""

from __future__ import annotations

from brokers.exceptions import BrokerError
from brokers.sim.reasons import Reason

REJECTED = "Order rejected - reason: {message}"

# Reason -> (IB error code, text); {message} is the core's neutral text
IB_CODES: dict[Reason, tuple[int, str]] = {
    Reason.UNKNOWN_INSTRUMENT: (
        200, "No security definition has been found for the request ({message})"),
    Reason.SYMBOL_NOT_ALLOWED: (201, REJECTED),
    Reason.OFF_TICK: (
        110, "The price does not conform to the minimum price variation for this contract."),
    Reason.INVALID_PRICE: (201, REJECTED),
    Reason.INVALID_QUANTITY: (10243, REJECTED),
    Reason.INSUFFICIENT_BUYING_POWER: (201, REJECTED),
    Reason.NOT_SHORTABLE: (201, REJECTED),
    Reason.DUPLICATE_CLIENT_ID: (201, REJECTED),
    Reason.DUPLICATE_ORDER_ID: (103, "Duplicate order id ({message})"),
    Reason.UNKNOWN_ORDER: (10147, "Order not found ({message})"),
    Reason.NOT_CANCELLABLE: (10148, "The order cannot be cancelled ({message})"),
    Reason.NOT_MODIFIABLE: (201, REJECTED),
    Reason.UNKNOWN_ACCOUNT: (321, "Error validating request: {message}"),
    Reason.VENUE_BUSY: (100, "Max rate of messages per second has been exceeded"),
    Reason.OUTAGE: (1100, "Connectivity between IB and Trader Workstation has been lost."),
}

# a placement answers these reasons with another code than a plain request does
PLACEMENT_CODES: dict[Reason, int] = {Reason.UNKNOWN_ACCOUNT: 201}


def ib_error(exc: BrokerError, default: int, placing: bool = False) -> tuple[int, str]:
    """(IB code, text) for a refusal; `default` when it carries neither a reason nor a
    numeric code."""
    if exc.reason is not None:
        reason = Reason(exc.reason)
        code, text = IB_CODES[reason]
        if placing:
            code = PLACEMENT_CODES.get(reason, code)
        return code, text.format(message=exc.message)
    code_text = str(getattr(exc, "code", ""))
    return (int(code_text) if code_text.isdigit() else default), exc.message
