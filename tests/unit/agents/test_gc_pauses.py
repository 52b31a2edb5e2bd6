"""Garbage-collector pauses: every collection is measured, and what a process holds once it
serves is frozen out of later full collections (agents/gc_pauses.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from agents import gc_pauses


def _series(generation: str) -> tuple[float, float]:
    hist = gc_pauses.GC_PAUSE.labels(generation)
    count = sum(s.value for m in hist.collect() for s in m.samples if s.name.endswith("_count"))
    total = sum(s.value for m in hist.collect() for s in m.samples if s.name.endswith("_sum"))
    return count, total


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects as before


def test_every_collection_is_measured_once() -> None:
    gc_pauses.measure_pauses()
    gc_pauses.measure_pauses()  # a second call adds no second meter
    assert sum(isinstance(cb, gc_pauses._PauseMeter) for cb in gc.callbacks) == 1
    count, total = _series("2")
    gc.collect()
    after, after_total = _series("2")
    assert after == count + 1
    assert after_total > total
    young, _ = _series("0")
    gc.collect(0)
    assert _series("0")[0] == young + 1


class Node:
    """A tracked object in a reference cycle: what the collector walks."""

    def __init__(self) -> None:
        self.me = self


def test_what_is_alive_when_frozen_is_walked_by_no_later_full_collection(unfrozen: None
                                                                          ) -> None:
    held = [Node() for _ in range(1000)]
    marker = held[0]
    gc.collect()  # survivors of a full collection are in generation 2, walked by the next
    assert any(o is marker for o in gc.get_objects(generation=2))
    frozen = gc_pauses.freeze_long_lived()
    assert frozen >= 1000
    assert gc_pauses.GC_FROZEN._value.get() == frozen
    assert not any(o is marker for o in gc.get_objects(generation=2))
    # made after the freeze: collected as usual
    later = Node()
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None


def test_a_frozen_object_is_still_freed_when_its_last_reference_goes(unfrozen: None) -> None:
    class Plain:
        pass

    kept = Plain()
    gone = weakref.ref(kept)
    gc_pauses.freeze_long_lived()
    del kept  # reference counting frees it: freezing only exempts it from collections
    assert gone() is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def survivors(unfrozen: None) -> Iterator[tuple[gc_pauses._Survivors, Clock]]:
    clock = Clock()
    hook = gc_pauses._Survivors(thaw_every=600, clock=clock)
    gc.callbacks.append(hook)
    try:
        yield hook, clock
    finally:
        gc.callbacks.remove(hook)


def _thawed_collected() -> float:
    return float(gc_pauses.GC_COLLECTED.labels("2", "true")._value.get())


def test_what_survives_a_full_collection_is_walked_by_no_later_one(
        survivors: tuple[gc_pauses._Survivors, Clock]) -> None:
    held = [Node() for _ in range(1000)]
    gc.collect()  # they survive it: frozen at its end
    assert gc.get_freeze_count() >= 1000
    assert not any(o is held[0] for o in gc.get_objects(generation=2))
    assert gc_pauses.GC_FROZEN._value.get() >= 1000  # as counted at the freeze
    later = Node()  # made since: walked and collected as usual
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None


def test_a_cycle_that_dies_frozen_is_collected_after_the_thaw(
        survivors: tuple[gc_pauses._Survivors, Clock]) -> None:
    hook, clock = survivors
    dying = Node()  # lives through a full collection, then dies in a cycle
    gone = weakref.ref(dying)
    gc.collect()
    del dying
    gc.collect()
    assert gone() is not None  # frozen: no full collection walks it
    before = _thawed_collected()
    clock.now = 601
    gc.collect()  # the period is over: this one thaws everything at its end
    assert gc.get_freeze_count() == 0
    assert hook.thawed
    gc.collect()  # walks everything: the cycle is collected, and counted
    assert gone() is None
    assert _thawed_collected() >= before + 1
    assert gc.get_freeze_count() > 0  # and what survived is frozen again


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_the_young_threshold_spaces_young_collections(thresholds: tuple[int, int, int]
                                                      ) -> None:
    gc_pauses.young_threshold(0)  # 0: as Python has it
    assert gc.get_threshold() == thresholds
    gc_pauses.young_threshold(20_000)
    assert gc.get_threshold() == (20_000, *thresholds[1:])
    # objects of messages in flight: each lives while the next few are made
    gc_pauses.measure_pauses()
    gc.collect()
    young, _ = _series("0")
    in_flight: list[list[Node]] = []
    for _ in range(2_000):
        in_flight.append([Node() for _ in range(20)])
        del in_flight[:-5]
    assert _series("0")[0] - young <= 3  # 40,000 made: two young collections, not 57


def test_a_worker_collects_the_young_every_20000_by_default() -> None:
    from jax_exec.settings import Settings

    assert Settings().gc_young_threshold == 20_000
    assert Settings(gc_young_threshold=0).gc_young_threshold == 0
