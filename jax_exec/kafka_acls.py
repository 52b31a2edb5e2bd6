"""Who may write where: one Kafka principal per component and the ACLs that follow from what
each component's stages read and write (read from agents/*.py; the table is the contract).

Pure: `bindings()` turns the table into ACL bindings for one topic prefix and app id;
jax_exec.kafka_security sends them to the broker."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from schemas.topics import TOPICS, topic_name

ALL_TOPICS = frozenset(t.name for t in TOPICS)


class Resource(IntEnum):  # org.apache.kafka.common.resource.ResourceType
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Pattern(IntEnum):  # org.apache.kafka.common.resource.PatternType
    ANY = 1
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):  # org.apache.kafka.common.acl.AclOperation
    ANY = 1
    READ = 3
    WRITE = 4
    DESCRIBE = 8


ALLOW = 3  # AclPermissionType.ALLOW
ANY_PERMISSION = 1


@dataclass(frozen=True)
class Rights:
    """What one principal may do: topics it reads (READ implies DESCRIBE), topics it writes
    (WRITE implies DESCRIBE, and since Kafka 3.0 idempotent producing), whether it consumes
    in a consumer group (the stages' faust app), and what it is for."""

    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()
    group: bool = False
    role: str = ""

    def __or__(self, other: Rights) -> Rights:
        return Rights(self.read | other.read, self.write | other.write,
                      self.group or other.group, self.role)


def _r(read: set[str], write: set[str], role: str, group: bool = True) -> Rights:
    unknown = (read | write) - ALL_TOPICS
    assert not unknown, f"undeclared topics {unknown}"
    return Rights(frozenset(read), frozenset(write), group, role)


# Reads include what a stage reads back at start: the decision memory (order-intents,
# rejections, signal-ledger; agents/decision_memory.py), the trading gate (trading-state;
# agents/control.py) and the reconciler's seed (fills, orders, alerts;
# agents/reconciliation_seed.py). Every stage may dead-letter its input (agents/app.py).
STAGE_RIGHTS: dict[str, Rights] = {
    "validation": _r({"signals", "order-intents", "rejections", "signal-ledger"},
                     {"rejections", "signal-ledger", "dead-letter"}, "the validation stage"),
    "sizing": _r({"approvals", "order-intents", "rejections", "signal-ledger", "trading-state",
                  "rollout"},
                 {"order-intents", "rejections", "signal-ledger", "dead-letter"},
                 "the sizing stage: the only writer of order-intents"),
    "submission": _r({"order-intents", "trading-state"}, {"orders", "rejections", "dead-letter"},
                     "the submission stage"),
    "reconciliation": _r({"orders", "fills", "alerts"},
                         {"orders", "fills", "alerts", "dead-letter"}, "the reconciliation stage"),
    # FLATTEN places and cancels orders, so the control stage writes `orders` too; automatic
    # trips publish their commands on `control`.
    "control": _r({"control", "rejections", "alerts", "trading-state"},
                  {"control", "orders", "alerts", "trading-state", "dead-letter"},
                  "the control stage (kill switch, trips, FLATTEN)"),
    # Notifications of fills, refusals, kill-switch changes and alerts (agents/notify.py).
    # It reads signal-ledger and its own notifications back (Slack messages already posted).
    "notify": _r({"orders", "fills", "rejections", "trading-state", "alerts", "control",
                  "signal-ledger", "notifications"},
                 {"notifications"}, "the notifications stage (webhooks, Slack)"),
    "audit": _r(set(ALL_TOPICS), set(), "the audit sink: reads everything"),
}


def _worker() -> Rights:
    union = Rights()
    for rights in STAGE_RIGHTS.values():
        union = union | rights
    return Rights(union.read, union.write, True, "one process running every stage (`run`)")


PRINCIPALS: dict[str, Rights] = {
    "admin": Rights(role="super user: creates topics and ACLs"),
    # `jax-exec approve` looks the signal up on `signals` before it signs
    "upstream": _r({"signals"}, {"signals", "approvals"},
                   "upstream producers: signals and approvals only", group=False),
    **STAGE_RIGHTS,
    "operator": _r({"trading-state", "rollout"}, {"control", "rollout"},
                   "operators: kill-switch commands (`jax-exec halt ...`)", group=False),
    "worker": _worker(),
}

# The principal a CLI command uses on a secure local broker when none is configured.
COMMAND_PRINCIPALS = {"publish": "upstream", "control": "operator", "read": "audit",
                      "admin": "admin"}


def stage_principal(stages: set[str] | frozenset[str]) -> str:
    """One stage runs as that stage's principal; a set of stages as `worker`."""
    return next(iter(stages)) if len(stages) == 1 else "worker"


def sink_group(app_id: str) -> str:
    """The audit sink's consumer group (agents/audit_sink.py: an aiokafka consumer of its own,
    beside the audit process's faust app and its group `<app_id>-audit`)."""
    return f"{app_id}-audit-sink"


def group_pattern(principal: str, app_id: str) -> tuple[Pattern, str]:
    """A stage's consumer group is `<app_id>-<stage>` (jax_exec.wiring.app_id_for); `worker`
    may join any group of the app (`<app_id>` and every `<app_id>-<stages>`)."""
    if principal == "worker":
        return Pattern.PREFIXED, app_id
    return Pattern.LITERAL, f"{app_id}-{principal}"


@dataclass(frozen=True, order=True)
class Binding:
    """One ALLOW ACL: principal User:<name> may <operation> on <resource> from any host."""

    principal: str
    resource: Resource
    pattern: Pattern
    name: str
    operation: Operation

    @property
    def user(self) -> str:
        return f"User:{self.principal}"


def bindings(prefix: str, app_id: str) -> list[Binding]:
    """Every ACL the table implies for topics named `<prefix><topic>` and this app id."""
    out: set[Binding] = set()
    for name, rights in PRINCIPALS.items():
        for topic in rights.read:
            out.add(Binding(name, Resource.TOPIC, Pattern.LITERAL, topic_name(topic, prefix),
                            Operation.READ))
        for topic in rights.write:
            out.add(Binding(name, Resource.TOPIC, Pattern.LITERAL, topic_name(topic, prefix),
                            Operation.WRITE))
        if rights.group:
            pattern, group = group_pattern(name, app_id)
            out.add(Binding(name, Resource.GROUP, pattern, group, Operation.READ))
            if name == "audit":  # `worker`'s prefix covers it
                out.add(Binding(name, Resource.GROUP, Pattern.LITERAL, sink_group(app_id),
                                Operation.READ))
    return sorted(out)


def writers(topic: str) -> list[str]:
    """Who may write a topic (besides the super user)."""
    return sorted(n for n, r in PRINCIPALS.items() if topic in r.write)


def markdown_table() -> str:
    """The README's table of principals, generated from PRINCIPALS."""
    rows = ["| principal | for | writes | reads |", "|---|---|---|---|"]
    for name, rights in PRINCIPALS.items():
        if name == "admin":
            rows.append(f"| `{name}` | {rights.role} | (everything) | (everything) |")
            continue
        reads = "every topic" if rights.read == ALL_TOPICS else _names(rights.read)
        rows.append(f"| `{name}` | {rights.role} | {_names(rights.write) or '-'} | "
                    f"{reads or '-'} |")
    return "\n".join(rows)


def _names(topics: frozenset[str]) -> str:
    order = [t.name for t in TOPICS]
    return ", ".join(f"`{t}`" for t in sorted(topics, key=order.index))
