"""TWS API socket encoding: framing, the handshake and one field list per message.

Pure functions only, so every message can be unit-tested without a socket. The field lists
follow what ib_async 2.1 / ib_insync 0.9.86 read and write at SERVER_VERSION.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

SERVER_VERSION = 176
MIN_CLIENT_VERSION = 157
API_PREFIX = b"API\0"
_LEN = struct.Struct(">I")


class ProtocolError(ValueError):
    """The peer sent bytes that are not the TWS API protocol."""


class OutMsg:
    """Message ids the server sends."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    TICK_GENERIC = 45
    CURRENT_TIME = 49
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


class InMsg:
    """Message ids the client sends."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_CURRENT_TIME = 49
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_COMPLETED_ORDERS = 99


# ---------------------------------------------------------------- framing


def fmt(value: object) -> str:
    """One field as text: the client's own conventions (bools 1/0, None empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    return str(value)


def frame(fields: Iterable[object]) -> bytes:
    """A message as bytes: 4-byte big-endian length, then NUL-terminated fields."""
    payload = "".join(fmt(f) + "\0" for f in fields).encode()
    return _LEN.pack(len(payload)) + payload


def split_payload(payload: bytes) -> list[str]:
    """The fields of one message payload."""
    fields = payload.decode(errors="backslashreplace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


class FrameReader:
    """Accumulates socket bytes and yields whole messages, as field lists."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[list[str]]:
        """Add bytes; return every message now complete."""
        self._buf += data
        out: list[list[str]] = []
        while len(self._buf) >= _LEN.size:
            (size,) = _LEN.unpack_from(self._buf)
            end = _LEN.size + size
            if len(self._buf) < end:
                break
            out.append(split_payload(self._buf[_LEN.size : end]))
            self._buf = self._buf[end:]
        return out


@dataclass(frozen=True)
class Handshake:
    """The client's version range and connect options."""

    min_version: int
    max_version: int
    options: str = ""


def parse_handshake(payload: bytes) -> Handshake:
    """Read `v157..178[ options]` (the payload after API\\0 and the length)."""
    text = payload.decode(errors="replace").rstrip("\0")
    head, _, options = text.partition(" ")
    if not head.startswith("v") or ".." not in head:
        raise ProtocolError(f"bad version range {text!r}")
    low, _, high = head[1:].partition("..")
    try:
        return Handshake(int(low), int(high), options)
    except ValueError as exc:
        raise ProtocolError(f"bad version range {text!r}") from exc


def choose_version(shake: Handshake) -> int:
    """The one server version this simulator speaks, if the client accepts it."""
    if not shake.min_version <= SERVER_VERSION <= shake.max_version:
        raise ProtocolError(
            f"client range v{shake.min_version}..{shake.max_version} excludes {SERVER_VERSION}"
        )
    return SERVER_VERSION


def ib_time(when: datetime) -> str:
    """TWS text time with an explicit zone, as both clients parse it."""
    return when.astimezone(UTC).strftime("%Y%m%d %H:%M:%S") + " UTC"


def handshake_reply(when: datetime) -> bytes:
    """Server version and connection time, the two-field reply that ends the handshake."""
    return frame([SERVER_VERSION, ib_time(when)])


# ---------------------------------------------------------------- field readers


class FieldReader:
    """Sequential reader over a message's fields, tolerant of missing trailing fields."""

    def __init__(self, fields: Sequence[str], start: int = 0) -> None:
        self._fields = fields
        self._pos = start

    def text(self) -> str:
        """Next field as text ('' past the end)."""
        value = self._fields[self._pos] if self._pos < len(self._fields) else ""
        self._pos += 1
        return value

    def integer(self, default: int = 0) -> int:
        """Next field as int (default when empty)."""
        text = self.text()
        return int(text) if text else default

    def flag(self) -> bool:
        """Next field as 0/1 bool."""
        return self.text() not in ("", "0", "false", "False")

    def decimal(self) -> Decimal | None:
        """Next field as Decimal; None when unset (empty or the max-double sentinel)."""
        text = self.text()
        if not text:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation as exc:
            raise ProtocolError(f"not a number: {text!r}") from exc
        return None if value.is_infinite() or abs(value) >= Decimal("1e300") else value

    def skip(self, count: int) -> None:
        """Ignore the next `count` fields."""
        self._pos += count


@dataclass(frozen=True)
class WireContract:
    """The twelve contract fields every request carries."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = "STK"
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""


def read_contract(r: FieldReader) -> WireContract:
    """conId, symbol, secType, expiry, strike, right, multiplier, exchange, primary, ..."""
    con_id = r.integer()
    symbol = r.text()
    sec_type = r.text()
    r.skip(4)  # lastTradeDateOrContractMonth, strike, right, multiplier
    exchange = r.text()
    primary = r.text()
    currency = r.text()
    return WireContract(con_id, symbol, sec_type, exchange, primary, currency, r.text(), r.text())


@dataclass(frozen=True)
class PlaceOrderMsg:
    """The prefix of placeOrder that the simulator acts on; the rest is ignored."""

    order_id: int
    contract: WireContract
    action: str
    quantity: Decimal
    order_type: str
    lmt_price: Decimal | None
    aux_price: Decimal | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int


def parse_place_order(fields: Sequence[str]) -> PlaceOrderMsg:
    """placeOrder as ib_async's client.py writes it (no version field after the id)."""
    r = FieldReader(fields, 1)
    order_id = r.integer()
    contract = read_contract(r)
    r.skip(2)  # secIdType, secId
    action = r.text()
    quantity = r.decimal() or Decimal(0)
    order_type = r.text()
    lmt, aux, tif, oca, account = r.decimal(), r.decimal(), r.text(), r.text(), r.text()
    r.skip(2)  # openClose, origin
    order_ref = r.text()
    transmit = r.flag()
    parent_id = r.integer()
    return PlaceOrderMsg(
        order_id, contract, action, quantity, order_type, lmt, aux, tif, oca, account,
        order_ref, transmit, parent_id,
    )  # fmt: skip


@dataclass(frozen=True)
class ExecFilter:
    """reqExecutions filter; empty fields match everything."""

    req_id: int
    client_id: int = 0
    account: str = ""
    time: str = ""
    symbol: str = ""
    sec_type: str = ""
    exchange: str = ""
    side: str = ""


def parse_exec_filter(fields: Sequence[str]) -> ExecFilter:
    """[7, 3, reqId, clientId, acctCode, time, symbol, secType, exchange, side]."""
    r = FieldReader(fields, 2)
    req_id, client_id = r.integer(), r.integer()
    texts = [r.text() for _ in range(6)]
    return ExecFilter(req_id, client_id, *texts)


def parse_contract_request(fields: Sequence[str]) -> tuple[int, WireContract]:
    """[9, 8, reqId, contract...] -> (reqId, contract)."""
    r = FieldReader(fields, 2)
    req_id = r.integer()
    return req_id, read_contract(r)


@dataclass(frozen=True)
class MktDataMsg:
    """A reqMktData request: which contract, which generic ticks, snapshot or stream."""

    req_id: int
    contract: WireContract
    generic_ticks: frozenset[str]
    snapshot: bool


def parse_mkt_data_request(fields: Sequence[str]) -> MktDataMsg:
    """[1, 11, reqId, contract, dncFlag, (dnc 3), genericTickList, snapshot, ...]."""
    r = FieldReader(fields, 2)
    req_id = r.integer()
    contract = read_contract(r)
    if r.flag():
        r.skip(3)
    ticks = frozenset(t.strip() for t in r.text().split(",") if t.strip())
    return MktDataMsg(req_id, contract, ticks, r.flag())


# ---------------------------------------------------------------- message builders


def contract_fields(c: WireContract, *, with_exchange: bool = True) -> list[object]:
    """The contract block of position/execDetails/openOrder (no primary exchange)."""
    head: list[object] = [c.con_id, c.symbol, c.sec_type, "", 0, "", ""]
    tail: list[object] = [c.currency, c.local_symbol, c.trading_class]
    return head + ([c.exchange] if with_exchange else [c.primary_exchange]) + tail


def managed_accounts(accounts: Sequence[str]) -> list[object]:
    """managedAccounts: the comma list of accounts this login may trade."""
    return [OutMsg.MANAGED_ACCTS, 1, ",".join(accounts)]


def next_valid_id(order_id: int) -> list[object]:
    """nextValidId: the lowest order id this client may use."""
    return [OutMsg.NEXT_VALID_ID, 1, order_id]


def error(req_id: int, code: int, message: str, advanced: str = "") -> list[object]:
    """error [4, 2, reqId, code, msg, advancedOrderRejectJson]."""
    return [OutMsg.ERR_MSG, 2, req_id, code, message, advanced]


def current_time(when: datetime) -> list[object]:
    """currentTime in epoch seconds."""
    return [OutMsg.CURRENT_TIME, 1, int(when.timestamp())]


def end_marker(msg_id: int, *args: object) -> list[object]:
    """The one-line '...End' messages: [id, 1, args...] (completedOrdersEnd has no version)."""
    if msg_id == OutMsg.COMPLETED_ORDERS_END:
        return [msg_id]
    return [msg_id, 1, *args]


@dataclass(frozen=True)
class OrderView:
    """Everything the order messages carry about one order."""

    order_id: int
    client_id: int
    perm_id: int
    contract: WireContract
    action: str
    quantity: Decimal
    order_type: str
    status: str
    account: str
    order_ref: str = ""
    lmt_price: Decimal | None = None
    aux_price: Decimal | None = None
    tif: str = "DAY"
    oca_group: str = ""
    parent_id: int = 0
    parent_perm_id: int = 0
    filled: Decimal = Decimal(0)
    avg_fill_price: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    completed_time: str = ""
    completed_status: str = ""
    why_held: str = ""

    @property
    def remaining(self) -> Decimal:
        """Quantity still working (zero once the order is done)."""
        if self.status in ("Filled", "Cancelled", "ApiCancelled", "Inactive"):
            return Decimal(0)
        return max(self.quantity - self.filled, Decimal(0))


def order_status(v: OrderView) -> list[object]:
    """orderStatus [3, id, status, filled, remaining, avgPx, permId, parentId, lastPx, ...]."""
    return [
        OutMsg.ORDER_STATUS, v.order_id, v.status, v.filled, v.remaining, v.avg_fill_price,
        v.perm_id, v.parent_id, v.last_fill_price, v.client_id, v.why_held, 0,
    ]  # fmt: skip


def _order_head(v: OrderView) -> list[object]:
    """action .. orderRef, shared by openOrder and completedOrder."""
    return [
        v.action, v.quantity, v.order_type, v.lmt_price, v.aux_price, v.tif, v.oca_group,
        v.account, "O", 0, v.order_ref,
    ]  # fmt: skip


def _oca_type(v: OrderView) -> int:
    """OCA type 1 (cancel others with block) for exit legs in a group, else 0."""
    return 1 if v.oca_group else 0


def open_order(v: OrderView) -> list[object]:
    """openOrder at server version 176 (faProfile present, 170+ peg fields at the end)."""
    return [
        OutMsg.OPEN_ORDER, v.order_id, *contract_fields(v.contract), *_order_head(v),
        v.client_id, v.perm_id, 0, 0, 0, "", "", "", "", "", "",  # ..faProfile
        "", "", "", "", "", 0, "", -1, "", "", "", "", "", "",  # modelCode..stockRangeUpper
        "", 0, 0, 0, "", _oca_type(v), 0, 0, "", v.parent_id, 0, "", "", "", "",
        0, "", "", "", "", "", "",  # continuousUpdate..comboLegsDescrip
        0, 0, 0,  # combo legs, order combo legs, smart combo params
        "", "", "",  # scale sizes, increment
        "",  # hedgeType
        0, "", "", 0, 0,  # optOutSmartRouting, clearing x2, notHeld, no delta-neutral
        "",  # algoStrategy
        0, 0, v.status, "", "", "", "", "", "", "", "", "", "", "", "", "", "", 0, 0,
        0,  # conditions
        "", "", "", "", "", "", "", 0, "", "", "", "", 0, 0, "", 0,
        "", 0, 0,  # duration, postToAts, autoCancelParent
        "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf
    ]  # fmt: skip


def completed_order(v: OrderView) -> list[object]:
    """completedOrder at server version 176."""
    return [
        OutMsg.COMPLETED_ORDER, *contract_fields(v.contract), *_order_head(v),
        v.perm_id, 0, 0, "", "", "", "", "", "",  # permId..faProfile
        "", "", "", "", "", 0, "", -1, "", "", "", "", "", "", 0, 0, "", _oca_type(v), 0,
        "", "", "", "",  # volatility, volatilityType, dn order type, dn aux price
        0, "", "", "", "",  # continuousUpdate..comboLegsDescrip
        0, 0, 0,
        "", "", "",
        "",
        "", "", 0, 0,  # clearing x2, notHeld, no delta-neutral
        "",
        0, v.status, 0, 0,
        0,
        "", "", "", 0, 0, "", v.filled, 0, 0, "", 0, 0, v.parent_perm_id,
        v.completed_time, v.completed_status,
        "", "", "", "", "",
    ]  # fmt: skip


@dataclass(frozen=True)
class ExecView:
    """One execution as execDetails and commissionReport carry it."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    contract: WireContract
    time: datetime
    account: str
    side: str  # BOT / SLD
    shares: Decimal
    price: Decimal
    cum_qty: Decimal
    avg_price: Decimal
    order_ref: str
    commission: Decimal = Decimal(0)
    currency: str = "USD"
    realized_pnl: Decimal | None = None


def exec_details(req_id: int, e: ExecView) -> list[object]:
    """execDetails: exactly the 31 fields ib_insync unpacks at version < 178."""
    return [
        OutMsg.EXECUTION_DATA, req_id, e.order_id, *contract_fields(e.contract), e.exec_id,
        ib_time(e.time), e.account, e.contract.exchange or "SMART", e.side, e.shares, e.price,
        e.perm_id, e.client_id, 0, e.cum_qty, e.avg_price, e.order_ref, "", "", "", 0,
    ]  # fmt: skip


def commission_report(e: ExecView) -> list[object]:
    """commissionReport keyed by execId."""
    pnl: object = e.realized_pnl if e.realized_pnl is not None else ""
    return [OutMsg.COMMISSION_REPORT, 1, e.exec_id, e.commission, e.currency, pnl, "", ""]


def position(account: str, c: WireContract, qty: Decimal, avg_cost: Decimal) -> list[object]:
    """position [61, 3, account, contract..., pos, avgCost]."""
    return [OutMsg.POSITION_DATA, 3, account, *contract_fields(c), qty, avg_cost]


@dataclass(frozen=True)
class PortfolioView:
    """One portfolio row of reqAccountUpdates."""

    contract: WireContract
    position: Decimal
    market_price: Decimal
    market_value: Decimal
    avg_cost: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    account: str


def portfolio_value(p: PortfolioView) -> list[object]:
    """updatePortfolio [7, 8, contract (primary exchange), pos, price, value, ...]."""
    return [
        OutMsg.PORTFOLIO_VALUE, 8, *contract_fields(p.contract, with_exchange=False),
        p.position, p.market_price, p.market_value, p.avg_cost, p.unrealized_pnl,
        p.realized_pnl, p.account,
    ]  # fmt: skip


def account_value(key: str, value: object, currency: str, account: str) -> list[object]:
    """updateAccountValue [6, 2, key, value, currency, account]."""
    return [OutMsg.ACCT_VALUE, 2, key, value, currency, account]


def account_time(when: datetime) -> list[object]:
    """updateAccountTime HH:MM."""
    return [OutMsg.ACCT_UPDATE_TIME, 1, when.astimezone(UTC).strftime("%H:%M")]


def account_update_multi(
    req_id: int, account: str, key: str, value: object, currency: str
) -> list[object]:
    """accountUpdateMulti [73, 1, reqId, account, modelCode, key, value, currency]."""
    return [OutMsg.ACCOUNT_UPDATE_MULTI, 1, req_id, account, "", key, value, currency]


def account_summary(
    req_id: int, account: str, tag: str, value: object, currency: str
) -> list[object]:
    """accountSummary [63, 1, reqId, account, tag, value, currency]."""
    return [OutMsg.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency]


@dataclass(frozen=True)
class DetailsView:
    """What qualifyContracts needs back: ids, exchanges, tick and size rules."""

    contract: WireContract
    min_tick: Decimal
    long_name: str = ""
    min_size: Decimal = Decimal(1)
    size_increment: Decimal = Decimal(1)
    order_types: str = "LMT,MKT,STP,STPLMT"
    valid_exchanges: str = field(default="SMART")


def contract_details(req_id: int, d: DetailsView) -> list[object]:
    """contractDetails at server version >= 164 (no version field, no mdSizeMultiplier)."""
    c = d.contract
    return [
        OutMsg.CONTRACT_DATA, req_id, c.symbol, c.sec_type, "", 0, "", c.exchange, c.currency,
        c.local_symbol, c.trading_class, c.trading_class, c.con_id, d.min_tick, "",
        d.order_types, d.valid_exchanges, 1, 0, d.long_name, c.primary_exchange, "", "", "",
        "", "UTC", "", "", "", "", 0, 1, "", "", "", "", "COMMON", d.min_size,
        d.size_increment, d.size_increment,
    ]  # fmt: skip


def tick_price(req_id: int, tick_type: int, price: Decimal) -> list[object]:
    """tickPrice [1, 6, reqId, tickType, price, size, attrMask]."""
    return [OutMsg.TICK_PRICE, 6, req_id, tick_type, price, 0, 0]


def tick_size(req_id: int, tick_type: int, size: Decimal) -> list[object]:
    """tickSize [2, 1, reqId, tickType, size] (tick 89: shortable shares)."""
    return [OutMsg.TICK_SIZE, 1, req_id, tick_type, size]


def tick_generic(req_id: int, tick_type: int, value: Decimal) -> list[object]:
    """tickGeneric [45, 1, reqId, tickType, value] (tick 46: the shortability indicator)."""
    return [OutMsg.TICK_GENERIC, 1, req_id, tick_type, value]
