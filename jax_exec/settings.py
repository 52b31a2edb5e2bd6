"""Process settings, read once from the environment at the entry point and passed inward."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from brokers.registry import VENUES


class Settings(BaseSettings):
    """Where things are and how the worker runs. Risk settings live in RiskSettings."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    jax_home: Path = Field(Path(".local"), description="Runtime data directory (JAX_HOME)")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] | None = Field(
        None, description="Unset: PLAINTEXT, or the local secure broker's generated credentials")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_credentials_file: Path | None = Field(
        None, description="A JSON file with username and password (JAX_HOME/kafka/credentials)")
    kafka_credentials_dir: Path | None = Field(
        None, description="A directory of <principal>.json credential files, for a process "
        "that connects as several principals (the API: upstream and operator)")
    topic_prefix: str = Field("", description="Prefix of every topic name (isolates test runs)")
    app_id: str = Field("jax-execution", description="Faust app id / consumer group base name")
    clickhouse_url: str = Field(
        "", description="ClickHouse DSN; default chdb://<JAX_HOME>/clickhouse (embedded)"
    )
    venue: str = Field(
        "ib", description="A name in brokers.registry.VENUES; the venue reads its own settings"
    )
    reconcile_interval_seconds: float = Field(0.5, gt=0)
    reconcile_lookback_hours: float = Field(24, gt=0)
    reconcile_commission_grace_seconds: float = Field(
        10, gt=0, lt=30, description="How long a fill waits for its commission report")
    audit_batch_rows: int = Field(50_000, gt=0)
    # 0.5 s: audit lag p99 1.05 s at 10 approvals/s (1.0 s: 1.55 s), for about a third more
    # audit-worker CPU at that rate (README, "Benchmark: approval to order")
    audit_batch_seconds: float = Field(0.5, gt=0)
    venue_timeout_seconds: float = Field(10.0, gt=0, description="Deadline of every venue call")
    venue_snapshot_seconds: float = Field(
        0.5, ge=0, description="Largest age of the venue snapshot a decision reads")
    venue_retry_attempts: int = Field(8, ge=1)
    venue_retry_seconds: float = Field(60.0, gt=0, description="Total time a stage retries")
    reservation_ttl_seconds: float = Field(
        900.0, gt=0, description="How long a decided, unplaced order counts against limits")
    approval_keyring: Path | None = Field(
        None, description="Approval keyring; default <JAX_HOME>/keys/keyring.json")
    signal_grace_seconds: float = Field(
        5.0, ge=0, description="How long an approval waits for its signal to be seen")
    kafka_session_timeout_seconds: float = Field(
        10.0, ge=3, description="How soon a dead worker's partitions go to another worker")
    log_level: str = Field("warning", description="Worker log level (faust, agents)")
    gil_switch_seconds: float | None = Field(
        None, gt=0, le=0.1, description="Python's GIL switch interval in a worker; unset: "
        "0.5 ms for the audit stage alone (store.writer.WRITER_SWITCH_SECONDS), else Python's "
        "5 ms")
    gc_freeze: bool = Field(
        True, description="Once a worker serves, exempt what it holds then from the garbage "
        "collector's full collections (agents.gc_pauses): they no longer pause for it")
    gc_young_threshold: int = Field(
        20_000, ge=0, description="Tracked objects made between two collections of the "
        "garbage collector's youngest generation in a worker (agents.gc_pauses."
        "young_threshold); 0: Python's 700, which moves the objects of messages in flight "
        "to the oldest generation and brings full collections (pauses of 100s of ms) often")
    gc_thaw_seconds: float = Field(
        0.0, ge=0, description="With GC_FREEZE and above 0, also exempt what survives each "
        "full collection from the next ones (agents.gc_pauses.freeze_survivors), and let one "
        "full collection walk everything this often, to collect what died among them; 0 (the "
        "default): freeze at start only")

    @field_validator("venue")
    @classmethod
    def _known_venue(cls, value: str) -> str:
        name = value.strip().lower()
        if name not in VENUES:
            raise ValueError(f"VENUE={value!r} is not a venue; choose from {sorted(VENUES)}")
        return name

    @field_validator("jax_home")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse_url or f"chdb://{self.jax_home / 'clickhouse'}"

    def topic(self, name: str) -> str:
        from schemas.topics import topic_name

        return topic_name(name, self.topic_prefix)
