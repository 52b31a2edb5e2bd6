"""The TWS codec against the real client decoders (no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ib_async.decoder
import ib_insync.decoder
import pytest

from brokers.sim.tws import codec

AAPL = codec.WireContract(265598, "AAPL", "STK", "SMART", "NASDAQ", "USD", "AAPL", "AAPL")
NOW = datetime(2026, 11, 21, 14, 30, tzinfo=UTC)


class Recorder:
    """A wrapper stand-in that records every callback the decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.ib = type("IB", (), {"TimezoneTWS": None})()
        self.defaultTimezone = UTC

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, args))


def decode(module: Any, fields: list[object]) -> tuple[str, tuple[Any, ...]]:
    rec = Recorder()
    wire = codec.frame(fields)
    module.Decoder(rec, codec.SERVER_VERSION).interpret(codec.split_payload(wire[4:]))
    assert len(rec.calls) == 1, rec.calls
    return rec.calls[0]


DECODERS = [ib_async.decoder, ib_insync.decoder]


def view(**changes: Any) -> codec.OrderView:
    base: dict[str, Any] = dict(
        order_id=7, client_id=3, perm_id=1001, contract=AAPL, action="BUY",
        quantity=Decimal(10), order_type="LMT", status="Submitted", account="DU1",
        order_ref="ref-1", lmt_price=Decimal("101.5"), oca_group="oca-1", parent_id=5,
        filled=Decimal(4), avg_fill_price=Decimal(101),
    )  # fmt: skip
    return codec.OrderView(**{**base, **changes})


def test_frame_roundtrip() -> None:
    reader = codec.FrameReader()
    data = codec.frame([1, "a", True, None, Decimal("1.50")]) * 2
    assert reader.feed(data[:5]) == []
    assert reader.feed(data[5:]) == [["1", "a", "1", "", "1.5"]] * 2


def test_handshake_parse_and_version() -> None:
    shake = codec.parse_handshake(b"v157..178 +PACEAPI")
    assert (shake.min_version, shake.max_version, shake.options) == (157, 178, "+PACEAPI")
    assert codec.choose_version(shake) == 176
    with pytest.raises(codec.ProtocolError):
        codec.choose_version(codec.Handshake(100, 150))
    with pytest.raises(codec.ProtocolError):
        codec.parse_handshake(b"hello")


def test_place_order_parse() -> None:
    fields = [
        "3", "12", "0", "AAPL", "STK", "", "0.0", "", "", "SMART", "", "USD", "", "", "", "",
        "SELL", "5.0", "STP", "", "140.0", "GTC", "oca-x", "DU1", "", "0", "r-sl", "1", "11",
    ]  # fmt: skip
    msg = codec.parse_place_order(fields)
    assert (msg.order_id, msg.action, msg.quantity, msg.order_type) == (12, "SELL", 5, "STP")
    assert msg.aux_price == Decimal("140.0")
    assert msg.lmt_price is None
    assert (msg.tif, msg.oca_group, msg.order_ref, msg.transmit, msg.parent_id) == (
        "GTC", "oca-x", "r-sl", True, 11,
    )  # fmt: skip


@pytest.mark.parametrize("module", DECODERS)
def test_open_order_decodes(module: Any) -> None:
    name, (order_id, contract, order, state) = decode(module, codec.open_order(view()))
    assert name == "openOrder"
    assert order_id == 7
    assert contract.conId == 265598
    assert (order.orderRef, order.parentId, order.permId, order.clientId) == ("ref-1", 5, 1001, 3)
    assert (order.lmtPrice, order.ocaGroup, state.status) == (101.5, "oca-1", "Submitted")


@pytest.mark.parametrize("module", DECODERS)
def test_completed_order_decodes(module: Any) -> None:
    done = view(status="Filled", filled=Decimal(10), completed_time="x", completed_status="Filled")
    name, (_, order, state) = decode(module, codec.completed_order(done))
    assert name == "completedOrder"
    assert order.orderRef == "ref-1"
    assert order.permId == 1001
    assert state.status == "Filled"
    assert order.filledQuantity == 10


@pytest.mark.parametrize("module", DECODERS)
def test_order_status_decodes(module: Any) -> None:
    name, args = decode(module, codec.order_status(view()))
    assert name == "orderStatus"
    assert args[:7] == (7, "Submitted", 4.0, 6.0, 101.0, 1001, 5)


@pytest.mark.parametrize("module", DECODERS)
def test_execution_and_commission_decode(module: Any) -> None:
    ev = codec.ExecView(
        "e1", 7, 3, 1001, AAPL, NOW, "DU1", "BOT", Decimal(4), Decimal(101), Decimal(4),
        Decimal(101), "ref-1", Decimal("1.25"),
    )  # fmt: skip
    name, (req_id, _, ex) = decode(module, codec.exec_details(-1, ev))
    assert name == "execDetails"
    assert req_id == -1
    assert (ex.execId, ex.orderRef, ex.shares, ex.side, ex.time) == ("e1", "ref-1", 4, "BOT", NOW)
    name, (report,) = decode(module, codec.commission_report(ev))
    assert name == "commissionReport"
    assert report.commission == 1.25


@pytest.mark.parametrize("module", DECODERS)
def test_contract_details_decode(module: Any) -> None:
    details = codec.DetailsView(AAPL, Decimal("0.01"), "Apple Inc")
    name, (req_id, cd) = decode(module, codec.contract_details(9, details))
    assert name == "contractDetails"
    assert req_id == 9
    assert (cd.contract.conId, cd.contract.primaryExchange, cd.minTick) == (265598, "NASDAQ", 0.01)
    assert cd.longName == "Apple Inc"
    assert cd.minSize == 1


@pytest.mark.parametrize("module", DECODERS)
def test_account_rows_decode(module: Any) -> None:
    assert decode(module, codec.account_value("NetLiquidation", "100", "USD", "DU1")) == (
        "updateAccountValue", ("NetLiquidation", "100", "USD", "DU1"),
    )  # fmt: skip
    row = codec.PortfolioView(AAPL, Decimal(4), Decimal(101), Decimal(404), Decimal(100),
                              Decimal(4), Decimal(0), "DU1")  # fmt: skip
    name, args = decode(module, codec.portfolio_value(row))
    assert name == "updatePortfolio"
    assert args[1:4] == (4.0, 101.0, 404.0)
    name, args = decode(module, codec.position("DU1", AAPL, Decimal(-3), Decimal(99)))
    assert name == "position"
    assert args[2:] == (-3.0, 99.0)


@pytest.mark.parametrize("module", DECODERS)
def test_error_decodes(module: Any) -> None:
    assert decode(module, codec.error(7, 110, "tick")) == ("error", (7, 110, "tick", ""))
