"""The contract every OrderService must pass, whatever sits behind it.

How to run it against a venue: subclass `OrderServiceContract` in a `test_contract_<x>.py`
and provide two fixtures (pytest resolves them on the subclass or in a conftest):

- `service`: a connected `brokers.port.OrderService` for a fresh account holding 100,000 USD
  and no positions or orders. Tear it down after the test.
- `market`: an object satisfying `Market` below, which drives the simulated exchange behind
  the service. `tests/contract/conftest.py` already provides `exchange` (a fresh
  `brokers.sim.core.Exchange`) and `market` (an `ExchangeMarket` over it); a front door that
  serves that same in-process `exchange` (the TWS socket server, say) only needs to supply
  `service`, connected to that door.

Every outcome is polled with `eventually` (bounded, no fixed sleeps) because a front door may
report state changes asynchronously. Bracket exits are found by `leg` and parent (Alpaca gives
legs ids of its own), never by a client id suffix. A refusal's `code` is checked against the
subclass's `venue_codes` (neutral reason -> the code the adapter reports) where it names one.
Times compare with a two-second allowance because some wires (TWS) carry execution times to
the second only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar

import pytest

from brokers.exceptions import (
    DuplicateClientOrderId,
    NotCancellable,
    OrderRejected,
    TransientBrokerError,
    UnknownOrder,
)
from brokers.port import OrderReport, OrderRequest, OrderService
from brokers.sim.core import Exchange
from brokers.sim.reasons import Reason
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

T = TypeVar("T")

WAIT_SECONDS = 5.0
POLL_SECONDS = 0.01
CLOCK_SLACK = timedelta(seconds=2)


class Market(Protocol):
    """What the contract needs to steer the simulated exchange behind a service."""

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Print `price` now (matching runs) and hold it until changed."""

    def advance(self, steps: int = 1) -> None:
        """Move every unpinned path, matching resting orders after each step."""

    def set_liquidity(self, symbol: str, shares: Decimal | None) -> None:
        """Cap the shares one order may take per step (None: back to the volume rule)."""

    def set_transient_error_rate(self, rate: float) -> None:
        """Make that fraction of requests fail as retryable (1.0: every one, 0.0: none)."""


class ExchangeMarket:
    """`Market` over an Exchange living in the test process; reusable by any front door."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def set_price(self, symbol: str, price: Decimal) -> None:
        self.exchange.set_price(symbol, Decimal(price))

    def advance(self, steps: int = 1) -> None:
        self.exchange.advance(steps)

    def set_liquidity(self, symbol: str, shares: Decimal | None) -> None:
        self.exchange.set_liquidity(symbol, shares)

    def set_transient_error_rate(self, rate: float) -> None:
        self.exchange.faults.set(transient_error_rate=rate)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    within: float = WAIT_SECONDS,
    what: str = "condition",
) -> T:
    """Poll `probe` until `accept` holds or the time is up; return the accepted value."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        last = await probe()
        if accept(last):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")
        await asyncio.sleep(POLL_SECONDS)


def order_request(client_order_id: str, **overrides: Any) -> OrderRequest:
    """A 10-share AAPL market buy unless told otherwise."""
    fields: dict[str, Any] = {
        "client_order_id": client_order_id,
        "symbol": "AAPL",
        "side": Side.BUY,
        "quantity": Decimal(10),
        "order_type": OrderType.MKT,
    }
    fields.update(overrides)
    return OrderRequest(**fields)


def _has_status(*wanted: OrderStatus) -> Callable[[OrderReport], bool]:
    return lambda report: report.status in wanted


