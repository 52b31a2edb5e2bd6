"""The seed document's worked example, published exactly as the upstream engine sends it."""

from __future__ import annotations

from typing import Any

# The "Input Signal" JSON of the seed (Phase 4 document): equity 100,000, 1% risk and a 20%
# position cap size it to 133 shares. A test vector, and the CLI's default signal.
SEED_SIGNAL: dict[str, Any] = {
    "id": "123e4567-e89b-12d3-a456-426614174000",
    "symbol": "AAPL",
    "signal_type": "BUY",
    "entry_price": 150.00,
    "stop_loss": 145.00,
    "take_profit": 160.00,
    "confidence": 0.85,
    "strategy_id": "ma_crossover_v1",
}
