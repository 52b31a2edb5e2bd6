"""The simulated venue core: accounts, orders, matching, positions. Synchronous and deterministic.

Front doors (in-process service, TWS socket server) wrap one `Exchange`; it has no asyncio and
no sockets. Every public operation runs under one lock, saves its changes to the store (when
there is one) before returning, then tells subscribers.

Rules a reader needs:
- Fills happen at the symbol's last print (a marketable BUY LMT 150.00 at 150.00 fills at
  150.00; a gap through a stop fills at the gapped price, as a market order would).
- One order takes at most `max_volume_fraction` of a step's volume per step (or the cap set by
  `set_liquidity`); the rest waits for later steps, which is how partial fills arise.
- Brackets: the entry plus a take-profit LMT and a stop-loss STP, both GTC so protection does
  not lapse at the close, inactive until the entry fills, in one OCA group: a fill on one
  reduces the other by the same quantity, so a full fill cancels it. An entry that ends
  part-filled (cancel, IOC, expiry) leaves its exits resized to the filled quantity.
  A client's cancel of one exit cancels its OCA sibling too (IB: "if an order is canceled by
  the client before execution, all remaining orders in the OCA group will automatically be
  canceled"; a cancel by the system does not); the entry is not in the group and keeps working.
- `modify` changes a resting order's quantity/prices under the same checks as `place`.
- Buying power (Reg-T-like): margin_multiplier x equity - gross position value, floored at 0;
  with the default multiplier 2 a fresh 100,000 account has 200,000. An order's opening part
  (the quantity that grows the position) times its price, plus what other open entry orders
  would open, must fit, else INSUFFICIENT_BUYING_POWER.
- Refusals carry a neutral `Reason` (brokers/sim/reasons.py), never a venue's code: each front
  door maps reasons to its own wire codes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from pydantic import TypeAdapter

from brokers.exceptions import BrokerError
from brokers.port import (
    AccountKind,
    AccountSnapshot,
    FillReport,
    OrderReport,
    OrderRequest,
    Position,
    child_client_order_id,
)
from brokers.sim import fx
from brokers.sim.faults import FaultInjector
from brokers.sim.models import (
    DEFAULT_ACCOUNT_ID,
    ZERO,
    Lot,
    SimAccount,
    SimConfig,
    SimOrder,
    SimUpdate,
    apply_to_lot,
    commission_for,
)
from brokers.sim.prices import (
    OrnsteinUhlenbeckSource,
    PriceBook,
    PriceSource,
    Quote,
    ReplaySource,
)
from brokers.sim.reasons import Reason, refusal
from brokers.sim.store import QuoteRow, SimStore, StoreBatch, StoredState
from brokers.sim.timeline import Timeline
from brokers.sim.universe import Instrument, Universe, make_instrument
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "AccountExists",
    "Exchange",
    "SimConfig",
    "SimUpdate",
    "UnknownAccount",
]

log = logging.getLogger(__name__)

_ORDER = TypeAdapter(SimOrder)
_ACCOUNT = TypeAdapter(SimAccount)
_MATCH_PASSES = 8  # a fill can activate bracket children that are marketable at once
_FIRST_VENUE_ID = 1_000_000  # above the small ids IB clients allocate, so generated ids never clash

Key = tuple[str, str]


class UnknownAccount(BrokerError):
    """The simulator holds no account with this id."""

    code = "unknown_account"
    transient = False


class AccountExists(BrokerError):
    """An account with this id is open already."""

    code = "account_exists"
    transient = False


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _check_lot(quantity: Decimal, lot: Decimal) -> None:
    if quantity % lot != 0:
        raise refusal(
            Reason.INVALID_QUANTITY,
            f"quantity {quantity} is not a multiple of the lot size {lot} "
            "(fractional quantities are not supported for this instrument)",
        )


class PlacementLog:
    """Every placement a front door received, per orderRef, with its outcome: the venue's own
    count, so a test can tell how often a client really tried (in memory, not restored).
    attempts = accepted + refused + unanswered (held bracket parts, stalled, cut)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ref: dict[str, dict[str, Any]] = {}

    def _entry(self, ref: str) -> dict[str, Any]:
        return self._by_ref.setdefault(ref, {"attempts": 0, "accepted": 0, "refused": 0,
                                             "codes": []})

    def attempted(self, ref: str) -> None:
        with self._lock:
            self._entry(ref)["attempts"] += 1

    def accepted(self, ref: str) -> None:
        with self._lock:
            self._entry(ref)["accepted"] += 1

    def refused(self, ref: str, code: str) -> None:
        with self._lock:
            entry = self._entry(ref)
            entry["refused"] += 1
            entry["codes"].append(code)

    def view(self) -> dict[str, dict[str, Any]]:
        """{orderRef: {"attempts", "accepted", "refused", "codes"}} (a copy)."""
        with self._lock:
            return {ref: {**e, "codes": list(e["codes"])} for ref, e in self._by_ref.items()}


