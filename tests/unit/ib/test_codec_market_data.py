"""The TWS door's market data messages against the real client libraries (no sockets): a
reqMktData as each client encodes it, and the shortability ticks as each decoder reads them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ib_async
import ib_insync
import pytest

from brokers.sim.tws import codec
from tests.unit.ib.test_codec import DECODERS, decode

CLIENTS = [ib_async, ib_insync]


def request_fields(lib: Any, ticks: str, snapshot: bool) -> list[str]:
    """reqMktData as the library's client writes it, split back into fields."""
    client = lib.client.Client(lib.wrapper.Wrapper(None))
    sent: list[bytes] = []
    client.sendMsg = lambda msg: sent.append(msg.encode() if isinstance(msg, str) else msg)
    client._serverVersion = codec.SERVER_VERSION
    client.connState = client.CONNECTED
    client.reqMktData(7, lib.Stock("AAPL", "SMART", "USD"), ticks, snapshot, False, [])
    (msg,) = sent
    return msg.decode().split("\0")[:-1]


@pytest.mark.parametrize("lib", CLIENTS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(("ticks", "snapshot"), [("236", False), ("", True), ("100,236", False)])
def test_mkt_data_request(lib: Any, ticks: str, snapshot: bool) -> None:
    msg = codec.parse_mkt_data_request(request_fields(lib, ticks, snapshot))
    assert (msg.req_id, msg.contract.symbol, msg.snapshot) == (7, "AAPL", snapshot)
    assert msg.generic_ticks == frozenset(filter(None, ticks.split(",")))


@pytest.mark.parametrize("module", DECODERS, ids=lambda m: m.__name__)
def test_shortability_ticks_decode(module: Any) -> None:
    assert decode(module, codec.tick_generic(7, 46, Decimal("3.0"))) == (
        "tickGeneric", (7, 46, 3.0))
    assert decode(module, codec.tick_size(7, 89, Decimal(1_000_000))) == (
        "tickSize", (7, 89, 1_000_000.0))
