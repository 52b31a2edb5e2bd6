"""Alpaca settings: env prefix ALPACA_, the secret as SecretStr; frozen, read once at start."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AlpacaSettings(BaseSettings):
    """Where and as whom to trade at Alpaca (a real paper account, or the simulator's door)."""

    model_config = SettingsConfigDict(
        env_prefix="ALPACA_", frozen=True, extra="ignore", case_sensitive=False,
        env_ignore_empty=True,
    )  # fmt: skip

    api_key_id: str = Field("", description="ALPACA_API_KEY_ID: the API key id")
    api_secret_key: SecretStr = Field(
        SecretStr(""), description="ALPACA_API_SECRET_KEY: the API secret key"
    )
    paper: bool = Field(True, description="ALPACA_PAPER: paper-api.alpaca.markets (else live)")
    base_url: str | None = Field(
        None, description="ALPACA_BASE_URL: trading API root (no /v2), e.g. the simulator's door"
    )
    stream_url: str | None = Field(
        None, description="ALPACA_STREAM_URL: the trade_updates websocket URL (ws://.../stream)"
    )
    stream: bool = Field(True, description="ALPACA_STREAM: follow trade_updates (polling stays)")
    workers: int = Field(8, ge=1, le=64, description="ALPACA_WORKERS: concurrent HTTP calls")

    def trading_url(self) -> str:
        """The REST root the client talks to."""
        if self.base_url:
            return self.base_url.rstrip("/")
        live = "https://api.alpaca.markets"
        return "https://paper-api.alpaca.markets" if self.paper else live

    def trade_stream_url(self) -> str:
        """The trade_updates websocket: the override, else next to the REST root."""
        if self.stream_url:
            return self.stream_url
        root = self.trading_url()
        return root.replace("https://", "wss://").replace("http://", "ws://") + "/stream"
