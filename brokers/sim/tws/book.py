"""Which wire order (clientId, orderId, permId, orderRef) is which core order.

TWS numbers orders per API client while the simulator core keys them by account and client
order id; this book is the pure, socket-free translation between the two, plus the holding
pen for bracket parts sent with transmit=false.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from brokers.exceptions import OrderRejected
from brokers.port import OrderReport, OrderRequest
from schemas.events import OrderLeg, OrderStatus, OrderType, Side, TimeInForce

from .codec import PlaceOrderMsg

MAX_ID_LEN = 64

_ORDER_TYPES = {
    "MKT": OrderType.MKT,
    "LMT": OrderType.LMT,
    "STP": OrderType.STP,
    "STP LMT": OrderType.STP_LMT,
    "STPLMT": OrderType.STP_LMT,
}
_WIRE_TYPES = {OrderType.MKT: "MKT", OrderType.LMT: "LMT", OrderType.STP: "STP"}
_TIFS = {
    "": TimeInForce.DAY,
    "DAY": TimeInForce.DAY,
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
}
_STATUS = {
    OrderStatus.SUBMITTED: "PreSubmitted",
    OrderStatus.ACCEPTED: "Submitted",
    OrderStatus.PARTIALLY_FILLED: "Submitted",
    OrderStatus.FILLED: "Filled",
    OrderStatus.CANCELLED: "Cancelled",
    OrderStatus.REJECTED: "Inactive",
    OrderStatus.EXPIRED: "Cancelled",
}


def wire_status(status: OrderStatus) -> str:
    """The TWS status word for a core order status."""
    return _STATUS[status]


def wire_order_type(order_type: OrderType) -> str:
    """The TWS order type text for a core order type."""
    return _WIRE_TYPES.get(order_type, "STP LMT")


@dataclass
class Binding:
    """One core order as one API client numbers it."""

    account: str
    client_order_id: str
    client_id: int
    order_id: int
    perm_id: int
    order_ref: str
    leg: OrderLeg = OrderLeg.ENTRY
    parent_id: int = 0
    parent_perm_id: int = 0
    oca_group: str = ""
    last_sent: tuple[str, Decimal] | None = None
    seen_fills: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[int, int]:
        """(clientId, orderId): how TWS addresses an API order."""
        return (self.client_id, self.order_id)

    @property
    def venue_order_id(self) -> str:
        """What the core stores as venue id: enough to rebuild this binding after a restart."""
        return f"{self.perm_id}:{self.client_id}:{self.order_id}"


def parse_venue_order_id(text: str) -> tuple[int, int, int] | None:
    """(permId, clientId, orderId) from a venue id this module wrote, else None."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts):
        return None
    perm, client, order = (int(p) for p in parts)
    return perm, client, order


def to_request(msg: PlaceOrderMsg, client_order_id: str) -> OrderRequest:
    """A simple wire order as a core OrderRequest; OrderRejected(201) when unsupported."""
    order_type = _ORDER_TYPES.get(msg.order_type.upper())
    tif = _TIFS.get(msg.tif.upper())
    if order_type is None or tif is None or msg.action not in ("BUY", "SELL"):
        raise OrderRejected(
            f"Order rejected - reason: unsupported {msg.action} {msg.order_type} {msg.tif}",
            code="201",
        )
    stop = msg.aux_price if order_type in (OrderType.STP, OrderType.STP_LMT) else None
    limit = msg.lmt_price if order_type in (OrderType.LMT, OrderType.STP_LMT) else None
    try:
        return OrderRequest(
            client_order_id=client_order_id, symbol=msg.contract.symbol, side=Side(msg.action),
            quantity=msg.quantity, order_type=order_type, limit_price=limit, stop_price=stop,
            time_in_force=tif,
        )  # fmt: skip
    except ValueError as exc:
        raise OrderRejected(f"Order rejected - reason: {exc}", code="201") from exc


def bracket_request(
    parent: PlaceOrderMsg, children: list[PlaceOrderMsg], client_order_id: str
) -> tuple[OrderRequest, dict[OrderLeg, PlaceOrderMsg]]:
    """Parent + LMT take-profit and/or STP stop-loss children as one core bracket."""
    legs: dict[OrderLeg, PlaceOrderMsg] = {OrderLeg.ENTRY: parent}
    base = to_request(parent, client_order_id)
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    for child in children:
        kind = child.order_type.upper()
        if kind == "LMT" and take_profit is None:
            take_profit, legs[OrderLeg.TAKE_PROFIT] = child.lmt_price, child
        elif kind == "STP" and stop_loss is None:
            stop_loss, legs[OrderLeg.STOP_LOSS] = child.aux_price, child
        else:
            raise OrderRejected("Order rejected - reason: unsupported bracket child", code="201")
    request = base.model_copy(update={"take_profit": take_profit, "stop_loss": stop_loss})
    return OrderRequest.model_validate(request.model_dump()), legs


