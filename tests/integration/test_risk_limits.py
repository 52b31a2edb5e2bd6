"""Every account-level pre-trade limit, tripped on the real Kafka broker: a batch of signals and
approvals goes to running workers (subprocesses with the in-process simulator as venue); each
refusal must appear, with its reason code and the numbers behind it, on `rejections` and in the
worker's ClickHouse, while the signals within the limits become orders at the venue.

The limits read the account as the venue reports it at decision time (positions, working entry
orders, fills of the last minute), so the scenarios that depend on earlier orders wait for each
decision (and, for an order, its fill) before publishing the next approval.

Four workers, started in parallel, because some limits mask others (LIMITS runs in a fixed
order and the first refusal wins):
- `sequence`: SAME_SYMBOL_POSITION, MAX_SYMBOL_EXPOSURE, MAX_GROUP_EXPOSURE, MAX_GROSS_EXPOSURE,
  MAX_OPEN_POSITIONS, one after another as orders fill;
- `rate`: ORDER_RATE_LIMIT, which once reached refuses everything for a minute;
- `window`: OUTSIDE_TRADING_WINDOW, checked first, refuses everything;
- `loss`: MAX_DAILY_LOSS, which needs a loss the pipeline alone cannot make (see seed_losing_day).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from agents.decisions.limits import LIMITS
from agents.decisions.reasons import ReasonCode
from brokers.port import OrderRequest
from brokers.sim.core import Exchange, SimConfig
from brokers.sim.models import DEFAULT_ACCOUNT_ID
from brokers.sim.store import SimStore
from schemas.events import OrderType, Side
from schemas.ids import signal_event_id
from tests.integration.harness import (
    WorkerProcess,
    approval_for,
    events,
    publish,
    signal_with,
    wait_for,
    wait_sql,
)

pytestmark = pytest.mark.integration

# The limits over the whole account (SHORTING_DISABLED is a venue permission, not a limit).
ACCOUNT_LIMIT_CODES = {
    ReasonCode.MAX_OPEN_POSITIONS,
    ReasonCode.MAX_DAILY_LOSS,
    ReasonCode.MAX_GROSS_EXPOSURE,
    ReasonCode.MAX_SYMBOL_EXPOSURE,
    ReasonCode.MAX_GROUP_EXPOSURE,
    ReasonCode.SAME_SYMBOL_POSITION,
    ReasonCode.ORDER_RATE_LIMIT,
    ReasonCode.OUTSIDE_TRADING_WINDOW,
}

# Equity 100,000 (less ~1.00 commission per fill). A "normal" signal has a stop 1/10 of the
# price away, so the 1% risk budget (~1,000) buys ~10,000 of stock; a "tight" one has a stop so
# close that MAX_POSITION_PCT (20% = ~20,000) bounds it instead.
SEQUENCE_ENV = {
    "MAX_OPEN_POSITIONS": "3",
    "MAX_GROSS_EXPOSURE_PCT": "0.35",
    "MAX_SYMBOL_EXPOSURE_PCT": "0.15",
    "MAX_GROUP_EXPOSURE_PCT": "0.15",
    "SYMBOL_GROUPS": "JPM:banks,BAC:banks",
}
RATE_ENV = {"MAX_ORDERS_PER_MINUTE": "2"}
MAX_DAILY_LOSS = Decimal(250)
# The losing day is made of orders placed behind the pipeline's back (external orders): with the
# default mismatch trip they would HALT the account, which is test_kill_switch's business.
LOSS_ENV = {"MAX_DAILY_LOSS": str(MAX_DAILY_LOSS), "TRIP_MISMATCH_ACTION": "off"}


def window_env() -> dict[str, str]:
    """A one-hour trading window starting two hours from now (UTC), so now is outside it."""
    start = datetime.now(UTC) + timedelta(hours=2)
    end = start + timedelta(hours=1)
    return {
        "TRADING_WINDOW": f"{start:%H:%M}-{end:%H:%M}",
        "TRADING_WINDOW_TZ": "UTC",
        "TRADING_WEEKDAYS_ONLY": "false",
    }


def seed_losing_day(home: Path) -> None:
    """Leave the venue's account down 301.50 today before the worker starts: -151.50 realized
    (the -150 price loss net of commissions, as IB reports it) and -150 unrealized,
    from trades made by hand ten minutes ago (client ids outside the `jx-`
    space, so the pipeline does not adopt them; old enough not to count as recent orders).

    Why not through the pipeline: with SIM_TICK_SECONDS=0 every fill is at the symbol's frozen
    last print, so a round trip realizes only its commissions and a position is marked at its
    own cost. A real loss needs the price to move, which only the
    venue can do; the worker's simulator has no admin port, so the move is made through the
    simulator's own API on its state file (the worker restores that state on start).
    """
    state = home / "sim" / "sim.sqlite"
    state.parent.mkdir(parents=True, exist_ok=True)
    store = SimStore(state)
    earlier = datetime.now(UTC) - timedelta(minutes=10)
    exchange = Exchange(SimConfig(seed=42), store=store, clock=lambda: earlier)
    try:
        exchange.place(
            DEFAULT_ACCOUNT_ID,
            OrderRequest(
                client_order_id="manual-aapl-buy",
                symbol="AAPL",
                side=Side.BUY,
                quantity=Decimal(100),
                order_type=OrderType.MKT,
            ),
        )  # at 150.00
        exchange.set_price("AAPL", Decimal("147.00"))  # held: the price stays there
        exchange.place(
            DEFAULT_ACCOUNT_ID,
            OrderRequest(
                client_order_id="manual-aapl-sell",
                symbol="AAPL",
                side=Side.SELL,
                quantity=Decimal(50),
                order_type=OrderType.MKT,
            ),
        )
        account = exchange.account_snapshot(DEFAULT_ACCOUNT_ID)
        assert (account.realized_pnl_today, account.unrealized_pnl) == \
            (Decimal("-151.50"), -150), account
    finally:
        store.close()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, WorkerProcess]]:
    root = tmp_path_factory.mktemp("risk-limits")
    run = uuid.uuid4().hex[:8]
    settings = {
        "sequence": SEQUENCE_ENV,
        "rate": RATE_ENV,
        "window": window_env(),
        "loss": LOSS_ENV,
    }
    procs = {
        name: WorkerProcess(root / name, f"t{run}{name[:3]}-", env)
        for name, env in settings.items()
    }
    seed_losing_day(procs["loss"].home)
    with ThreadPoolExecutor(len(procs)) as pool:
        try:
            for started in [pool.submit(p.start) for p in procs.values()]:
                started.result()
            yield procs
        finally:
            list(pool.map(lambda p: p.stop(), procs.values()))


# ----------------------------------------------------------------- helpers


def corr_of(signal: dict[str, Any]) -> str:
    return str(signal_event_id(signal["id"]))


def buy(symbol: str, entry: str, stop: str) -> dict[str, Any]:
    """A BUY at the symbol's reference price (a limit there fills at once), take-profit at 2R."""
    e, s = Decimal(entry), Decimal(stop)
    return signal_with(
        symbol=symbol,
        entry_price=float(e),
        stop_loss=float(s),
        take_profit=float(e + 2 * (e - s)),
        strategy_id="risk_limits_it",
    )