class Exchange:
    """One simulated venue holding many accounts; see the module docstring for its rules."""

    def __init__(
        self,
        config: SimConfig | None = None,
        store: SimStore | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self._clock = clock or _utcnow
        self.faults = faults or FaultInjector(self.config.faults, self._clock)
        self.placements = PlacementLog()
        self.universe = Universe.load(self.config.universe_csv, self.config.not_shortable)
        for pair in fx.load_fx():  # currency pairs beside the stocks (brokers/sim/fx.py)
            self.universe.add(pair)
        source = fx.FxAwareSource(self._price_source(), self.config.seed, self.universe.get)
        self.prices = PriceBook(self.universe, source)
        self._store = store
        self._lock = threading.RLock()
        self._accounts: dict[str, SimAccount] = {}
        self._orders: dict[Key, SimOrder] = {}
        self._by_venue_id: dict[Key, SimOrder] = {}
        self._open: dict[Key, SimOrder] = {}
        # Each account's open orders' reports, in the order they opened, kept by _changed (which
        # makes an order's report after every change): listing them costs no report per order.
        self._open_reports: dict[str, dict[Key, OrderReport]] = {}
        # Matching (see _match): per symbol, the state of its last pass, and the open orders
        # changed since. quick_match False: every pass looks at every resting order.
        self._settled: dict[str, tuple[object, ...]] = {}
        self._touched: dict[str, dict[Key, SimOrder]] = {}
        self.quick_match = True
        # The open orders again, by what the matching looks them up by (a symbol's orders,
        # an account's entries, a parent's children, an OCA group), kept by _index: a day's
        # resting exits are thousands, and every placement and print asks.
        self._open_by: dict[tuple[str, ...], dict[Key, SimOrder]] = {}
        self._fills: dict[str, Timeline[FillReport]] = {}
        self._placed: dict[str, Timeline[SimOrder]] = {}  # each account's orders, by creation
        self._liquidity: dict[str, Decimal] = {}
        self._subscribers: list[Callable[[SimUpdate], None]] = []
        self._counters = {"order_seq": 0, "exec_seq": 0, "venue_id": _FIRST_VENUE_ID}
        self._epoch = 0
        self._dirty_orders: dict[Key, SimOrder] = {}
        self._dirty_accounts: set[str] = set()
        self._new_fills: list[FillReport] = []
        self._quotes_dirty = False
        self._updates: list[SimUpdate] = []
        with self._op():
            state = store.load() if store else None
            if state is not None and not state.empty:
                self._restore(state)
            else:
                self._quotes_dirty = True
            if self.config.default_account_id not in self._accounts:
                self._new_account(
                    self.config.default_account_id, self.config.starting_cash, AccountKind.PAPER
                )

    # ----------------------------------------------------------------- plumbing

    def _price_source(self) -> PriceSource:
        if self.config.replay_csv is None:
            return OrnsteinUhlenbeckSource(
                self.config.seed, self.universe, self.config.theta, self.config.sigma
            )
        replay = ReplaySource.from_csv(self.config.replay_csv)
        for symbol in replay.symbols():
            first = replay.initial(symbol)
            if symbol not in self.universe and first is not None:
                self.universe.add(make_instrument(symbol, first.price))
        return replay

    @contextmanager
    def _op(self) -> Iterator[None]:
        """Serialise an operation, then persist and publish what it changed, even on error."""
        with self._lock:
            try:
                yield
            finally:
                self._flush()

    def _flush(self) -> None:
        updates, self._updates = self._updates, []
        if self._store is not None:
            self._store.save(self._batch())
        self._dirty_orders.clear()
        self._dirty_accounts.clear()
        self._new_fills.clear()
        self._quotes_dirty = False
        for update in updates:
            self._publish(update)

    def _batch(self) -> StoreBatch:
        batch = StoreBatch(
            accounts={
                a: _ACCOUNT.dump_json(self._accounts[a]).decode() for a in self._dirty_accounts
            },
            orders=[
                (o.account_id, o.client_order_id, o.seq, _ORDER.dump_json(o).decode())
                for o in self._dirty_orders.values()
            ],
            fills=[
                (
                    f.execution_id,
                    f.account_id,
                    int(f.execution_id.split(".")[1], 16),
                    f.model_dump_json(),
                )
                for f in self._new_fills
            ],
        )
        if self._quotes_dirty:
            batch.quotes = [
                QuoteRow(s, str(q.price), str(q.volume), q.held) for s, q in self.prices.items()
            ]
        if batch:
            batch.meta = {k: str(v) for k, v in self._counters.items()}
            batch.meta["step"] = str(self.prices.step)
            batch.meta["seed"] = str(self.config.seed)
        return batch

    def _restore(self, state: StoredState) -> None:
        for text in state.accounts:
            account = _ACCOUNT.validate_json(text)
            self._accounts[account.account_id] = account
            self._fills.setdefault(account.account_id, Timeline())
        for text in state.orders:
            self._index(_ORDER.validate_json(text))
        for key, order in sorted(self._open.items(), key=lambda item: item[1].seq):
            self._book_open(key, order, order.report())
        for text in state.fills:
            fill = FillReport.model_validate_json(text)
            self._fills.setdefault(fill.account_id, Timeline()).add(fill, fill.executed_at)
        for name in self._counters:
            self._counters[name] = int(state.meta.get(name, self._counters[name]))
        quotes = {
            q.symbol: Quote(Decimal(q.price), Decimal(q.volume), q.held) for q in state.quotes
        }
        self.prices.restore(int(state.meta.get("step", "0")), quotes)

    def _index(self, order: SimOrder) -> None:
        key = (order.account_id, order.client_order_id)
        if key not in self._orders:
            self._placed.setdefault(order.account_id, Timeline()).add(order, order.created_at)
        self._orders[key] = order
        self._by_venue_id[(order.account_id, order.venue_order_id)] = order
        if order.is_open:
            self._open[key] = order
            for index in _open_indexes(order):
                self._open_by.setdefault(index, {})[key] = order
        else:
            self._open.pop(key, None)
            for index in _open_indexes(order):
                held = self._open_by.get(index)
                if held is not None:
                    held.pop(key, None)
                    if not held:
                        del self._open_by[index]

    def _open_in(self, *index: str) -> list[SimOrder]:
        """The open orders under one index of _open_by, in the order they opened."""
        return list(self._open_by.get(index, {}).values())

    def _publish(self, update: SimUpdate) -> None:
        for callback in list(self._subscribers):
            try:
                callback(update)
            except Exception:  # a broken listener must not break the venue
                log.exception("sim subscriber failed")

    def _changed(self, order: SimOrder) -> None:
        """Record an order state change: persist it and tell subscribers."""
        order.updated_at = self._clock()
        self._index(order)
        key = (order.account_id, order.client_order_id)
        self._dirty_orders[key] = order
        if order.is_open:
            self._touched.setdefault(order.symbol, {})[key] = order
        report = order.report()
        self._book_open(key, order, report)
        self._updates.append(SimUpdate(order.account_id, order=report))

    def _book_open(self, key: Key, order: SimOrder, report: OrderReport) -> None:
        book = self._open_reports.setdefault(order.account_id, {})
        if order.is_open:
            book[key] = report
        else:
            book.pop(key, None)

    def _next(self, counter: str) -> int:
        self._counters[counter] += 1
        return self._counters[counter]

    # ----------------------------------------------------------------- accounts

    def now(self) -> datetime:
        """The simulator's clock (UTC); tests inject a fixed one for determinism."""
        return self._clock()

    def _new_account(self, account_id: str, cash: Decimal, kind: AccountKind) -> None:
        self._accounts[account_id] = SimAccount(account_id, kind, cash)
        self._fills.setdefault(account_id, Timeline())
        self._dirty_accounts.add(account_id)

    def open_account(
        self, account_id: str, cash: Decimal | None = None, kind: AccountKind = AccountKind.PAPER
    ) -> AccountSnapshot:
        """Open another account (fresh money for each contract test, say)."""
        with self._op():
            if account_id in self._accounts:
                raise AccountExists(f"account {account_id} is open already")
            start = self.config.starting_cash if cash is None else cash
            self._new_account(account_id, start, kind)
            return self._snapshot(self._accounts[account_id])

    def accounts(self) -> list[str]:
        with self._lock:
            return sorted(self._accounts)

    def _account(self, account_id: str) -> SimAccount:
        try:
            return self._accounts[account_id]
        except KeyError:
            raise refusal(
                Reason.UNKNOWN_ACCOUNT, f"account {account_id} is not known", UnknownAccount
            ) from None

    def _market_values(self, account: SimAccount) -> list[tuple[str, Lot, Decimal]]:
        return [(s, lot, self.prices.price(s)) for s, lot in sorted(account.positions.items())]

    def _figures(self, account: SimAccount) -> tuple[Decimal, Decimal, Decimal]:
        """Equity, gross position value and unrealized P&L at the last prints."""
        rows = [self._valued(s, lot, px) for s, lot, px in self._market_values(account)]
        net = sum((r[0] for r in rows), ZERO)
        gross = sum((r[1] for r in rows), ZERO)
        unrealized = sum((r[2] for r in rows), ZERO)
        return account.cash + net, gross, unrealized

    def _home(self, currency: str) -> Decimal:
        """One unit of `currency` in the account's home currency (USD), at the last prints."""
        return fx.home_factor(currency, self.prices.price, self.universe)

    def _valued(self, symbol: str, lot: Lot, px: Decimal) -> tuple[Decimal, Decimal, Decimal]:
        """A position's part of equity, its gross value and its unrealized P&L, in USD. A pair
        adds only its unrealized P&L to equity (opening it moved no cash: see fx.py)."""
        pair = self.universe.get(symbol).fx
        if pair is None:
            return lot.quantity * px, abs(lot.quantity * px), (px - lot.avg_cost) * lot.quantity
        factor = self._home(pair.quote)
        unrealized = fx.money((px - lot.avg_cost) * lot.quantity * factor)
        return unrealized, fx.money(abs(lot.quantity) * px * factor), unrealized

    def _exposure(self, symbol: str, quantity: Decimal, price: Decimal) -> Decimal:
        """Buying power a position of `quantity` at `price` uses: its value for a stock, its
        margin (value x marginRate, in margin_multiplier units) for a pair."""
        pair = self.universe.get(symbol).fx
        if pair is None:
            return quantity * price
        value = quantity * price * self._home(pair.quote)
        return fx.money(value * pair.margin_rate * self.config.margin_multiplier)

    def _used(self, account: SimAccount) -> Decimal:
        """Buying power the account's positions use now."""
        rows = self._market_values(account)
        return sum((abs(self._exposure(s, lot.quantity, px)) for s, lot, px in rows), ZERO)

    def _buying_power(self, account: SimAccount) -> Decimal:
        equity, _, _ = self._figures(account)
        return max(ZERO, self.config.margin_multiplier * equity - self._used(account))

    def _snapshot(self, account: SimAccount) -> AccountSnapshot:
        equity, gross, unrealized = self._figures(account)
        return AccountSnapshot(
            account_id=account.account_id,
            kind=account.kind,
            equity=equity,
            cash=account.cash,
            buying_power=self._buying_power(account),
            realized_pnl_today=account.realized_pnl_today,
            unrealized_pnl=unrealized,
            gross_position_value=gross,
            shorting_enabled=self.config.shorting_enabled,
            as_of=self._clock(),
        )

    def account_snapshot(self, account_id: str) -> AccountSnapshot:
        """Figures computed at the moment of asking from the last prints."""
        with self._lock:
            return self._snapshot(self._account(account_id))

    def positions(self, account_id: str) -> list[Position]:
        with self._lock:
            account = self._account(account_id)
            out = []
            for symbol, lot, px in self._market_values(account):
                _, gross, unrealized = self._valued(symbol, lot, px)
                pair = self.universe.get(symbol).fx is not None
                out.append(
                    Position(
                        account_id=account_id,
                        symbol=symbol,
                        quantity=lot.quantity,
                        avg_cost=lot.avg_cost,
                        market_price=px,
                        market_value=gross.copy_sign(lot.quantity) if pair else lot.quantity * px,
                        unrealized_pnl=unrealized,
                    )
                )
            return out

    # ----------------------------------------------------------------- market data

    def instrument(self, symbol: str) -> Instrument:
        """The instrument, or an UNKNOWN_INSTRUMENT refusal."""
        return self.universe.get(symbol)

    def instruments(self) -> list[Instrument]:
        return self.universe.all()

    def last_price(self, symbol: str) -> Decimal:
        with self._lock:
            return self.prices.price(symbol)

    @property
    def step(self) -> int:
        return self.prices.step

    def set_price(self, symbol: str, price: Decimal, hold: bool = True) -> None:
        """Script a print (held through later steps unless hold=False) and match against it."""
        if price <= 0:
            raise ValueError("price must be positive")
        with self._op():
            name = self.prices.set_price(symbol, Decimal(price), hold)
            self._quotes_dirty = True
            self._epoch += 1
            self._match(name)

    def release_price(self, symbol: str) -> None:
        """Let a scripted symbol follow its path again from where it was pinned."""
        with self._op():
            self.prices.release(symbol)
            self._quotes_dirty = True

    def set_liquidity(self, symbol: str, shares: Decimal | None) -> None:
        """Cap what one order may take per step (None restores the volume rule); not persisted."""
        with self._lock:
            name = self.instrument(symbol).symbol
            if shares is None:
                self._liquidity.pop(name, None)
            else:
                self._liquidity[name] = Decimal(shares)

    def advance(self, steps: int = 1) -> None:
        """Move every path `steps` steps, matching resting orders after each one."""
        with self._op():
            for _ in range(steps):
                self.prices.advance()
                self._epoch += 1
                self._quotes_dirty = True
                # Pinned symbols match too: a new step brings new volume for waiting orders.
                for symbol in sorted({o.symbol for o in self._open.values()}):
                    self._match(symbol)

    def end_of_day(self) -> None:
        """The close: DAY orders expire, today's realized P&L starts again from zero."""
        with self._op():
            for order in [o for o in self._open.values() if o.time_in_force is TimeInForce.DAY]:
                self._finish(order, OrderStatus.EXPIRED, "DAY order expired at the close")
            for account in self._accounts.values():
                account.realized_pnl_today = ZERO
                self._dirty_accounts.add(account.account_id)

    # ----------------------------------------------------------------- subscriptions

    def subscribe(self, callback: Callable[[SimUpdate], None]) -> Callable[[], None]:
        """Push every order change and fill to `callback`; call the result to stop."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # ----------------------------------------------------------------- orders: queries

    def _get(self, account_id: str, client_order_id: str) -> SimOrder:
        self._account(account_id)
        try:
            return self._orders[(account_id, client_order_id)]
        except KeyError:
            raise refusal(
                Reason.UNKNOWN_ORDER, f"no order with client order id {client_order_id}"
            ) from None

    def order(self, account_id: str, client_order_id: str) -> OrderReport:
        with self._lock:
            return self._get(account_id, client_order_id).report()

    def order_by_venue_id(self, account_id: str, venue_order_id: str) -> OrderReport:
        with self._lock:
            self._account(account_id)
            found = self._by_venue_id.get((account_id, str(venue_order_id)))
            if found is None:
                raise refusal(
                    Reason.UNKNOWN_ORDER, f"no order with venue order id {venue_order_id}"
                )
            return found.report()

    def orders(self, account_id: str, open_only: bool = False,
               since: datetime | None = None) -> list[OrderReport]:
        """The account's orders in placement order (created at or after `since`, if given)."""
        with self._lock:
            self._account(account_id)
            if open_only:
                book = self._open_reports.get(account_id, {})
                return [r for r in book.values() if since is None or r.created_at >= since]
            chosen = self._placed.get(account_id, Timeline()).since(since)
            chosen.sort(key=lambda o: o.seq)
            return [o.report() for o in chosen]

    def fills(self, account_id: str, since: datetime | None = None) -> list[FillReport]:
        """Executions at or after `since`, in the order they happened."""
        with self._lock:
            self._account(account_id)
            return self._fills.get(account_id, Timeline()).since(since)

    # ----------------------------------------------------------------- orders: placing

    def place(
        self,
        account_id: str,
        order: OrderRequest,
        venue_order_ids: dict[OrderLeg, str] | None = None,
    ) -> list[OrderReport]:
        """Accept (or refuse) an order; entry first, then bracket children. May fill at once."""
        with self._op():
            account = self._account(account_id)
            ids = self._venue_ids(account_id, order, venue_order_ids or {})
            instrument = self._validate(account, order)
            created = self._create(account_id, order, instrument, ids)
            entry = created[0]
            self._match(entry.symbol)
            if entry.is_open and entry.time_in_force is TimeInForce.IOC:
                self._finish(entry, OrderStatus.CANCELLED, "IOC remainder cancelled")
            return [o.report() for o in created]

    def _legs(self, order: OrderRequest) -> list[tuple[OrderLeg, str]]:
        legs = [(OrderLeg.ENTRY, order.client_order_id)]
        if order.take_profit is not None:
            tp = child_client_order_id(order.client_order_id, OrderLeg.TAKE_PROFIT)
            legs.append((OrderLeg.TAKE_PROFIT, tp))
        if order.stop_loss is not None:
            sl = child_client_order_id(order.client_order_id, OrderLeg.STOP_LOSS)
            legs.append((OrderLeg.STOP_LOSS, sl))
        return legs

    def _venue_ids(
        self, account_id: str, order: OrderRequest, given: dict[OrderLeg, str]
    ) -> dict[OrderLeg, str]:
        """Refuse duplicates (client ids, forever; venue ids too) before anything."""
        ids: dict[OrderLeg, str] = {}
        for leg, client_id in self._legs(order):
            if (account_id, client_id) in self._orders:
                raise refusal(
                    Reason.DUPLICATE_CLIENT_ID,
                    f"an order with client order id {client_id} exists already",
                )
            venue_id = str(given[leg]) if leg in given else ""
            if venue_id and (account_id, venue_id) in self._by_venue_id:
                raise refusal(Reason.DUPLICATE_ORDER_ID, f"duplicate order id {venue_id}")
            ids[leg] = venue_id
        return ids

    def _validate(self, account: SimAccount, order: OrderRequest) -> Instrument:
        instrument = self.instrument(order.symbol)
        if instrument.fx is None:
            self.faults.check_order(order)
        else:  # a pair has its own price grid and units rules
            self.faults.check_order(fx.without_prices(order))
            fx.check_order(instrument.fx, order, self.faults.config.enforce_tick)
        _check_lot(order.quantity, instrument.lot_size)
        prices = (order.limit_price, order.stop_price, order.take_profit, order.stop_loss)
        if any(p is not None and p <= 0 for p in prices):
            raise refusal(Reason.INVALID_PRICE, "prices must be positive")
        self._check_bracket(order)
        self._check_margin(account, order, instrument.symbol)
        return instrument

    @staticmethod
    def _check_bracket(order: OrderRequest) -> None:
        if order.take_profit is None or order.stop_loss is None:
            return
        up = order.take_profit > order.stop_loss
        if up != (order.side is Side.BUY):
            raise refusal(
                Reason.INVALID_PRICE,
                "take-profit and stop-loss are on the wrong sides for this order",
            )

    def _estimate_price(
        self, symbol: str, order_type: OrderType, limit: Decimal | None, stop: Decimal | None
    ) -> Decimal:
        if order_type in (OrderType.LMT, OrderType.STP_LMT) and limit is not None:
            return limit
        if order_type is OrderType.STP and stop is not None:
            return stop
        return self.prices.price(symbol)

    @staticmethod
    def _opening_quantity(account: SimAccount, symbol: str, side: Side, qty: Decimal) -> Decimal:
        """The part of an order that grows the position rather than closing it."""
        lot = account.positions.get(symbol)
        held = lot.quantity if lot else ZERO
        closes = held != 0 and (held > 0) == (side is Side.SELL)
        return qty - min(qty, abs(held)) if closes else qty

    def _reserved(self, account: SimAccount, exclude: SimOrder | None = None) -> Decimal:
        """Buying power already promised to the account's other open entry orders."""
        total = ZERO
        for o in self._open_in("entry", account.account_id):
            if o is exclude:
                continue
            opening = self._opening_quantity(account, o.symbol, o.side, o.remaining)
            price = self._estimate_price(o.symbol, o.order_type, o.limit_price, o.stop_price)
            total += self._exposure(o.symbol, opening, price)
        return total

    def _check_shortable(self, symbol: str) -> None:
        """A sale that opens or adds to a short needs the account's permission and shares to
        borrow (SIM_SHORTING_ENABLED, SIM_NOT_SHORTABLE)."""
        if not self.config.shorting_enabled:
            raise refusal(
                Reason.NOT_SHORTABLE,
                "short sale not permitted: shorting is disabled for this account",
            )
        if not self.universe.get(symbol).shortable:
            raise refusal(
                Reason.NOT_SHORTABLE,
                f"short sale not permitted: no shares of {symbol} available to borrow",
            )

    def _check_margin(
        self,
        account: SimAccount,
        order: OrderRequest,
        symbol: str,
        exclude: SimOrder | None = None,
    ) -> None:
        opening = self._opening_quantity(account, symbol, order.side, order.quantity)
        if opening == 0:
            return
        if order.side is Side.SELL:
            self._check_shortable(symbol)
        price = self._estimate_price(symbol, order.order_type, order.limit_price, order.stop_price)
        needed = self._exposure(symbol, opening, price)
        available = self._buying_power(account) - self._reserved(account, exclude)
        if needed > available:
            raise refusal(
                Reason.INSUFFICIENT_BUYING_POWER,
                f"insufficient buying power: order needs {needed:.2f}, "
                f"available {max(available, ZERO):.2f}",
            )

    def _create(
        self,
        account_id: str,
        order: OrderRequest,
        instrument: Instrument,
        ids: dict[OrderLeg, str],
    ) -> list[SimOrder]:
        now = self._clock()
        entry = self._new_order(
            account_id,
            order.client_order_id,
            ids[OrderLeg.ENTRY],
            now,
            symbol=instrument.symbol,
            side=order.side,
            order_type=order.order_type,
            quantity=order.quantity,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            time_in_force=order.time_in_force,
        )
        created = [entry]
        exit_side = Side.SELL if order.side is Side.BUY else Side.BUY
        oca = f"oca-{order.client_order_id}"
        for leg, client_id in self._legs(order)[1:]:
            is_tp = leg is OrderLeg.TAKE_PROFIT
            created.append(
                self._new_order(
                    account_id,
                    client_id,
                    ids[leg],
                    now,
                    symbol=instrument.symbol,
                    side=exit_side,
                    order_type=OrderType.LMT if is_tp else OrderType.STP,
                    quantity=order.quantity,
                    limit_price=order.take_profit if is_tp else None,
                    stop_price=None if is_tp else order.stop_loss,
                    time_in_force=TimeInForce.GTC,
                    leg=leg,
                    parent_client_order_id=order.client_order_id,
                    oca_group=oca,
                    status=OrderStatus.SUBMITTED,
                    active=False,
                )
            )
        for o in created:
            self._changed(o)
        return created

    def _new_order(
        self, account_id: str, client_id: str, venue_id: str, now: datetime, **fields: object
    ) -> SimOrder:
        venue_order_id = venue_id or str(self._next("venue_id"))
        return SimOrder(
            seq=self._next("order_seq"),
            account_id=account_id,
            client_order_id=client_id,
            venue_order_id=venue_order_id,
            created_at=now,
            updated_at=now,
            **fields,  # type: ignore[arg-type]
        )

    # ----------------------------------------------------------------- orders: changing

    def modify(
        self,
        account_id: str,
        client_order_id: str,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderReport:
        """Change a resting order's quantity and/or prices, as re-sending a live IB order id does.

        None keeps a value; a price the order type does not use (a stop price on a LMT order,
        any price on a MKT order) is ignored, as TWS ignores it. The new order is checked as a
        new one would be: positive prices, lot size, refused symbol, tick, and for entries
        buying power for the new remaining quantity. The quantity must
        stay above what has filled. Changing an entry that has not filled resizes its inactive
        bracket exits to match. The changed order is matched against the last print at once.
        A finished order cannot be modified (NOT_MODIFIABLE).
        """
        with self._op():
            order = self._get(account_id, client_order_id)
            if not order.is_open:
                raise refusal(
                    Reason.NOT_MODIFIABLE,
                    f"order {order.venue_order_id} is {order.status.value} "
                    "and can no longer be modified",
                )
            new = self._modified(order, quantity, limit_price, stop_price)
            self._check_modification(self._accounts[account_id], order, new)
            self._apply_modification(order, new)
            self._match(order.symbol)
            return order.report()

    @staticmethod
    def _modified(
        order: SimOrder,
        quantity: Decimal | None,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
    ) -> OrderRequest:
        """The order as it would be after the change (unvalidated: checks follow)."""
        uses_limit = order.order_type in (OrderType.LMT, OrderType.STP_LMT)
        uses_stop = order.order_type in (OrderType.STP, OrderType.STP_LMT)
        return OrderRequest.model_construct(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity if quantity is None else Decimal(quantity),
            order_type=order.order_type,
            limit_price=Decimal(limit_price)
            if uses_limit and limit_price is not None
            else order.limit_price,
            stop_price=Decimal(stop_price)
            if uses_stop and stop_price is not None
            else order.stop_price,
            time_in_force=order.time_in_force,
            take_profit=None,
            stop_loss=None,
        )

    def _check_modification(self, account: SimAccount, order: SimOrder, new: OrderRequest) -> None:
        if new.quantity <= order.filled_quantity:
            raise refusal(
                Reason.NOT_MODIFIABLE,
                f"the quantity cannot be reduced to {new.quantity}: {order.filled_quantity} "
                "filled already (cancel the order instead)",
            )
        _check_lot(new.quantity, self.instrument(order.symbol).lot_size)
        if any(p is not None and p <= 0 for p in (new.limit_price, new.stop_price)):
            raise refusal(Reason.INVALID_PRICE, "prices must be positive")
        self.faults.check_order(new)
        if order.leg is OrderLeg.ENTRY:
            remaining = new.model_copy(update={"quantity": new.quantity - order.filled_quantity})
            self._check_margin(account, remaining, order.symbol, exclude=order)

    def _apply_modification(self, order: SimOrder, new: OrderRequest) -> None:
        resized = new.quantity != order.quantity
        order.quantity = new.quantity
        order.limit_price = new.limit_price
        order.stop_price = new.stop_price
        self._changed(order)
        if resized and order.leg is OrderLeg.ENTRY:
            for child in self._children(order):
                if not child.active:
                    child.quantity = new.quantity
                    self._changed(child)

    # ----------------------------------------------------------------- orders: ending

    def cancel(self, account_id: str, client_order_id: str) -> OrderReport:
        """Cancel an open order (an entry takes its unfilled bracket exits with it; an exit
        takes its OCA siblings with it, as IB cancels the group on a client's cancel)."""
        with self._op():
            order = self._get(account_id, client_order_id)
            if not order.is_open:
                raise refusal(
                    Reason.NOT_CANCELLABLE,
                    f"order {order.venue_order_id} is {order.status.value} "
                    "and cannot be cancelled",
                )
            self._finish(order, OrderStatus.CANCELLED, "cancelled on request")
            for sibling in self._oca_siblings(order):
                self._finish(sibling, OrderStatus.CANCELLED, "OCA group member cancelled")
            return order.report()

    def _oca_siblings(self, order: SimOrder) -> list[SimOrder]:
        """The other open orders of this order's OCA group (none when it has no group)."""
        if order.oca_group is None:
            return []
        return [o for o in self._open_in("oca", order.account_id, order.oca_group)
                if o is not order]

    def _finish(self, order: SimOrder, status: OrderStatus, reason: str) -> None:
        order.status = status
        order.reason = reason
        self._changed(order)
        if order.leg is OrderLeg.ENTRY:
            self._settle_children(order)

    def _children(self, parent: SimOrder) -> list[SimOrder]:
        return self._open_in("children", parent.account_id, parent.client_order_id)

    def _settle_children(self, entry: SimOrder) -> None:
        """An entry that stopped early: exits cover what it filled, or go when it filled none."""
        children = self._children(entry)
        for child in children:
            if entry.filled_quantity == 0:
                self._finish(child, OrderStatus.CANCELLED, "parent order did not fill")
                continue
            child.quantity = entry.filled_quantity
            self._activate(child)
        if children and entry.filled_quantity > 0:
            self._match(entry.symbol)  # a freshly active exit may be marketable already

    def _activate(self, child: SimOrder) -> None:
        child.active = True
        child.status = OrderStatus.ACCEPTED
        self._changed(child)

    # ----------------------------------------------------------------- matching

    def _match(self, symbol: str) -> None:
        """Fill what the last print allows, again while fills keep unlocking bracket exits.

        Whether a resting order can fill depends on the order itself and on the print, the
        step (liquidity per step) and the liquidity rule: `_settled` remembers, per symbol,
        the state at the last pass, after which every open order it did not fill could not
        fill in that state. While the state is the same, a pass looks only at the orders
        that changed since (`_touched`: placed, changed, activated, partly filled), in the
        same order as a pass over all of them, which would find nothing in the others: a
        placement costs what changed, not every resting order of its symbol."""
        price = self.prices.price(symbol)
        for _ in range(_MATCH_PASSES):
            state = self._match_state(symbol, price)
            touched = self._touched.pop(symbol, {})
            pool = (touched.values() if self.quick_match and self._settled.get(symbol) == state
                    else self._open_in("symbol", symbol))
            working = sorted((o for o in pool if o.active and o.is_open), key=lambda o: o.seq)
            self._settled[symbol] = state
            progressed = False
            for order in working:
                if order.is_open and order.active:
                    progressed = self._try_fill(order, price) or progressed
            if not progressed:
                return

    def _match_state(self, symbol: str, price: Decimal) -> tuple[object, ...]:
        volume = self.prices.quote(symbol).volume
        return price, self._epoch, self._liquidity.get(symbol), volume

    def _try_fill(self, order: SimOrder, price: Decimal) -> bool:
        if not self._triggered(order, price) or not self._marketable(order, price):
            return False
        quantity = min(order.remaining, self._available(order))
        if quantity <= 0:
            return False
        self._execute(order, quantity, price)
        return True

    def _triggered(self, order: SimOrder, price: Decimal) -> bool:
        if order.order_type not in (OrderType.STP, OrderType.STP_LMT) or order.triggered:
            return True
        assert order.stop_price is not None
        hit = price >= order.stop_price if order.side is Side.BUY else price <= order.stop_price
        if hit:
            order.triggered = True
            self._dirty_orders[(order.account_id, order.client_order_id)] = order
        return hit

    @staticmethod
    def _marketable(order: SimOrder, price: Decimal) -> bool:
        if order.order_type not in (OrderType.LMT, OrderType.STP_LMT):
            return True
        assert order.limit_price is not None
        return price <= order.limit_price if order.side is Side.BUY else price >= order.limit_price

    def _available(self, order: SimOrder) -> Decimal:
        """Shares this order may still take in the current step."""
        if order.liquidity_epoch != self._epoch:
            order.liquidity_epoch = self._epoch
            order.liquidity_used = ZERO
        cap = self._liquidity.get(order.symbol)
        if cap is None:
            volume = self.prices.quote(order.symbol).volume
            cap = volume * self.config.max_volume_fraction
        return (cap - order.liquidity_used).to_integral_value(rounding=ROUND_FLOOR)

    def _execute(self, order: SimOrder, quantity: Decimal, price: Decimal) -> None:
        account = self._accounts[order.account_id]
        total = commission_for(
            self.config, order.filled_quantity + quantity, order.filled_notional + quantity * price
        )
        if self.universe.get(order.symbol).fx is not None:
            total = ZERO  # pairs are priced by the spread, no commission
        commission = total - order.commission
        order.filled_quantity += quantity
        order.filled_notional += quantity * price
        order.commission = total
        order.liquidity_used += quantity
        order.status = OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        self._book(account, order, quantity, price, commission)
        self._changed(order)
        self._after_fill(order, quantity)

    def _book(
        self,
        account: SimAccount,
        order: SimOrder,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
    ) -> None:
        """Move cash and the position, and record the execution. Realized P&L today is net
        of commissions, as IB reports RealizedPnL (see models.apply_to_lot)."""
        signed = quantity * order.signed_side
        held = account.positions.get(order.symbol)
        lot, realized = apply_to_lot(held, signed, price, commission)
        if lot is None:
            account.positions.pop(order.symbol, None)
        else:
            account.positions[order.symbol] = lot
        pair = self.universe.get(order.symbol).fx
        if pair is None:
            account.cash -= signed * price + commission
        else:  # only realized P&L, converted home, moves a pair's balance (fx.py)
            realized = fx.money(realized * self._home(pair.quote))
            account.cash += realized
        account.realized_pnl_today += realized
        self._dirty_accounts.add(account.account_id)
        fill = FillReport(
            execution_id=f"0000e0d5.{self._next('exec_seq'):08x}.01.01",
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            parent_client_order_id=order.parent_client_order_id,
            leg=order.leg,
            account_id=account.account_id,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            commission=commission,
            executed_at=self._clock(),
        )
        self._fills.setdefault(account.account_id, Timeline()).add(fill, fill.executed_at)
        self._new_fills.append(fill)
        self._updates.append(SimUpdate(account.account_id, fill=fill))

    def _after_fill(self, order: SimOrder, quantity: Decimal) -> None:
        if order.leg is OrderLeg.ENTRY and order.status is OrderStatus.FILLED:
            for child in self._children(order):
                self._activate(child)
        if order.oca_group is not None:
            self._reduce_oca(order, quantity)

    def _reduce_oca(self, order: SimOrder, quantity: Decimal) -> None:
        """OCA with reduce: siblings shrink by what filled; one that reaches zero is cancelled."""
        for sibling in self._oca_siblings(order):
            if sibling.remaining <= quantity:
                self._finish(sibling, OrderStatus.CANCELLED, "OCA group member filled")
            else:
                sibling.quantity -= quantity
                self._changed(sibling)


def _open_indexes(order: SimOrder) -> list[tuple[str, ...]]:
    """The keys of Exchange._open_by an open order is found under (fixed for its life)."""
    found: list[tuple[str, ...]] = [("symbol", order.symbol)]
    if order.leg is OrderLeg.ENTRY:
        found.append(("entry", order.account_id))
    if order.parent_client_order_id is not None:
        found.append(("children", order.account_id, order.parent_client_order_id))
    if order.oca_group is not None:
        found.append(("oca", order.account_id, order.oca_group))
    return found
