"""The simulator's Alpaca Trading API v2 front door (HTTP + trade_updates websocket)."""

from .server import DEFAULT_KEY_ID, DEFAULT_SECRET, AlpacaDoor, start_alpaca_door

__all__ = ["DEFAULT_KEY_ID", "DEFAULT_SECRET", "AlpacaDoor", "start_alpaca_door"]
