"""What is worth a notification, what it says, and how a webhook body is signed: pure
functions, tested without Kafka or HTTP.

Webhook signature (the receiver checks it): header `X-Jax-Signature: t=<unix seconds>,
v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, and `X-Jax-Timestamp: <t>`. A receiver
recomputes v1 over the bytes it got and refuses a t older than its tolerance (replays)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from schemas.events import NotificationKind as K

SIGNATURE_HEADER = "X-Jax-Signature"
TIMESTAMP_HEADER = "X-Jax-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300

ORDER_KINDS = {
    "rejected": K.ORDER_REJECTED, "filled": K.ORDER_FILLED,
    "partially_filled": K.ORDER_PARTIALLY_FILLED, "cancelled": K.ORDER_CANCELLED,
    "expired": K.ORDER_EXPIRED,
}
NOTIFY_TOPICS = ("orders", "rejections", "trading-state", "alerts")


@dataclass(frozen=True)
class Notice:
    kind: K
    title: str
    subject_topic: str
    subject_event_id: str
    fields: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The webhook's JSON document."""
        return {"kind": self.kind.value, "title": self.title, "topic": self.subject_topic,
                "event_id": self.subject_event_id, "event": self.fields}


def notice_for(topic: str, event: dict[str, Any]) -> Notice | None:
    """The notification an event deserves, or None."""
    event_id = str(event.get("event_id", ""))
    if topic == "orders":
        kind = ORDER_KINDS.get(str(event.get("status")))
        if kind is None:
            return None
        title = (f"{event.get('side')} {event.get('quantity')} {event.get('symbol')} "
                 f"({event.get('leg', 'entry')}): {event.get('status')}")
        if kind in (K.ORDER_FILLED, K.ORDER_PARTIALLY_FILLED):
            title += f" {event.get('filled_quantity')} @ {event.get('avg_fill_price')}"
        elif event.get("reason_code") or event.get("message"):
            title += f" ({event.get('reason_code') or ''} {event.get('message') or ''})".rstrip()
        return Notice(kind, title, topic, event_id, event)
    if topic == "rejections":
        title = (f"refused at {event.get('stage')}: {event.get('reason_code')} "
                 f"{event.get('symbol') or ''} {event.get('message', '')}")
        return Notice(K.SIGNAL_REFUSED, " ".join(title.split())[:500], topic, event_id, event)
    if topic == "trading-state":
        return _state_notice(topic, event_id, event)
    if topic == "alerts":
        title = f"reconciliation alert {event.get('kind')}: {event.get('message')}"
        return Notice(K.RECONCILIATION_ALERT, title[:500], topic, event_id, event)
    return None


def _state_notice(topic: str, event_id: str, event: dict[str, Any]) -> Notice | None:
    if event.get("mode") == event.get("previous_mode") and event.get("command") != "flatten":
        return None
    by = str(event.get("issued_by", ""))
    kind = K.AUTOMATIC_TRIP if by.startswith("auto:") else K.KILL_SWITCH_CHANGED
    why = f": {event['reason']}" if event.get("reason") else ""
    title = (f"{event.get('scope')}: {event.get('previous_mode')} -> {event.get('mode')} "
             f"({event.get('command')} by {by}{why})")
    return Notice(kind, title[:500], topic, event_id, event)


def sign_body(secret: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers that let a receiver check a webhook body."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {SIGNATURE_HEADER: f"t={timestamp},v1={mac}", TIMESTAMP_HEADER: str(timestamp)}


def verify_body(secret: bytes, body: bytes, header: str, now: float,
                tolerance: float = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """What a receiver does: the signature matches the bytes and the timestamp is fresh."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign_body(secret, body, timestamp)[SIGNATURE_HEADER]
    return hmac.compare_digest(expected, header)


def slack_text(notice: Notice) -> str:
    icon = {K.ORDER_FILLED: ":white_check_mark:", K.ORDER_PARTIALLY_FILLED: ":hourglass:",
            K.KILL_SWITCH_CHANGED: ":octagonal_sign:", K.AUTOMATIC_TRIP: ":rotating_light:",
            K.RECONCILIATION_ALERT: ":warning:"}.get(notice.kind, ":information_source:")
    return f"{icon} {notice.title}"


# --- Microsoft Teams (incoming webhooks) -------------------------------------------------

TEAMS_COLORS = {K.ORDER_FILLED: "2EB67D", K.ORDER_PARTIALLY_FILLED: "ECB22E",
                K.KILL_SWITCH_CHANGED: "E01E5A", K.AUTOMATIC_TRIP: "E01E5A",
                K.RECONCILIATION_ALERT: "ECB22E", K.ORDER_REJECTED: "E01E5A",
                K.SIGNAL_REFUSED: "ECB22E"}
TEAMS_FACTS = ("symbol", "side", "quantity", "filled_quantity", "avg_fill_price", "status",
               "client_order_id", "reason_code", "stage", "scope", "mode", "previous_mode",
               "issued_by", "reason", "account_id")


def teams_facts(notice: Notice) -> list[tuple[str, str]]:
    """The event's figures worth a line in the card (in a fixed order, blanks left out)."""
    facts = [("Kind", notice.kind.value)]
    facts += [(name, str(notice.fields[name])) for name in TEAMS_FACTS
              if notice.fields.get(name) not in (None, "")]
    return [*facts, ("Event", notice.subject_event_id)]


def teams_card(notice: Notice, card: str = "adaptive") -> dict[str, Any]:
    """The body a Teams incoming webhook takes: an Adaptive Card in a message (Workflows
    webhooks, the current kind) or a legacy Office 365 connector MessageCard."""
    facts = teams_facts(notice)
    if card == "messagecard":
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions",
                "summary": notice.title[:200], "themeColor": TEAMS_COLORS.get(notice.kind,
                                                                              "808080"),
                "title": notice.title,
                "sections": [{"facts": [{"name": k, "value": v} for k, v in facts]}]}
    content = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": "1.4",
        "body": [{"type": "TextBlock", "text": notice.title, "weight": "Bolder",
                  "wrap": True, "size": "Medium"},
                 {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]}]}
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
         "content": content}]}
