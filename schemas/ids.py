"""Deterministic ids: the same input always yields the same id, so retries are idempotent."""

from __future__ import annotations

import uuid

# Fixed namespace of the project; changing it changes every derived id.
JAX_NAMESPACE = uuid.UUID("6f1c2f0e-5b7a-5d2c-9a41-3c1e8a0d7b52")


def derive_id(*parts: object) -> uuid.UUID:
    """A UUIDv5 over the parts, joined with '|'."""
    return uuid.uuid5(JAX_NAMESPACE, "|".join(str(p) for p in parts))


def signal_event_id(signal_id: str) -> uuid.UUID:
    """A signal's event id: its own id when that is a UUID, else derived from it."""
    try:
        return uuid.UUID(signal_id)
    except ValueError:
        return derive_id("signal", signal_id)


def client_order_id(correlation_id: uuid.UUID) -> str:
    """The venue-side client order id of the one order a signal may produce."""
    return f"jx-{correlation_id.hex}"


def correlation_from_client_order_id(coid: str) -> uuid.UUID | None:
    """The signal a client order id descends from; None for orders the project did not place."""
    if not coid.startswith("jx-"):
        return None
    try:
        return uuid.UUID(coid[3:35])
    except ValueError:
        return None
