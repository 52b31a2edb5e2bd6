"""Where the venue is and how to log in: TEMPLATE_BASE_URL, TEMPLATE_API_KEY, ..."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TemplateSettings(BaseSettings):
    """Read once at the entry point (PLUGIN.settings()), passed inward, frozen."""

    model_config = SettingsConfigDict(
        env_prefix="TEMPLATE_", frozen=True, extra="ignore", case_sensitive=False
    )

    base_url: str = Field("https://paper-api.example.com", description="TEMPLATE_BASE_URL")
    account_id: str = Field("", description="TEMPLATE_ACCOUNT_ID (empty: the login's only one)")
    api_key: SecretStr = Field(SecretStr(""), description="TEMPLATE_API_KEY")
