"""The simulator's OANDA v20 REST front door."""

from brokers.sim.oanda.server import DEFAULT_TOKEN, OandaDoor, start_oanda_door

__all__ = ["DEFAULT_TOKEN", "OandaDoor", "start_oanda_door"]
