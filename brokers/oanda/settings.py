"""Where the OANDA adapter connects: a v20 practice or live account (or the simulator's door)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

HOSTS = {
    "practice": ("api-fxpractice.oanda.com", "stream-fxpractice.oanda.com"),
    "live": ("api-fxtrade.oanda.com", "stream-fxtrade.oanda.com"),
}


class OandaSettings(BaseSettings):
    """OANDA_TOKEN (a personal access token), OANDA_ACCOUNT_ID (empty: the token's first
    account), OANDA_ENVIRONMENT practice|live; OANDA_HOST / OANDA_STREAM_HOST / OANDA_PORT /
    OANDA_SSL override the environment's hosts (the simulator's door: 127.0.0.1, its port,
    no TLS)."""

    model_config = SettingsConfigDict(
        env_prefix="OANDA_", frozen=True, extra="ignore", case_sensitive=False
    )

    token: SecretStr = Field(SecretStr(""), description="OANDA_TOKEN: bearer token")
    account_id: str = Field("", description="OANDA_ACCOUNT_ID, e.g. 101-001-1234567-001")
    environment: Literal["practice", "live"] = Field("practice", description="OANDA_ENVIRONMENT")
    host: str = Field("", description="OANDA_HOST: REST host override")
    stream_host: str = Field("", description="OANDA_STREAM_HOST: stream host override")
    port: int = Field(443, ge=1, le=65535, description="OANDA_PORT")
    ssl: bool = Field(True, description="OANDA_SSL: false for the local simulator")

    @property
    def rest_host(self) -> str:
        return self.host or HOSTS[self.environment][0]

    @property
    def streaming_host(self) -> str:
        return self.stream_host or self.host or HOSTS[self.environment][1]
