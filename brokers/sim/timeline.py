"""Things in the order they happened, found by time.

A day's orders and fills are thousands, and a venue is asked for the recent ones many times a
second (the pipeline's snapshots and reconciliation passes): a bisect finds them without
looking at the day. While the times of what is added never go back (a clock set back, as a
test may do) the times are sorted; after, a scan answers instead, so an answer is never wrong.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class Timeline(Generic[T]):
    def __init__(self) -> None:
        self._items: list[T] = []
        self._times: list[datetime] = []
        self._sorted = True

    def add(self, item: T, at: datetime) -> None:
        if self._times and at < self._times[-1]:
            self._sorted = False
        self._items.append(item)
        self._times.append(at)

    def since(self, at: datetime | None) -> list[T]:
        """What was added at or after `at` (everything for None), in the order it was added."""
        if at is None:
            return list(self._items)
        if self._sorted:
            return self._items[bisect_left(self._times, at):]
        return [item for item, t in zip(self._items, self._times, strict=True) if t >= at]

    def __len__(self) -> int:
        return len(self._items)