class OrderServiceContract:
    """Behaviour every venue shares; subclass it with `service` and `market` fixtures."""

    # the code the adapter reports for each neutral reason (unnamed reasons: not checked)
    venue_codes: ClassVar[dict[Reason, str]] = {}

    def assert_code(self, error: Exception, reason: Reason) -> None:
        expected = self.venue_codes.get(reason)
        if expected is not None:
            assert getattr(error, "code", None) == expected, (reason, error)

    async def leg(self, service: OrderService, parent: str, leg: OrderLeg) -> OrderReport:
        """A bracket exit, found by its leg and parent (never by its id)."""
        every = await service.orders_since(datetime(2000, 1, 1, tzinfo=UTC))
        found = [o for o in every if o.parent_client_order_id == parent and o.leg is leg]
        assert len(found) == 1, f"{parent} {leg.value}: {found!r}"
        return found[0]

    async def wait_leg(
        self, service: OrderService, parent: str, leg: OrderLeg, *wanted: OrderStatus
    ) -> OrderReport:
        async def probe() -> OrderReport | None:
            try:
                return await self.leg(service, parent, leg)
            except AssertionError:
                return None

        found = await eventually(
            probe, lambda r: r is not None and r.status in wanted,
            what=f"{parent} {leg.value} to reach {[w.value for w in wanted]}",
        )
        assert found is not None
        return found

    async def wait_status(
        self, service: OrderService, client_order_id: str, *wanted: OrderStatus
    ) -> OrderReport:
        return await eventually(
            lambda: service.status(client_order_id),
            _has_status(*wanted),
            what=f"{client_order_id} to reach {[w.value for w in wanted]}",
        )

    # --------------------------------------------------------------- placing

    async def test_market_order_fills(self, service: OrderService, market: Market) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        placed = await service.place(order_request("c-mkt"))
        assert placed.client_order_id == "c-mkt"
        assert placed.venue_order_id
        done = await self.wait_status(service, "c-mkt", OrderStatus.FILLED)
        assert done.filled_quantity == Decimal(10)
        assert done.avg_fill_price == Decimal("150.00")

    async def test_limit_below_market_rests(self, service: OrderService, market: Market) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(
            order_request("c-rest", order_type=OrderType.LMT, limit_price=Decimal("140.00"))
        )
        resting = await self.wait_status(
            service, "c-rest", OrderStatus.ACCEPTED, OrderStatus.SUBMITTED
        )
        assert resting.filled_quantity == 0
        open_ids = [o.client_order_id for o in await service.open_orders()]
        assert "c-rest" in open_ids

    async def test_marketable_limit_fills_at_once(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(
            order_request("c-lmt", order_type=OrderType.LMT, limit_price=Decimal("150.00"))
        )
        done = await self.wait_status(service, "c-lmt", OrderStatus.FILLED)
        assert done.avg_fill_price == Decimal("150.00")

    async def test_resting_limit_fills_when_price_comes(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(
            order_request("c-later", order_type=OrderType.LMT, limit_price=Decimal("149.00"))
        )
        await self.wait_status(service, "c-later", OrderStatus.ACCEPTED, OrderStatus.SUBMITTED)
        market.set_price("AAPL", Decimal("148.50"))
        done = await self.wait_status(service, "c-later", OrderStatus.FILLED)
        assert done.avg_fill_price is not None
        assert done.avg_fill_price <= Decimal("149.00")

    async def test_duplicate_client_order_id_is_refused(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        request = order_request("c-dup", order_type=OrderType.LMT, limit_price=Decimal("140.00"))
        await service.place(request)
        with pytest.raises(DuplicateClientOrderId):
            await service.place(request)
        open_ids = [o.client_order_id for o in await service.open_orders()]
        assert open_ids.count("c-dup") == 1

    async def test_duplicate_of_finished_order_is_refused(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(order_request("c-dup2"))
        await self.wait_status(service, "c-dup2", OrderStatus.FILLED)
        with pytest.raises(DuplicateClientOrderId):
            await service.place(order_request("c-dup2"))
        fills = await service.fills_since(datetime.now(UTC) - timedelta(hours=1))
        assert sum(f.quantity for f in fills if f.client_order_id == "c-dup2") == Decimal(10)

    # --------------------------------------------------------------- status and cancel

    async def test_status_of_unknown_order(self, service: OrderService) -> None:
        with pytest.raises(UnknownOrder):
            await service.status("c-never-placed")

    async def test_cancel_resting_order(self, service: OrderService, market: Market) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(
            order_request("c-cxl", order_type=OrderType.LMT, limit_price=Decimal("140.00"))
        )
        await self.wait_status(service, "c-cxl", OrderStatus.ACCEPTED, OrderStatus.SUBMITTED)
        await service.cancel("c-cxl")
        done = await self.wait_status(service, "c-cxl", OrderStatus.CANCELLED)
        assert done.filled_quantity == 0
        open_ids = [o.client_order_id for o in await service.open_orders()]
        assert "c-cxl" not in open_ids

    async def test_cancel_filled_order_is_refused(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(order_request("c-cxf"))
        await self.wait_status(service, "c-cxf", OrderStatus.FILLED)
        with pytest.raises(NotCancellable):
            await service.cancel("c-cxf")
        assert (await service.status("c-cxf")).status is OrderStatus.FILLED

    async def test_cancel_unknown_order(self, service: OrderService) -> None:
        with pytest.raises(UnknownOrder):
            await service.cancel("c-no-such")

    # --------------------------------------------------------------- partial fills

    async def test_partial_fill_under_volume_cap(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("MSFT", Decimal("415.50"))
        market.set_liquidity("MSFT", Decimal(10))
        await service.place(order_request("c-part", symbol="MSFT", quantity=Decimal(25)))
        first = await self.wait_status(service, "c-part", OrderStatus.PARTIALLY_FILLED)
        assert first.filled_quantity == Decimal(10)
        market.advance()
        second = await eventually(
            lambda: service.status("c-part"),
            lambda r: r.filled_quantity == Decimal(20),
            what="second slice",
        )
        assert second.status is OrderStatus.PARTIALLY_FILLED
        market.advance()
        done = await self.wait_status(service, "c-part", OrderStatus.FILLED)
        assert done.filled_quantity == Decimal(25)
        fills = await service.fills_since(datetime.now(UTC) - timedelta(hours=1))
        assert [f.quantity for f in fills if f.client_order_id == "c-part"] == [
            Decimal(10),
            Decimal(10),
            Decimal(5),
        ]

    async def test_ioc_cancels_the_rest(self, service: OrderService, market: Market) -> None:
        market.set_price("MSFT", Decimal("415.50"))
        market.set_liquidity("MSFT", Decimal(10))
        await service.place(
            order_request(
                "c-ioc", symbol="MSFT", quantity=Decimal(25), time_in_force=TimeInForce.IOC
            )
        )
        done = await self.wait_status(service, "c-ioc", OrderStatus.CANCELLED)
        assert done.filled_quantity == Decimal(10)

    # --------------------------------------------------------------- brackets

    async def _enter_bracket(self, service: OrderService, market: Market, cid: str) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(
            order_request(
                cid,
                order_type=OrderType.LMT,
                limit_price=Decimal("150.00"),
                take_profit=Decimal("160.00"),
                stop_loss=Decimal("145.00"),
            )
        )
        await self.wait_status(service, cid, OrderStatus.FILLED)
        for leg in (OrderLeg.TAKE_PROFIT, OrderLeg.STOP_LOSS):
            await self.wait_leg(service, cid, leg, OrderStatus.ACCEPTED)

    async def test_bracket_take_profit_exit(self, service: OrderService, market: Market) -> None:
        await self._enter_bracket(service, market, "c-brk")
        market.set_price("AAPL", Decimal("160.00"))
        tp = await self.wait_leg(service, "c-brk", OrderLeg.TAKE_PROFIT, OrderStatus.FILLED)
        assert tp.parent_client_order_id == "c-brk"
        assert tp.side is Side.SELL
        assert tp.avg_fill_price is not None
        assert tp.avg_fill_price >= Decimal("160.00")
        await self.wait_leg(service, "c-brk", OrderLeg.STOP_LOSS, OrderStatus.CANCELLED)
        positions = await eventually(
            service.positions, lambda ps: all(p.symbol != "AAPL" for p in ps), what="flat AAPL"
        )
        assert all(p.quantity == 0 for p in positions if p.symbol == "AAPL")

    async def test_bracket_stop_loss_exit(self, service: OrderService, market: Market) -> None:
        await self._enter_bracket(service, market, "c-brs")
        market.set_price("AAPL", Decimal("144.00"))
        sl = await self.wait_leg(service, "c-brs", OrderLeg.STOP_LOSS, OrderStatus.FILLED)
        assert sl.filled_quantity == Decimal(10)
        await self.wait_leg(service, "c-brs", OrderLeg.TAKE_PROFIT, OrderStatus.CANCELLED)

    async def test_bracket_children_wait_for_entry(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(
            order_request(
                "c-brw",
                order_type=OrderType.LMT,
                limit_price=Decimal("140.00"),
                take_profit=Decimal("150.00"),
                stop_loss=Decimal("135.00"),
            )
        )
        await self.wait_status(service, "c-brw", OrderStatus.ACCEPTED, OrderStatus.SUBMITTED)
        tp = await self.leg(service, "c-brw", OrderLeg.TAKE_PROFIT)
        assert tp.filled_quantity == 0
        assert tp.status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED)
        await service.cancel("c-brw")
        await self.wait_leg(service, "c-brw", OrderLeg.TAKE_PROFIT, OrderStatus.CANCELLED)
        await self.wait_leg(service, "c-brw", OrderLeg.STOP_LOSS, OrderStatus.CANCELLED)

    # --------------------------------------------------------------- account and positions

    async def test_fresh_account_figures(self, service: OrderService) -> None:
        snap = await service.account()
        assert snap.equity == Decimal(100000)
        assert snap.cash == Decimal(100000)
        assert snap.buying_power >= snap.equity
        assert snap.gross_position_value == 0
        assert snap.as_of.tzinfo is not None

    async def test_account_after_fill(self, service: OrderService, market: Market) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(order_request("c-acct"))
        await self.wait_status(service, "c-acct", OrderStatus.FILLED)
        fills = await eventually(
            lambda: service.fills_since(datetime.now(UTC) - timedelta(hours=1)),
            lambda fs: any(f.client_order_id == "c-acct" for f in fs),
            what="fill of c-acct",
        )
        commission = sum(f.commission for f in fills)
        snap = await eventually(
            service.account, lambda s: s.gross_position_value > 0, what="position in account"
        )
        assert snap.cash == Decimal(100000) - Decimal(1500) - commission
        assert snap.gross_position_value == Decimal(1500)
        assert snap.equity == snap.cash + snap.gross_position_value

    async def test_position_after_fill(self, service: OrderService, market: Market) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(order_request("c-pos"))
        await self.wait_status(service, "c-pos", OrderStatus.FILLED)
        market.set_price("AAPL", Decimal("155.00"))
        positions = await eventually(
            service.positions,
            lambda ps: any(p.symbol == "AAPL" and p.market_price == Decimal(155) for p in ps),
            what="AAPL position at 155",
        )
        (aapl,) = [p for p in positions if p.symbol == "AAPL"]
        assert aapl.quantity == Decimal(10)
        assert aapl.avg_cost == Decimal(150)
        assert aapl.unrealized_pnl == Decimal(50)

    async def test_fills_since(self, service: OrderService, market: Market) -> None:
        start = datetime.now(UTC) - CLOCK_SLACK
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(order_request("c-f1"))
        await service.place(order_request("c-f2", side=Side.SELL, quantity=Decimal(4)))
        fills = await eventually(
            lambda: service.fills_since(start),
            lambda fs: {"c-f1", "c-f2"} <= {f.client_order_id for f in fs},
            what="both fills",
        )
        assert [f.client_order_id for f in fills] == ["c-f1", "c-f2"]
        assert len({f.execution_id for f in fills}) == len(fills)
        assert all(f.commission >= 0 and f.executed_at.tzinfo is not None for f in fills)
        later = await service.fills_since(datetime.now(UTC) + timedelta(hours=1))
        assert later == []

    async def test_orders_since_counts_every_order_sent(
        self, service: OrderService, market: Market
    ) -> None:
        before = datetime.now(UTC) - CLOCK_SLACK
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(
            order_request(
                "c-os-ioc",
                order_type=OrderType.LMT,
                limit_price=Decimal("140.00"),
                time_in_force=TimeInForce.IOC,
            )
        )
        await service.place(order_request("c-os-fill"))
        await self.wait_status(service, "c-os-ioc", OrderStatus.CANCELLED)
        await self.wait_status(service, "c-os-fill", OrderStatus.FILLED)
        after = datetime.now(UTC) + timedelta(milliseconds=1)
        sent = await eventually(
            lambda: service.orders_since(before),
            lambda rs: {"c-os-ioc", "c-os-fill"} <= {r.client_order_id for r in rs},
            what="both orders in orders_since",
        )
        by_id = {r.client_order_id: r for r in sent}
        assert by_id["c-os-ioc"].status is OrderStatus.CANCELLED
        assert by_id["c-os-ioc"].filled_quantity == 0
        assert by_id["c-os-fill"].status is OrderStatus.FILLED
        assert by_id["c-os-fill"].filled_quantity == Decimal(10)
        assert len(by_id) == len(sent)
        mine = [r.client_order_id for r in sent if r.client_order_id.startswith("c-os-")]
        assert mine == ["c-os-ioc", "c-os-fill"]
        created = [r.created_at for r in sent]
        assert created == sorted(created)
        assert all(r.created_at.tzinfo is not None for r in sent)
        assert await service.orders_since(after) == []

    # --------------------------------------------------------------- errors

    async def test_unknown_symbol_is_permanent(self, service: OrderService) -> None:
        with pytest.raises(OrderRejected) as caught:
            await service.place(order_request("c-unk", symbol="NOSUCHSYM"))
        self.assert_code(caught.value, Reason.UNKNOWN_INSTRUMENT)
        assert caught.value.transient is False

    async def test_off_tick_price_is_permanent(self, service: OrderService) -> None:
        with pytest.raises(OrderRejected) as caught:
            await service.place(
                order_request("c-tick", order_type=OrderType.LMT, limit_price=Decimal("150.005"))
            )
        self.assert_code(caught.value, Reason.OFF_TICK)
        assert caught.value.transient is False

    async def test_instrument_rules_where_published(self, service: OrderService) -> None:
        rules = await service.instrument("AAPL")
        if rules is not None:  # None: the venue publishes none (configuration decides)
            assert rules.symbol == "AAPL"
            assert rules.tick_size in (None, Decimal("0.01"))
            assert rules.lot_size in (None, Decimal(1))
            assert rules.fractional in (None, False, True)
        with pytest.raises(OrderRejected):
            await service.instrument("NOSUCHSYM")

    async def test_insufficient_buying_power_is_permanent(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        with pytest.raises(OrderRejected) as caught:
            await service.place(order_request("c-huge", quantity=Decimal(1_000_000)))
        self.assert_code(caught.value, Reason.INSUFFICIENT_BUYING_POWER)
        assert caught.value.transient is False
        with pytest.raises(UnknownOrder):
            await service.status("c-huge")

    async def test_transient_error_then_recovery(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        market.set_transient_error_rate(1.0)
        with pytest.raises(TransientBrokerError) as caught:
            await service.place(order_request("c-tr"))
        assert caught.value.transient is True
        market.set_transient_error_rate(0.0)
        placed = await eventually(
            lambda: _place_retrying(service, order_request("c-tr")),
            lambda r: r is not None,
            what="placement after recovery",
        )
        assert placed is not None
        done = await self.wait_status(service, "c-tr", OrderStatus.FILLED)
        assert done.filled_quantity == Decimal(10)

    # --------------------------------------------------------------- concurrent callers

    async def test_concurrent_placements_all_answered(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        ids = [f"c-burst-{i:02d}" for i in range(CONCURRENT_CALLS)]
        resting = {"order_type": OrderType.LMT, "limit_price": Decimal("140.00")}
        started = time.perf_counter()
        async with asyncio.timeout(BURST_SECONDS):
            placed = await asyncio.gather(
                *(service.place(order_request(cid, **resting)) for cid in ids)
            )
        _print_figure(service, f"{len(ids)} concurrent place()", started)
        assert [r.client_order_id for r in placed] == ids
        assert len({r.venue_order_id for r in placed}) == len(ids)
        open_ids = [o.client_order_id for o in await service.open_orders()]
        assert sorted(i for i in open_ids if i.startswith("c-burst-")) == ids

    async def test_concurrent_mixed_queries_all_answered(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        await service.place(order_request("c-mix-fill"))
        await service.place(
            order_request("c-mix-rest", order_type=OrderType.LMT, limit_price=Decimal("140.00"))
        )
        await self.wait_status(service, "c-mix-fill", OrderStatus.FILLED)
        await eventually(
            service.positions, lambda ps: any(p.symbol == "AAPL" for p in ps), what="AAPL held"
        )
        since = datetime.now(UTC) - timedelta(hours=1)

        def round_of_calls() -> list[Awaitable[Any]]:
            return [
                service.status("c-mix-fill"),
                service.status("c-mix-rest"),
                service.open_orders(),
                service.fills_since(since),
                service.orders_since(since),
                service.account(),
                service.positions(),
            ]

        rounds = 4
        calls = [call for _ in range(rounds) for call in round_of_calls()]
        started = time.perf_counter()
        async with asyncio.timeout(BURST_SECONDS):
            results = await asyncio.gather(*calls)
        _print_figure(service, f"{len(calls)} concurrent mixed queries", started)
        for at in range(0, len(results), len(results) // rounds):
            _check_mixed_round(results[at : at + len(results) // rounds])

    async def test_concurrent_same_client_order_id_places_one(
        self, service: OrderService, market: Market
    ) -> None:
        market.set_price("AAPL", Decimal("150.00"))
        request = order_request("c-same", order_type=OrderType.LMT, limit_price=Decimal("140.00"))
        async with asyncio.timeout(BURST_SECONDS):
            outcomes = await asyncio.gather(
                *(service.place(request) for _ in range(CONCURRENT_CALLS)), return_exceptions=True
            )
        reports = [o for o in outcomes if isinstance(o, OrderReport)]
        refused = [o for o in outcomes if isinstance(o, DuplicateClientOrderId)]
        assert len(reports) + len(refused) == CONCURRENT_CALLS, outcomes
        assert reports
        assert len({r.venue_order_id for r in reports}) == 1
        open_ids = [o.client_order_id for o in await service.open_orders()]
        assert open_ids.count("c-same") == 1
        sent = await service.orders_since(datetime.now(UTC) - timedelta(hours=1))
        assert [r.client_order_id for r in sent].count("c-same") == 1


CONCURRENT_CALLS = 20
BURST_SECONDS = 30.0


def _print_figure(service: OrderService, what: str, started: float) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    lib = getattr(getattr(service, "lib", None), "__name__", "")
    print(f"[{service.venue}{'/' + lib if lib else ''}] {what} answered in {elapsed_ms:.0f} ms")


def _check_mixed_round(results: list[Any]) -> None:
    """One round of the mixed burst: status x2, open_orders, fills, orders, account, positions."""
    filled, resting, open_orders, fills, orders, snap, positions = results
    assert filled.status is OrderStatus.FILLED
    assert resting.status in (OrderStatus.ACCEPTED, OrderStatus.SUBMITTED)
    open_ids = {o.client_order_id for o in open_orders}
    assert "c-mix-rest" in open_ids
    assert "c-mix-fill" not in open_ids
    assert sum(f.quantity for f in fills if f.client_order_id == "c-mix-fill") == Decimal(10)
    assert {"c-mix-fill", "c-mix-rest"} <= {o.client_order_id for o in orders}
    assert snap.gross_position_value == Decimal(1500)
    assert [(p.symbol, p.quantity) for p in positions if p.symbol == "AAPL"] == [
        ("AAPL", Decimal(10))
    ]


async def _place_retrying(service: OrderService, request: OrderRequest) -> OrderReport | None:
    """One attempt: None on a transient failure (the caller polls), the report otherwise."""
    try:
        return await service.place(request)
    except TransientBrokerError:
        return None
