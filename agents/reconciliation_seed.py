"""What the reconciler already published, read back from Kafka at start (`fills`, `orders`,
`alerts`), so a restarted worker publishes nothing twice and resumes its fill cursor."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from agents.decisions.order_state import OrderState
from agents.kafka_auth import NO_AUTH, KafkaAuth
from agents.readback import read_all
from agents.reconciliation import RECENT_LIMIT, SOURCE, Reconciler, Seed, signed
from schemas.events import Alert, Fill, OrderEvent

log = logging.getLogger(__name__)


class SeedBuilder:
    """Visitors for agents.readback.read_all; pure, so tests feed it dicts."""

    def __init__(self, venue: str, recent_limit: int = RECENT_LIMIT) -> None:
        self.venue = venue
        self.recent_limit = recent_limit
        self.seed = Seed()
        self._finished: OrderedDict[str, OrderState] = OrderedDict()

    def fill(self, obj: dict[str, Any]) -> None:
        try:
            fill = Fill.model_validate(obj)
        except ValidationError:
            return
        self.seed.executions[fill.execution_id] = fill.occurred_at
        if fill.venue == self.venue:
            key = (fill.account_id, fill.symbol)
            total = self.seed.positions.get(key, Decimal(0)) + signed(fill.side, fill.quantity)
            self.seed.positions[key] = total

    def order(self, obj: dict[str, Any]) -> None:
        try:
            event = OrderEvent.model_validate(obj)
        except ValidationError:
            return
        coid = event.client_order_id
        if coid in self._finished:
            return  # a late copy after the final state
        if event.status.is_terminal:
            self.seed.orders.pop(coid, None)
            self._finished[coid] = OrderState.of(event)
            if len(self._finished) > self.recent_limit:
                self._finished.popitem(last=False)
        else:
            self.seed.orders[coid] = event

    def alert(self, obj: dict[str, Any]) -> None:
        if obj.get("source") != SOURCE:
            return
        try:
            self.seed.alerts.add(Alert.model_validate(obj).event_id)
        except ValidationError:
            return

    def build(self) -> Seed:
        self.seed.finished = dict(self._finished)
        return self.seed


async def read_seed(bootstrap: str, topic: Callable[[str], str], venue: str,
                    recent_limit: int = RECENT_LIMIT, auth: KafkaAuth = NO_AUTH) -> Seed:
    """Read `fills`, `orders` and `alerts` (physical names from `topic`) from the beginning."""
    builder = SeedBuilder(venue, recent_limit)
    await read_all(bootstrap, topic("fills"), builder.fill, auth)
    await read_all(bootstrap, topic("orders"), builder.order, auth)
    await read_all(bootstrap, topic("alerts"), builder.alert, auth)
    return builder.build()


async def seed_reconciler(reconciler: Reconciler, bootstrap: str,
                          topic: Callable[[str], str], auth: KafkaAuth = NO_AUTH) -> Seed:
    """Seed the reconciler from Kafka; its first poll then runs the start-up reconciliation."""
    seed = await read_seed(bootstrap, topic, reconciler.venue.venue, reconciler.recent_limit,
                           auth)
    reconciler.seed(seed)
    log.info("reconciler seeded: %d executions (cursor %s), %d open orders, %d finished, "
             "%d alerts", len(seed.executions), reconciler.cursor, len(seed.orders),
             len(seed.finished), len(seed.alerts))
    return seed
