"""SimulatorSettings, build_exchange, the Simulator unit and its admin HTTP API (in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from brokers.sim.runner import Simulator, SimulatorSettings, build_exchange, run_simulator
from schemas.events import OrderType
from tests.polling import until
from tests.unit.brokers.conftest import ACCOUNT, req

D = Decimal



# ---------------------------------------------------------------------------- settings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "JAX_HOME": str(tmp_path),
        "SIM_PORT": "4002",
        "SIM_ADMIN_PORT": "0",
        "SIM_SEED": "7",
        "SIM_TICK_SECONDS": "0",
        "SIM_ACCOUNT": "DU7",
        "SIM_STARTING_CASH": "25000.50",
        "SIM_LATENCY_MS": "20",
        "SIM_DROP_PROBABILITY": "0.1",
        "SIM_TRANSIENT_ERROR_RATE": "0.2",
        "SIM_REJECT_SYMBOLS": "tsla, gme",
        "SIM_ENFORCE_TICK": "false",
        "SIM_OUTAGE": "30@60",
        "SIM_EOD_UTC": "20:00",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = SimulatorSettings()
    assert (s.host, s.port, s.admin_port, s.seed, s.tick_seconds) == ("127.0.0.1", 4002, 0, 7, 0)
    assert s.state_path == tmp_path.resolve() / "sim" / "sim.sqlite"
    assert (s.account, s.starting_cash) == ("DU7", D("25000.50"))
    assert s.reject_symbols == frozenset({"TSLA", "GME"})
    assert s.eod_utc == time(20, 0)
    started = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    faults = s.fault_config(started)
    assert (faults.latency_ms, faults.drop_probability, faults.transient_error_rate) == (
        20, 0.1, 0.2,
    )  # fmt: skip
    assert faults.enforce_tick is False
    window = faults.outage_windows[0]
    assert (window.start, window.end) == (
        started + timedelta(seconds=60), started + timedelta(seconds=90),
    )  # fmt: skip


def test_settings_defaults_and_explicit_state(tmp_path: Path) -> None:
    s = SimulatorSettings(state=tmp_path / "x.sqlite")
    assert (s.port, s.admin_port, s.seed, s.tick_seconds) == (7497, 7498, 42, 1.0)
    assert s.state_path == tmp_path / "x.sqlite"
    assert s.outage_window(datetime.now(UTC)) is None
    assert SimulatorSettings(outage="5").outage_window(datetime(2026, 1, 1, tzinfo=UTC)) is not None


@pytest.mark.parametrize("bad", ["x@1", "0@5", "5@-1", "@"])
def test_bad_outage_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        SimulatorSettings(outage=bad)


def test_build_exchange_reopens_state(tmp_path: Path) -> None:
    s = SimulatorSettings(state=tmp_path / "s.sqlite", account="DU42", starting_cash=D(5000))
    first = build_exchange(s)
    assert first.account_snapshot("DU42").cash == D(5000)
    first.set_price("AAPL", D(150))
    first.place("DU42", req("o1", qty=10))
    second = build_exchange(s)  # a restart on the same file must not fail
    assert second.accounts() == ["DU42"]
    assert second.order("DU42", "o1").filled_quantity == D(10)
    assert second.account_snapshot("DU42").cash < D(5000)


# ---------------------------------------------------------------------------- simulator


@pytest.fixture
async def sim(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> AsyncIterator[Simulator]:
    settings = SimulatorSettings(
        state=tmp_path / "s.sqlite", port=0, admin_port=unused_tcp_port_factory(), tick_seconds=0
    )
    async with Simulator(settings) as simulator:
        yield simulator


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[Callable[..., Any]]:
    async with aiohttp.ClientSession(base_url=sim.admin_url or "") as session:

        async def call(method: str, path: str, body: Any = None, **params: str) -> Any:
            async with session.request(method, path, json=body, params=params) as resp:
                return resp.status, await resp.json()

        yield call


async def test_simulator_listens_and_closes(tmp_path: Path) -> None:
    settings = SimulatorSettings(state=tmp_path / "s.sqlite", port=0, admin_port=0, tick_seconds=0)
    sim = Simulator(settings)
    await sim.start()
    port = sim.tws_port
    assert port > 0
    assert sim.admin_port is None
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await sim.close()
    await sim.close()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_clock_advances_prices(tmp_path: Path) -> None:
    settings = SimulatorSettings(
        state=tmp_path / "s.sqlite", port=0, admin_port=0, tick_seconds=0.01
    )
    async with Simulator(settings) as sim:
        await until(lambda: sim.exchange.step >= 3)


async def test_run_simulator_until_cancelled(tmp_path: Path) -> None:
    settings = SimulatorSettings(state=tmp_path / "s.sqlite", port=0, admin_port=0, tick_seconds=0)
    seen: list[Simulator] = []

    async def ready(sim: Simulator) -> None:
        seen.append(sim)

    task = asyncio.ensure_future(run_simulator(settings, ready))
    await until(lambda: seen)
    port = seen[0].tws_port
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_admin_health_and_state(sim: Simulator, http: Callable[..., Any]) -> None:
    status, body = await http("GET", "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["tws_port"] == sim.tws_port
    sim.exchange.set_price("AAPL", D(150))
    sim.exchange.place(ACCOUNT, req("r", order_type=OrderType.LMT, limit_price="140"))
    status, body = await http("GET", "/state")
    assert status == 200
    account = body["accounts"][ACCOUNT]
    assert [o["client_order_id"] for o in account["open_orders"]] == ["r"]
    assert account["account"]["cash"] == "100000"
    assert (body["prices"]["AAPL"]["price"], body["prices"]["AAPL"]["held"]) == ("150", True)
    assert body["faults"]["in_outage"] is False


async def test_admin_price_drives_a_fill(sim: Simulator, http: Callable[..., Any]) -> None:
    await http("POST", "/price", {"symbol": "AAPL", "price": "150"})
    sim.exchange.place(ACCOUNT, req("r", order_type=OrderType.LMT, limit_price="140"))
    status, body = await http("POST", "/price", {"symbol": "aapl", "price": 139.5})
    assert (status, body["symbol"], body["price"], body["held"]) == (200, "AAPL", "139.5", True)
    _, orders = await http("GET", "/orders", account=ACCOUNT)
    assert orders["orders"][0]["status"] == "filled"
    _, fills = await http("GET", "/fills")
    assert [f["price"] for f in fills["fills"]] == ["139.5"]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _, none = await http("GET", "/fills", since=later)
    assert none["fills"] == []
    _, open_only = await http("GET", "/orders", open="1")
    assert open_only["orders"] == []
    status, body = await http("POST", "/release", {"symbol": "AAPL"})
    assert (status, body["held"]) == (200, False)


async def test_admin_advance_and_end_of_day(sim: Simulator, http: Callable[..., Any]) -> None:
    status, body = await http("POST", "/advance", {"steps": 3})
    assert (status, body["step"]) == (200, 3)
    assert (await http("POST", "/advance"))[1]["step"] == 4
    await http("POST", "/price", {"symbol": "AAPL", "price": "150"})
    sim.exchange.place(ACCOUNT, req("day", order_type=OrderType.LMT, limit_price="140"))
    status, body = await http("POST", "/end-of-day")
    assert (status, body["expired"]) == (200, ["day"])
    assert sim.exchange.order(ACCOUNT, "day").status.value == "expired"


async def test_admin_faults_and_outage(sim: Simulator, http: Callable[..., Any]) -> None:
    status, body = await http(
        "POST", "/faults", {"latency_ms": 5, "rejected_symbols": "tsla,gme", "enforce_tick": False}
    )
    assert status == 200
    assert (body["latency_ms"], body["rejected_symbols"], body["enforce_tick"]) == (
        5, ["GME", "TSLA"], False,
    )  # fmt: skip
    assert sim.exchange.faults.config.latency_ms == 5
    status, body = await http("POST", "/outage", {"seconds": 30})
    assert (status, body["in_outage"]) == (200, True)
    assert (await http("GET", "/health"))[1]["in_outage"] is True
    status, body = await http("POST", "/outage", {"seconds": 0})
    assert (status, body["in_outage"], body["until"]) == (200, False, None)


async def test_admin_accounts_prices_liquidity(sim: Simulator, http: Callable[..., Any]) -> None:
    status, body = await http("POST", "/accounts", {"account_id": "DU2", "cash": "5000"})
    assert (status, body["cash"]) == (200, "5000")
    status, body = await http("GET", "/prices", symbols="AAPL,msft")
    assert sorted(body["prices"]) == ["AAPL", "MSFT"]
    status, body = await http("POST", "/liquidity", {"symbol": "AAPL", "shares": 3})
    assert (status, body["shares"]) == (200, "3")


@pytest.mark.parametrize(
    ("method", "path", "body", "fragment"),
    [
        ("POST", "/price", {"symbol": "NOPE", "price": "1"}, "unknown instrument NOPE"),
        ("POST", "/price", {"symbol": "AAPL", "price": "abc"}, "not a number"),
        ("POST", "/price", {"symbol": "AAPL", "price": "-1"}, "positive"),
        ("POST", "/price", {"price": "1"}, "missing field: symbol"),
        ("POST", "/advance", {"steps": 0}, "steps"),
        ("POST", "/faults", {"latency_ms": -1}, "latency_ms"),
        ("POST", "/faults", {"nonsense": 1}, "unknown field"),
        ("POST", "/outage", {"seconds": -1}, "negative"),
        ("POST", "/accounts", {"account_id": ACCOUNT}, "open already"),
        ("POST", "/end-of-day", [1], "JSON object"),
    ],
)
async def test_admin_bad_input_is_400(
    http: Callable[..., Any], method: str, path: str, body: Any, fragment: str
) -> None:
    status, answer = await http(method, path, body)
    assert status == 400
    assert fragment in answer["error"]


async def test_admin_bad_query_is_400(http: Callable[..., Any]) -> None:
    assert (await http("GET", "/orders", account="NOPE"))[0] == 400
    assert (await http("GET", "/fills", since="yesterday"))[0] == 400
    assert (await http("GET", "/prices", symbols="NOPE"))[0] == 400


def test_next_end_of_day() -> None:
    from brokers.sim.runner import _next_eod

    before = datetime(2026, 3, 2, 19, 59, tzinfo=UTC)
    assert _next_eod(before, time(20, 0)) == datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    at = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    assert _next_eod(at, time(20, 0)) == datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