def mine(rows: list[dict[str, Any]], signal: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("correlation_id") == corr_of(signal)]


async def send(worker: WorkerProcess, signal: dict[str, Any]) -> None:
    key = corr_of(signal).encode()
    await publish(f"{worker.prefix}signals", signal, key=key)
    await publish(f"{worker.prefix}approvals", approval_for(signal), key=key)


async def expect_order(worker: WorkerProcess, signal: dict[str, Any]) -> dict[str, Any]:
    """The signal becomes an order intent and its fill: the venue holds it before the next."""
    await send(worker, signal)
    intents = await wait_for(
        f"{worker.prefix}order-intents", lambda rows: len(mine(rows, signal)) == 1
    )
    await wait_for(f"{worker.prefix}fills", lambda rows: len(mine(rows, signal)) == 1)
    assert mine(await events(f"{worker.prefix}rejections"), signal) == []
    intent: dict[str, Any] = mine(intents, signal)[0]
    return intent


async def expect_refusal(
    worker: WorkerProcess, signal: dict[str, Any], code: ReasonCode
) -> dict[str, Any]:
    """The approval is refused by the risk stage with `code`, and nothing is ordered."""
    await send(worker, signal)
    rejections = await wait_for(
        f"{worker.prefix}rejections", lambda rows: len(mine(rows, signal)) >= 1
    )
    (rejection,) = mine(rejections, signal)
    assert rejection["reason_code"] == code, rejection
    assert rejection["stage"] == "risk"
    assert (rejection["signal_id"], rejection["symbol"]) == (signal["id"], signal["symbol"])
    assert mine(await events(f"{worker.prefix}order-intents"), signal) == []
    return rejection


def d(details: dict[str, str], name: str) -> Decimal:
    return Decimal(details[name])