def client_order_id_for(msg: PlaceOrderMsg, client_id: int) -> str:
    """The core id: the orderRef when given (TWS does not enforce it), else a synthetic one."""
    ref = msg.order_ref.strip()
    return ref[:MAX_ID_LEN] if ref else f"ib-{client_id}-{msg.order_id}"


class OrderBook:
    """Bindings in three indexes, order-id bookkeeping per client, and held bracket parts."""

    def __init__(self, first_perm_id: int = 1_000_000) -> None:
        self._by_key: dict[tuple[int, int], Binding] = {}
        self._by_ref: dict[tuple[str, str], Binding] = {}
        self._by_perm: dict[int, Binding] = {}
        self._held: dict[tuple[int, int], PlaceOrderMsg] = {}
        self._used: set[tuple[int, int]] = set()
        self._max_id: dict[int, int] = {}
        self._next_perm = first_perm_id

    def new_perm_id(self) -> int:
        """A fresh permanent id (unique across clients, as TWS's are)."""
        self._next_perm += 1
        return self._next_perm

    def add(self, binding: Binding) -> None:
        """Index a binding and note its order id as used."""
        self._by_key[binding.key] = binding
        self._by_ref[(binding.account, binding.client_order_id)] = binding
        self._by_perm[binding.perm_id] = binding
        self.mark_used(binding.client_id, binding.order_id)
        self._next_perm = max(self._next_perm, binding.perm_id)

    def remove(self, binding: Binding) -> None:
        """Forget a binding whose placement failed (its order id stays used)."""
        self._by_key.pop(binding.key, None)
        self._by_ref.pop((binding.account, binding.client_order_id), None)
        self._by_perm.pop(binding.perm_id, None)

    def mark_used(self, client_id: int, order_id: int) -> None:
        """Remember an order id so that re-sending it is seen as a duplicate."""
        if order_id > 0:
            self._used.add((client_id, order_id))
            self._max_id[client_id] = max(self._max_id.get(client_id, 0), order_id)

    def is_used(self, client_id: int, order_id: int) -> bool:
        """Whether this client already sent this order id."""
        return (client_id, order_id) in self._used

    def next_order_id(self, client_id: int) -> int:
        """nextValidId for a client: above every id it has used."""
        return self._max_id.get(client_id, 0) + 1

    def by_key(self, client_id: int, order_id: int) -> Binding | None:
        """The binding a client addresses by its order id."""
        return self._by_key.get((client_id, order_id))

    def by_ref(self, account: str, client_order_id: str) -> Binding | None:
        """The binding of a core order."""
        return self._by_ref.get((account, client_order_id))

    def by_perm(self, perm_id: int) -> Binding | None:
        """The binding with this permanent id."""
        return self._by_perm.get(perm_id)

    def bindings(self) -> list[Binding]:
        """Every binding, in placement order."""
        return list(self._by_key.values())

    def adopt(self, report: OrderReport) -> Binding:
        """A binding for a core order this server did not place (or placed before a restart)."""
        known = self.by_ref(report.account_id, report.client_order_id)
        if known is not None:
            return known
        ids = parse_venue_order_id(report.venue_order_id)
        perm, client_id, order_id = ids if ids else (self.new_perm_id(), 0, 0)
        parent = None
        if report.parent_client_order_id:
            parent = self.by_ref(report.account_id, report.parent_client_order_id)
        binding = Binding(
            account=report.account_id, client_order_id=report.client_order_id,
            client_id=client_id, order_id=order_id, perm_id=perm,
            order_ref=report.client_order_id, leg=report.leg,
            parent_id=parent.order_id if parent else 0,
            parent_perm_id=parent.perm_id if parent else 0,
        )  # fmt: skip
        self.add(binding)
        return binding

    def hold(self, client_id: int, msg: PlaceOrderMsg) -> None:
        """Keep a transmit=false order until its group's last part arrives."""
        self._held[(client_id, msg.order_id)] = msg
        self.mark_used(client_id, msg.order_id)

    def held(self, client_id: int, order_id: int) -> PlaceOrderMsg | None:
        """A held (untransmitted) order."""
        return self._held.get((client_id, order_id))

    def release(self, client_id: int, parent_id: int) -> tuple[PlaceOrderMsg, list[PlaceOrderMsg]]:
        """Take a held parent and its held children out of the pen."""
        parent = self._held.pop((client_id, parent_id), None)
        if parent is None:
            raise OrderRejected(
                f"Order rejected - reason: parent order {parent_id} not found", code="201"
            )
        children = [
            m for (cid, _), m in self._held.items() if cid == client_id and m.parent_id == parent_id
        ]
        for child in children:
            self._held.pop((client_id, child.order_id), None)
        return parent, children
