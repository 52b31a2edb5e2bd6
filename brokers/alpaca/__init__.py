"""Alpaca: the OrderService port over alpaca-py (TradingClient + TradingStream)."""
