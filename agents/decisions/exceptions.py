"""Errors the decision package raises on purpose (its rules return Refusals instead)."""

from __future__ import annotations

from schemas.errors import JaxError


class LiveTradingRefused(JaxError):
    """A live account was about to be used without being explicitly enabled."""

    code = "live_trading_refused"

    def __init__(self, account_id: str, enabled: str) -> None:
        shown = enabled or "(empty)"
        super().__init__(
            f"account {account_id!r} is a LIVE account and live trading is not enabled for it: "
            f"LIVE_TRADING_ACCOUNT is {shown}; set LIVE_TRADING_ACCOUNT={account_id} to allow it"
        )
        self.account_id = account_id
        self.enabled = enabled
