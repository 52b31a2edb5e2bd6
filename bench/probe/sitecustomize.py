"""Loaded by the benchmark's trading worker when BENCH_IB_COUNTS names a file (the benchmark
puts this directory on PYTHONPATH): counts the TWS API messages the worker sends, by request
(ib_async Client method), and writes the counts to that file at most twice a second, so the
benchmark can report venue messages per approval. Touches nothing else."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import Any

_PATH = os.environ.get("BENCH_IB_COUNTS")


def _install(path: str) -> None:
    try:
        from ib_async.client import Client
    except ImportError:
        return
    counts: Counter[str] = Counter()
    written = [0.0]
    send = Client.send

    def counted(self: Any, *fields: Any, **kwargs: Any) -> Any:
        counts[sys._getframe(1).f_code.co_name] += 1
        now = time.monotonic()
        if now - written[0] > 0.5:
            written[0] = now
            tmp = f"{path}.tmp"
            with open(tmp, "w") as out:
                json.dump(counts, out)
            os.replace(tmp, path)
        return send(self, *fields, **kwargs)

    Client.send = counted  # type: ignore[method-assign]


if _PATH:
    _install(_PATH)


_PROFILE = os.environ.get("BENCH_PROFILE")


def _sample(path: str, interval: float = 0.005, idle: float = 0.25) -> None:
    """A sampling profiler of the main thread (py-spy cannot attach to every build of
    Python): while `path`.on exists, every `interval` the main thread's stack is counted; when
    the flag goes away the counts are written to `path` as collapsed stacks (flamegraph
    format, `frame;frame;... count`, outermost first). Off, it looks for the flag every
    `idle` (looking every `interval` cost the measured worker about 9% of its samples)."""
    import threading

    main = threading.main_thread().ident
    flag = f"{path}.on"
    counts: Counter[str] = Counter()

    def stack_of(frame: Any) -> str:
        names = []
        while frame is not None:
            code = frame.f_code
            names.append(f"{code.co_name} ({code.co_filename}:{frame.f_lineno})")
            frame = frame.f_back
        return ";".join(reversed(names))

    def run() -> None:
        sampling = False
        while True:
            time.sleep(interval if sampling else idle)
            on = os.path.exists(flag)
            if on:
                frame = sys._current_frames().get(main or 0)
                if frame is not None:
                    counts[stack_of(frame)] += 1
            elif sampling:
                with open(path, "w") as out:
                    out.writelines(f"{s} {n}\n" for s, n in counts.items())
                counts.clear()
            sampling = on

    threading.Thread(target=run, name="bench-sampler", daemon=True).start()


if _PROFILE:
    _sample(_PROFILE)


# Messages each optional adapter method costs (IB: one reqAccountUpdates; one
# reqAllOpenOrders + one reqCompletedOrders).
_OPTIONAL = {"account_and_positions": 1, "orders_and_open_orders": 2}


def _forward_optional() -> None:
    """BENCH_FORWARD=1: the venue wrappers (brokers.pacing.PacedVenue, brokers.bounded.
    BoundedVenue) pass the adapter's optional snapshot methods through, paced and under the
    time limit, as the change proposed for them does; for a before/after measurement only."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if root not in sys.path:
        sys.path.append(root)
    from brokers.bounded import BoundedVenue
    from brokers.pacing import PacedVenue

    def paced(self: Any, name: str) -> Any:
        if name not in _OPTIONAL:
            raise AttributeError(name)
        inner = getattr(self.inner, name)

        async def call(*args: Any) -> Any:
            return await self._paced(lambda: inner(*args), _OPTIONAL[name])

        return call

    def bounded(self: Any, name: str) -> Any:
        if name not in _OPTIONAL:
            raise AttributeError(name)
        inner = getattr(self.inner, name)

        async def call(*args: Any) -> Any:
            return await self._within(name, inner(*args))

        return call

    PacedVenue.__getattr__ = paced  # type: ignore[attr-defined]
    BoundedVenue.__getattr__ = bounded  # type: ignore[attr-defined]


if os.environ.get("BENCH_FORWARD") == "1":
    _forward_optional()



def _count_pacing(path: str) -> None:
    """Beside the TWS counts: what the stages charged the venue's pacer (brokers.pacing), by
    PacedVenue method (messages, calls) and the seconds calls waited for their turn, written
    to `path`.pacing.json: a call served from the adapter's pushed state is still charged, so
    this is the budget the stages spend, not what went on the wire."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if root not in sys.path:
        sys.path.append(root)
    from brokers.pacing import Pacer

    out = f"{path}.pacing.json"
    charged: Counter[str] = Counter()
    written = [0.0]
    acquire = Pacer.acquire

    def write() -> None:
        with open(f"{out}.tmp", "w") as f:
            json.dump(charged, f)
        os.replace(f"{out}.tmp", out)

    async def counted(self: Any, messages: int = 1, *args: Any, **kwargs: Any) -> None:
        caller = sys._getframe(2).f_code.co_name
        before = time.monotonic()
        await acquire(self, messages, *args, **kwargs)
        charged[f"messages:{caller}"] += messages
        charged[f"calls:{caller}"] += 1
        charged["wait_ms"] += round((time.monotonic() - before) * 1000)
        now = time.monotonic()
        if now - written[0] > 0.5:
            written[0] = now
            write()

    Pacer.acquire = counted  # type: ignore[method-assign]


if _PATH:
    _count_pacing(_PATH)
