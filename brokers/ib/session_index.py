"""The session's trades and fills as ib_async keeps them, indexed as they arrive, so a read
costs what is recent or working, not everything the session did.

ib_async keeps every trade and every fill of the session (`wrapper.trades`, `wrapper.fills`)
and answers `openTrades()` by walking them all; the adapter's reads walked them too, on every
venue snapshot: with 10,000 finished orders in the session a snapshot cost 16 ms of CPU, with
100,000 302 ms (README, "Benchmark: the IB adapter's reads over a long session").

Both dicts are replaced by `_Recorded` copies that note what is added. Then:
- `working`: the trades not finished. Filled, Cancelled and ApiCancelled never work again
  (Inactive may), so a pass drops those, and open orders are read from what is left.
- `young`: the trades orders_since groups (ours, with an orderRef), but not those of an
  orderRef *dated* before `horizon` ago. A group is dated by its earliest logged placement
  (the adapter's created_at), and that date never moves later: a trade that joins the group
  later, or is acknowledged later, was logged later, and a completed order carries no log.
  So a read asking from a time at or after the passes' cut (`old_below`) skips those groups
  exactly: they were created before its `since`. A read asking from earlier walks everything.
- `by_ref`: every trade by orderRef, for the look-up of one order.
- fills executed before the cut are skipped the same way by a fills read from after it.

The library replaces both dicts when it resets (a new connection): the next read indexes the
new ones from the start. One assumption, the library's: a trade keeps the orderRef it was
made with (ib_async copies TWS's echo of it on openOrder, the same text)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

FINISHED = frozenset({"Filled", "Cancelled", "ApiCancelled"})  # Inactive may work again
ARCHIVE_EVERY = 10.0  # seconds between passes
# What is younger stays walked: the sizing stage asks from a minute before its oldest
# reservation (usually a minute ago), reconciliation from its cursor, both recent; a read
# asking from further back walks everything.
HORIZON = timedelta(minutes=3)


class _Recorded(dict[Any, Any]):
    """A dict noting every value set in it (ib_async only ever sets new keys)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.added: list[Any] = []

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.added.append(value)

    def take(self) -> list[Any]:
        added, self.added = self.added, []
        return added


def _executed(fill: Any) -> datetime | None:
    when = fill.execution.time
    return when if isinstance(when, datetime) and when.tzinfo is not None else None


class SessionIndex:
    """See the module. `belongs(trade)`: whether a trade is of the adapter's account (else never
    in its orders_since); `created_at(trades)`: the adapter's creation date of a group of
    acknowledged trades of one orderRef (the earliest logged, else a completion time)."""

    def __init__(self, belongs: Callable[[Any], bool],
                 created_at: Callable[[list[Any]], datetime | None],
                 horizon: timedelta = HORIZON, every: float = ARCHIVE_EVERY,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.belongs = belongs
        self.created_at = created_at
        self.horizon = horizon
        self.every = every
        self.clock = clock
        self.monotonic = monotonic
        self._wrapper: Any = None
        self._trades: _Recorded | None = None
        self._fills: _Recorded | None = None
        self._forget()

    def _forget(self) -> None:
        self.working: dict[int, Any] = {}  # id -> trade, in the order they came
        self.young: dict[int, Any] = {}
        self.by_ref: dict[str, list[Any]] = {}
        self.old_refs: set[str] = set()  # dated before old_below
        self.old_below: datetime | None = None
        self.perm_ids: set[int] = set()
        self.unacknowledged: dict[int, Any] = {}  # no permId when last looked at
        self.recent_fills: dict[int, Any] = {}
        self.fills_below: datetime | None = None
        self.last_pass = self.monotonic()

    # ------------------------------------------------------------ keeping up

    def sync(self, wrapper: Any) -> None:
        """Take in what the library added since the last read (all of it after a reset)."""
        if (wrapper is not self._wrapper or wrapper.trades is not self._trades
                or wrapper.fills is not self._fills):
            self._wrapper = wrapper
            self._trades = wrapper.trades = _Recorded(wrapper.trades)
            self._fills = wrapper.fills = _Recorded(wrapper.fills)
            self._forget()
            trades, fills = list(self._trades.values()), list(self._fills.values())
        else:
            recorded, recorded_fills = self._trades, self._fills
            assert recorded is not None
            assert recorded_fills is not None
            trades, fills = recorded.take(), recorded_fills.take()
        for trade in trades:
            self._add(trade)
        for fill in fills:
            self.recent_fills[id(fill)] = fill
        if self.monotonic() - self.last_pass >= self.every:
            self._pass(self.clock() - self.horizon)

    def _add(self, trade: Any) -> None:
        ref, key = trade.order.orderRef, id(trade)
        self.working[key] = trade
        self.by_ref.setdefault(ref, []).append(trade)
        if ref and ref not in self.old_refs and self.belongs(trade):
            self.young[key] = trade
        if trade.order.permId:
            self.perm_ids.add(trade.order.permId)
        else:
            self.unacknowledged[key] = trade

    def _pass(self, cut: datetime) -> None:
        self.last_pass = self.monotonic()
        for key in [k for k, t in self.working.items() if t.orderStatus.status in FINISHED]:
            del self.working[key]
        groups: dict[str, list[Any]] = {}
        for trade in self.young.values():
            if trade.order.permId:
                groups.setdefault(trade.order.orderRef, []).append(trade)
        for ref, group in groups.items():
            logged = any(t.log and isinstance(t.log[0].time, datetime) for t in group)
            created = self.created_at(group) if logged else None
            if created is not None and created < cut:
                self.old_refs.add(ref)
        if self.old_refs:
            for key in [k for k, t in self.young.items() if t.order.orderRef in self.old_refs]:
                del self.young[key]
        self.old_below = max(cut, self.old_below or cut)
        old = [k for k, f in self.recent_fills.items() if (_executed(f) or cut) < cut]
        for key in old:
            del self.recent_fills[key]
        self.fills_below = max(cut, self.fills_below or cut)

    # ------------------------------------------------------------ reads

    def open_trades(self) -> list[Any]:
        """ib.openTrades(), from the trades that may still work."""
        return [t for t in self.working.values() if not t.isDone()]

    def trades_since(self, since: datetime, completed: list[Any]) -> list[Any]:
        """What the adapter's orders_since(since) groups: the session's trades, then the
        completed orders of the last full read the session does not know (by permId); less
        the groups dated before the cut when `since` is at or after it."""
        known = self.known()
        if self.old_below is not None and since >= self.old_below:
            old = self.old_refs
            return [*self.young.values(),
                    *(t for t in completed
                      if t.order.orderRef not in old and not known(t.order.permId))]
        assert self._trades is not None
        return [*self._trades.values(), *(t for t in completed if not known(t.order.permId))]

    def known(self) -> Callable[[int], bool]:
        """Whether some trade of the session has this permId now (0: never)."""
        for key, trade in list(self.unacknowledged.items()):
            if trade.order.permId:
                self.perm_ids.add(trade.order.permId)
                del self.unacknowledged[key]
        ids = self.perm_ids
        return lambda perm_id: bool(perm_id) and perm_id in ids

    def with_ref(self, ref: str) -> Iterable[Any]:
        return (t for t in self.by_ref.get(ref, ()) if t.order.orderRef == ref)

    def fills_for(self, since: datetime) -> list[Any]:
        """The session's fills fills_since(since) must look at: all but those executed before
        the cut when `since` is at or after it."""
        if self.fills_below is not None and since >= self.fills_below:
            return list(self.recent_fills.values())
        assert self._fills is not None
        return list(self._fills.values())
