"""The API's own settings (API_*), read once at the entry point beside jax_exec.Settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Where the API listens and how long it waits for what it asks."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False,
                                      env_prefix="API_")

    host: str = Field("127.0.0.1", description="API_HOST: the address the API listens on")
    port: int = Field(8080, ge=0, le=65535, description="API_PORT (0: any free port)")
    venue_client_id: int | None = Field(
        None, description="API_VENUE_CLIENT_ID: IB client id of a standalone API's own venue "
                          "connection (default IB_CLIENT_ID + 10)")
    timeout_seconds: float = Field(
        15.0, gt=0, description="API_TIMEOUT_SECONDS: deadline of every call the API makes "
                                "(ClickHouse, Kafka, venue)")
    approval_ttl_seconds: int = Field(
        300, gt=0, le=86400, description="API_APPROVAL_TTL_SECONDS: expiry of the approvals "
                                         "the API signs")
    ready_max_audit_lag_seconds: float = Field(
        60.0, gt=0, description="API_READY_MAX_AUDIT_LAG_SECONDS: /ready fails when the audit "
                                "sink holds rows older than this")
