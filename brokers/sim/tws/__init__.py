"""TWS API socket front door of the exchange simulator (what ib_async / ib_insync talk to)."""

from brokers.sim.tws.server import TwsServer, run_tws_server, serve

__all__ = ["TwsServer", "run_tws_server", "serve"]
