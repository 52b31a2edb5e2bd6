from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from brokers.sim.core import Exchange, SimConfig
from brokers.sim.prices import ReplaySource, ou_path, ou_step
from brokers.sim.universe import on_tick

BARS = """timestamp,symbol,open,high,low,close,volume
2026-11-20T14:30:00Z,AAPL,150.00,151.00,149.50,150.50,1000
2026-11-20T14:30:00Z,MSFT,415.00,416.00,414.00,415.25,800
2026-11-20T14:31:00Z,AAPL,150.50,152.00,150.40,151.75,1200
2026-11-20T14:32:00Z,AAPL,151.75,152.10,149.90,149.95,900
2026-11-20T14:32:00Z,NEWCO,10.00,10.50,9.90,10.20,5000
"""


def test_same_seed_same_path() -> None:
    a = ou_path(3, "AAPL", Decimal("150.00"), 200)
    b = ou_path(3, "AAPL", Decimal("150.00"), 200)
    assert a == b
    assert a != ou_path(4, "AAPL", Decimal("150.00"), 200)


def test_path_is_on_tick_positive_and_mean_reverting() -> None:
    path = ou_path(5, "MSFT", Decimal("415.50"), 500)
    assert all(p > 0 and on_tick(p) for p in path)
    assert max(path) < Decimal("415.50") * Decimal("1.15")
    assert min(path) > Decimal("415.50") * Decimal("0.85")
    assert len(set(path)) > 50


def test_step_is_a_pure_function() -> None:
    one = ou_step(9, "KO", 17, Decimal("62.45"), Decimal("62.45"))
    two = ou_step(9, "KO", 17, Decimal("62.45"), Decimal("62.45"))
    assert one == two
    assert one.volume > 0


def test_exchange_follows_the_same_path() -> None:
    exchange = Exchange(SimConfig(seed=21))
    exchange.advance(30)
    expected = ou_path(21, "AAPL", Decimal("150.00"), 30)[-1]
    assert exchange.last_price("AAPL") == expected
    assert exchange.step == 30


def test_two_exchanges_with_one_seed_agree() -> None:
    a, b = Exchange(SimConfig(seed=8)), Exchange(SimConfig(seed=8))
    a.advance(10)
    b.advance(10)
    assert all(a.last_price(s) == b.last_price(s) for s in ("AAPL", "XOM", "F"))


def test_set_price_pins_until_released() -> None:
    exchange = Exchange(SimConfig(seed=2))
    exchange.set_price("AAPL", Decimal("151.23"))
    exchange.advance(5)
    assert exchange.last_price("AAPL") == Decimal("151.23")
    exchange.release_price("AAPL")
    exchange.advance(5)
    assert exchange.last_price("AAPL") != Decimal("151.23")


def test_replay_source_steps_through_bars(tmp_path: Path) -> None:
    csv_path = tmp_path / "bars.csv"
    csv_path.write_text(BARS)
    source = ReplaySource.from_csv(csv_path)
    assert len(source) == 3
    assert source.symbols() == ["AAPL", "MSFT", "NEWCO"]
    tick = source.next_tick("AAPL", 2, Decimal(0))
    assert tick is not None
    assert tick.price == Decimal("151.75")
    assert source.next_tick("MSFT", 2, Decimal(0)) is None
    assert source.next_tick("AAPL", 4, Decimal(0)) is None


def test_exchange_replays_csv(tmp_path: Path) -> None:
    csv_path = tmp_path / "bars.csv"
    csv_path.write_text(BARS)
    exchange = Exchange(SimConfig(replay_csv=csv_path))
    assert exchange.last_price("AAPL") == Decimal("150.00")
    exchange.advance()
    assert exchange.last_price("AAPL") == Decimal("150.50")
    assert exchange.last_price("MSFT") == Decimal("415.25")
    exchange.advance(2)
    assert exchange.last_price("AAPL") == Decimal("149.95")
    assert exchange.last_price("MSFT") == Decimal("415.25")
    assert exchange.last_price("NEWCO") == Decimal("10.20")
    exchange.advance(3)
    assert exchange.last_price("AAPL") == Decimal("149.95")
    assert exchange.last_price("XOM") == Decimal("112.80")
