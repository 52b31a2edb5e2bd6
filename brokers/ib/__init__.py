"""Interactive Brokers adapter: the OrderService port over ib_async (or ib_insync)."""

from brokers.ib.service import IbOrderService

__all__ = ["IbOrderService"]
