"""Where the IB adapter connects: TWS or IB Gateway (or the simulator's TWS door)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IbSettings(BaseSettings):
    """IB_HOST, IB_PORT, IB_CLIENT_ID, IB_ACCOUNT (empty: the first managed account). The TWS
    API has no secret: TWS itself is logged in."""

    model_config = SettingsConfigDict(
        env_prefix="IB_", frozen=True, extra="ignore", case_sensitive=False
    )

    host: str = Field("127.0.0.1", description="IB_HOST: TWS / IB Gateway host")
    port: int = Field(
        7497, ge=1, le=65535, description="IB_PORT: 7497 TWS paper, 4002 IB Gateway paper"
    )
    client_id: int = Field(1, ge=0, description="IB_CLIENT_ID: one per connected process")
    account: str = Field("", description="IB_ACCOUNT: the account traded (default: the first)")
    full_read_seconds: float = Field(
        5.0, ge=0, description="IB_FULL_READ_SECONDS: how often the adapter asks TWS for every "
        "open and completed order and every execution of the day (all clients); in between, "
        "its own orders' and executions' state as TWS pushes it answers the venue snapshot "
        "and reconciliation's reads, and costs no message of the pacing budget (another "
        "client's order shows within this time; 0: every read asks)")
    full_read_share: float = Field(
        0.05, gt=0, le=1, description="IB_FULL_READ_SHARE: at most this share of the time goes "
        "on full reads, whose cost grows with the day's orders: a full read that took t s "
        "serves for max(IB_FULL_READ_SECONDS, t / IB_FULL_READ_SHARE), at most "
        "IB_FULL_READ_MAX_SECONDS (6,000 resting orders: about 0.7 s a read, so every 14 s)")
    full_read_max_seconds: float = Field(
        60.0, ge=0, description="IB_FULL_READ_MAX_SECONDS: the longest a full read serves, "
        "however long it took (another client's order shows within this time at worst)")