def value_of(intent: dict[str, Any]) -> Decimal:
    return Decimal(intent["quantity"]) * Decimal(intent["limit_price"])


def assert_exposure(rejection: dict[str, Any], pct: str, entries: list[Decimal]) -> None:
    """The exposure arithmetic in the details: held + working + this order > pct x equity.

    Each earlier entry (all filled) is counted, as held or as still working: the risk stage
    decides on a venue snapshot up to VENUE_SNAPSHOT_SECONDS old (0.5 s), which can show an
    entry that has just filled as still open, and one that fills between the snapshot's read
    of the open orders and its read of the positions is in both (the snapshot never
    undercounts). Which side an entry lands on is timing; that each is counted is not.
    """
    det = rejection["details"]
    split = (d(det, "positions_value"), d(det, "open_orders_value"))
    assert split in counted_splits(entries), (split, entries)
    assert d(det, "total") == sum(split) + d(det, "order_value")
    assert d(det, "limit") == d(det, "equity") * Decimal(pct)
    assert d(det, "total") > d(det, "limit")
    assert Decimal(99_990) < d(det, "equity") <= Decimal(100_000)  # less commissions


def counted_splits(entries: list[Decimal]) -> set[tuple[Decimal, Decimal]]:
    """(held, working) for every way of counting each entry as held, working or both."""
    ways = product(((1, 0), (0, 1), (1, 1)), repeat=len(entries))
    return {
        (sum((v * h for v, (h, _) in zip(entries, way, strict=True)), Decimal(0)),
         sum((v * w for v, (_, w) in zip(entries, way, strict=True)), Decimal(0)))
        for way in ways
    }


def assert_stored(worker: WorkerProcess, refused: dict[str, dict[str, Any]]) -> None:
    """Each rejection is in ClickHouse: the raw `events` row and the typed `rejections` row,
    with the same code, stage and details as on the topic."""
    expected = {corr: r["reason_code"] for corr, r in refused.items()}
    raw = wait_sql(
        worker,
        "SELECT toString(correlation_id) AS corr, event_type FROM events "
        "WHERE topic = 'rejections'",
        lambda rows: {r["corr"] for r in rows} >= expected.keys(),
    )
    assert sorted(r["corr"] for r in raw) == sorted(expected)
    assert {r["event_type"] for r in raw} == {"rejection"}
    typed = wait_sql(
        worker,
        "SELECT toString(correlation_id) AS corr, reason_code, stage, "
        "details, symbol, signal_id FROM rejections FINAL",
        lambda rows: {r["corr"] for r in rows} >= expected.keys(),
    )
    assert {r["corr"]: r["reason_code"] for r in typed} == expected
    for row in typed:
        topic = refused[row["corr"]]
        assert row["stage"] == "risk"
        assert json.loads(row["details"]) == topic["details"]
        assert (row["symbol"], row["signal_id"]) == (topic["symbol"], topic["signal_id"])


# ----------------------------------------------------------------- scenarios


def test_the_scenarios_cover_every_account_level_limit() -> None:
    """A limit added to LIMITS without a scenario here fails this test."""
    scenario_for = {
        "check_trading_window": ReasonCode.OUTSIDE_TRADING_WINDOW,  # window
        "check_order_rate": ReasonCode.ORDER_RATE_LIMIT,  # rate
        "check_daily_loss": ReasonCode.MAX_DAILY_LOSS,  # loss
        "check_same_symbol": ReasonCode.SAME_SYMBOL_POSITION,  # sequence
        "check_open_positions": ReasonCode.MAX_OPEN_POSITIONS,  # sequence
        "check_gross_exposure": ReasonCode.MAX_GROSS_EXPOSURE,  # sequence
        "check_symbol_exposure": ReasonCode.MAX_SYMBOL_EXPOSURE,  # sequence
        "check_group_exposure": ReasonCode.MAX_GROUP_EXPOSURE,  # sequence
    }
    assert {check.__name__ for check in LIMITS} - {"check_shorting"} == scenario_for.keys()
    assert set(scenario_for.values()) == ACCOUNT_LIMIT_CODES


