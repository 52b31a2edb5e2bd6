"""Concurrency guards for one shared IB client.

ib_async and ib_insync key some requests by a fixed name instead of a request id
(`wrapper.startReq("openOrders")` for reqOpenOrders and reqAllOpenOrders, "completedOrders",
"accountValues" for reqAccountUpdates, "positions", ...): a second such request while one is
in flight replaces the first caller's future, which then never resolves. `Coalescer` runs
those one at a time per key and lets concurrent callers share a round trip. Requests keyed by
a fresh reqId (reqExecutions, reqContractDetails) are safe to run side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

T = TypeVar("T")


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    started: int = 0  # requests sent under this key
    finished: int = 0  # number of the last request that answered
    result: Any = None


class Coalescer:
    """Per key: at most one request in flight; a caller shares the answer of a request sent
    after it asked (never an older one), so N concurrent callers cost at most two round
    trips and each still sees the venue as it was after its call began."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    def _slot(self, key: str) -> _Slot:
        return self._slots.setdefault(key, _Slot())

    async def run(self, key: str, request: Callable[[], Awaitable[T]]) -> T:
        """`request()` for this key, or the answer of one sent after this call began."""
        slot = self._slot(key)
        wanted = slot.started + 1
        async with slot.lock:
            if slot.finished >= wanted:
                return cast(T, slot.result)
            slot.started += 1
            ticket = slot.started
            result = await request()
            slot.finished, slot.result = ticket, result
            return result

    @asynccontextmanager
    async def exclusive(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold every key (in a fixed order): for a connect, whose start-up sync sends the
        same fixed-key requests."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self._slot(key).lock)
            yield


class KeyedLocks:
    """One asyncio.Lock per key, forgotten when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str, wait: float | None = None) -> AsyncIterator[None]:
        """Hold the key's lock; TimeoutError when it is not free within `wait` seconds."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with asyncio.timeout(wait):
                await lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
