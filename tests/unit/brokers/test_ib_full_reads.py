"""How long a full read of the IB session serves: IB_FULL_READ_SECONDS, or longer when it took
long, so full reads take at most IB_FULL_READ_SHARE of the time however many orders the day
holds (6,000 resting exits: each read decodes every one of them)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from brokers.ib.service import PLACEMENT_DEADLINES, IbOrderService


def service(seconds: float = 5.0, share: float = 0.05, longest: float = 60.0) -> IbOrderService:
    return IbOrderService(timeout=1.0, full_read_seconds=seconds, full_read_share=share,
                          full_read_max_seconds=longest)


@pytest.mark.parametrize(("took", "serves"), [(0.01, 5.0), (0.25, 5.0), (1.0, 20.0),
                                               (2.0, 40.0), (10.0, 60.0)])
def test_a_read_that_took_long_serves_longer(took: float, serves: float) -> None:
    ib = service()
    ib._served("open", time.monotonic() - took, [])
    assert ib._full_reads["open"][2] == pytest.approx(serves, rel=0.01)
    assert ib._full_read("open") == []
    assert ib.wire_messages("open_orders") == 0  # the pacer charges nothing while it serves


def test_an_order_may_show_as_late_as_the_longest_a_read_served() -> None:
    """agents.venue_view reads back this far: another client's completed order is dated by its
    completion, up to one serving time before the full read that shows it."""
    ib = service()
    base = timedelta(seconds=PLACEMENT_DEADLINES * 1.0)
    assert ib.orders_shown_within == timedelta(seconds=5) + base
    ib._served("completed", time.monotonic() - 1.0, [])
    assert ib.orders_shown_within == pytest.approx(timedelta(seconds=20) + base,
                                                     abs=timedelta(seconds=0.5))
    ib._served("completed", time.monotonic() - 0.01, [])  # quick again: it never shrinks
    assert ib._full_reads["completed"][2] == 5.0
    assert ib.orders_shown_within >= timedelta(seconds=19) + base


def test_zero_seconds_still_asks_every_read() -> None:
    ib = service(seconds=0.0)
    ib._served("executions", time.monotonic() - 1.0, [])
    assert ib._full_read("executions") is None
    assert ib.wire_messages("fills_since") == 1


def test_the_share_is_configured() -> None:
    from brokers.ib.plugin import build
    from brokers.ib.settings import IbSettings

    ib = build(IbSettings(full_read_share=0.1, full_read_max_seconds=30), timeout=3.0)
    assert isinstance(ib, IbOrderService)
    assert (ib.full_read_share, ib.full_read_max_seconds) == (0.1, 30.0)
    ib._served("open", time.monotonic() - 10.0, [])
    assert ib._full_reads["open"][2] == 30.0