async def test_position_and_exposure_limits_refuse_in_turn_as_orders_fill(
    workers: dict[str, WorkerProcess],
) -> None:
    w = workers["sequence"]
    refused: dict[str, dict[str, Any]] = {}

    async def refuse(signal: dict[str, Any], code: ReasonCode) -> dict[str, Any]:
        refused[corr_of(signal)] = await expect_refusal(w, signal, code)
        return refused[corr_of(signal)]

    aapl = await expect_order(w, buy("AAPL", "150.00", "135.00"))  # ~9,900; 1 symbol
    assert aapl["sizing"]["bound_by"] == "risk"

    again = await refuse(buy("AAPL", "150.00", "140.00"), ReasonCode.SAME_SYMBOL_POSITION)
    # The AAPL entry has filled; a snapshot read just before may still show it working.
    det = again["details"]
    assert det["symbol"] == "AAPL"
    assert (det["position_quantity"], det["pending_entries"]) in {
        (aapl["quantity"], "0"), ("0", "1"), (aapl["quantity"], "1")
    }, det

    # ~19,900 of MSFT alone is over 15% of equity (gross 29,800 is still within 35%).
    msft = await refuse(buy("MSFT", "415.50", "410.50"), ReasonCode.MAX_SYMBOL_EXPOSURE)
    assert msft["details"]["symbol"] == "MSFT"
    assert_exposure(msft, "0.15", [])

    jpm = await expect_order(w, buy("JPM", "198.75", "178.75"))  # ~9,750 of banks; 2 symbols

    # BAC is a bank too: ~9,750 + ~9,850 of banks is over 15% (gross ~29,500 is within 35%).
    bac = await refuse(buy("BAC", "39.62", "35.62"), ReasonCode.MAX_GROUP_EXPOSURE)
    assert bac["details"]["group"] == "banks"
    assert_exposure(bac, "0.15", [value_of(jpm)])

    # ~19,850 of CVX on top of ~19,650 held is over 35% gross (CVX alone is within 3 symbols).
    cvx = await refuse(buy("CVX", "156.30", "154.30"), ReasonCode.MAX_GROSS_EXPOSURE)
    assert "group" not in cvx["details"]
    assert "symbol" not in cvx["details"]
    assert_exposure(cvx, "0.35", [value_of(aapl), value_of(jpm)])

    await expect_order(w, buy("XOM", "112.80", "101.80"))  # gross ~29,800; 3 symbols

    ko = await refuse(buy("KO", "62.45", "56.45"), ReasonCode.MAX_OPEN_POSITIONS)
    assert ko["details"] == {"open_positions": "3", "max_open_positions": "3"}

    filled = {f["symbol"] for f in await events(f"{w.prefix}fills") if f["leg"] == "entry"}
    assert filled == {"AAPL", "JPM", "XOM"}
    assert_stored(w, refused)


async def test_the_order_rate_limit_refuses_once_the_minute_is_full(
    workers: dict[str, WorkerProcess],
) -> None:
    w = workers["rate"]
    await expect_order(w, buy("AAPL", "150.00", "135.00"))
    await expect_order(w, buy("MSFT", "415.50", "374.50"))
    rate = await expect_refusal(w, buy("JPM", "198.75", "178.75"), ReasonCode.ORDER_RATE_LIMIT)
    assert rate["details"] == {"recent_order_count": "2", "max_orders_per_minute": "2"}
    assert_stored(w, {rate["correlation_id"]: rate})


async def test_outside_the_trading_window_nothing_is_ordered(
    workers: dict[str, WorkerProcess],
) -> None:
    w = workers["window"]
    refusal = await expect_refusal(
        w, buy("AAPL", "150.00", "135.00"), ReasonCode.OUTSIDE_TRADING_WINDOW
    )
    det = refusal["details"]
    assert det["window"] == w.env["TRADING_WINDOW"]
    assert (det["time_zone"], det["weekdays_only"]) == ("UTC", "False")
    local = datetime.fromisoformat(det["local_time"])
    assert abs(local - datetime.now(UTC)) < timedelta(minutes=2)
    assert "outside the trading window" in refusal["message"]
    assert await events(f"{w.prefix}order-intents") == []
    assert_stored(w, {refusal["correlation_id"]: refusal})


async def test_after_the_daily_loss_no_new_risk_is_taken(workers: dict[str, WorkerProcess]) -> None:
    w = workers["loss"]
    refusal = await expect_refusal(w, buy("MSFT", "415.50", "374.50"), ReasonCode.MAX_DAILY_LOSS)
    det = refusal["details"]
    assert d(det, "realized_pnl_today") == Decimal("-151.50")
    assert d(det, "unrealized_pnl") == -150
    assert d(det, "pnl") == Decimal("-301.50")
    assert d(det, "max_daily_loss") == MAX_DAILY_LOSS
    assert await events(f"{w.prefix}order-intents") == []
    assert_stored(w, {refusal["correlation_id"]: refusal})
