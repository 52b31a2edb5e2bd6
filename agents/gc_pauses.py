"""Garbage-collector pauses: measured in every process, and kept short in the long-running ones.

CPython's cyclic collector stops the process while it walks the objects of the generations it
collects; a full (generation 2) collection walks every tracked object the process holds. A
worker holds a few hundred thousand once started (modules, functions, pydantic's validators,
faust's and aiokafka's machinery), none of which will ever be garbage, so each full collection
stopped the trading worker for 60 to 150 ms: every approval in flight then waited that long.

`freeze_long_lived()` (called once the process serves) moves what is alive at that point to
the collector's permanent generation (`gc.freeze()`), which no collection walks again; a full
collection then walks only what was made since. Objects frozen are still freed when their last
reference goes (reference counting is unchanged); only a reference cycle among them would
never be collected, and what exists at start-up is the process's own machinery.

`freeze_survivors(thaw_every)` goes further, for what a process keeps while it runs (the IB
library keeps every order of its session as a trade of about eighty tracked objects): after
every full collection it freezes what survived, so the next one walks only what was made
since. Over IB at 10 approvals/s for five minutes the full pauses grew from 135 to 670 ms;
frozen after each, they were 15 to 22 ms. The cost is the one above, for more objects: a cycle
among frozen objects is never collected, and objects that lived through a collection and die
later in a cycle exist (an exception with its traceback, a finished task). So every
`thaw_every` seconds the permanent generation is thawed and the next full collection walks,
and collects, everything (one long pause in that period); what it collected is counted in
`jax_gc_collected_objects_total{generation="2",thawed="true"}`, the size of what would have
leaked.

`young_threshold(n)` sets how many tracked objects are made (net of those freed) between two
collections of the youngest generation: Python's default, 700, is a fraction of a millisecond
of a worker's work. An object alive at a collection moves to an older generation, and one that
lives through two reaches the oldest; a full collection comes once those newcomers exceed a
quarter of the oldest generation. Objects of a message in flight (a decision, a decoded TWS
message, a Kafka batch) live a few milliseconds, so every 700 allocations caught many alive
and moved them up, and full collections came often (16 in a 100 s step at 10/s over IB, each
140 ms; 9 of 580 ms five minutes in). Every 20,000 (`GC_YOUNG_THRESHOLD`, the default) most
have died by then: 0 and 1 full collections in the same steps.

`measure_pauses()` records every collection's pause in `jax_gc_pause_seconds{generation}`;
`jax_gc_frozen_objects` says how many objects are frozen.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

GC_PAUSE = Histogram(
    "jax_gc_pause_seconds", "Garbage-collector pauses by generation (2: a full collection)",
    ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)

GC_FROZEN = Gauge("jax_gc_frozen_objects",
                  "Objects exempted from full collections (gc.freeze)")

GC_COLLECTED = Counter(
    "jax_gc_collected_objects_total", "Objects full collections collected; thawed: the "
    "collection that walked the frozen objects too", ["generation", "thawed"])


class _PauseMeter:
    """A gc callback: the time from a collection's start to its stop. Collections do not
    nest and run with the GIL held, whichever thread triggers them, so one start time does."""

    def __init__(self) -> None:
        self.started = 0.0
        self.by_generation = [GC_PAUSE.labels(str(g)) for g in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].observe(time.perf_counter() - self.started)


def measure_pauses() -> None:
    """Record every collection's pause (once per process, however often called)."""
    if not any(isinstance(cb, _PauseMeter) for cb in gc.callbacks):
        gc.callbacks.append(_PauseMeter())


def young_threshold(objects: int) -> None:
    """Collect the youngest generation every `objects` allocations (0: Python's default)."""
    if objects > 0:
        gc.set_threshold(objects, *gc.get_threshold()[1:])


def freeze_long_lived() -> int:
    """Collect once, then exempt everything alive from later collections; the number of
    objects frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    GC_FROZEN.set(frozen)
    return frozen


class _Survivors:
    """A gc callback: after each full collection, freeze what survived it; every `thaw_every`
    seconds, unfreeze instead, so the next full collection walks everything."""

    def __init__(self, thaw_every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.thaw_every = thaw_every
        self.clock = clock
        self.thawed_at = clock()
        self.thawed = False

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        GC_COLLECTED.labels("2", str(self.thawed).lower()).inc(info["collected"])
        if self.clock() - self.thawed_at >= self.thaw_every:
            gc.unfreeze()  # the next full collection walks what was frozen too
            self.thawed_at, self.thawed = self.clock(), True
        else:
            gc.freeze()  # safe here: the collection is over and no other can start
            self.thawed = False
        GC_FROZEN.set(gc.get_freeze_count())


def freeze_survivors(thaw_every: float) -> None:
    """Freeze what survives each full collection from now on, thawing every `thaw_every`
    seconds (once per process)."""
    if not any(isinstance(cb, _Survivors) for cb in gc.callbacks):
        gc.callbacks.append(_Survivors(thaw_every))
