"""Configuration from `GOLDENKEY_*` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from goldenkey.kit.clock import BusinessHours


class KitSettings(BaseSettings):
    """What every service needs; a service subclasses it for its own settings."""

    # An empty variable is an unset one: compose passes `${GOLDENKEY_CLOCK_START:-}` through as "".
    model_config = SettingsConfigDict(env_prefix="GOLDENKEY_", extra="ignore", env_ignore_empty=True)

    service: str = Field(default="goldenkey", pattern=r"^[a-z]+$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_topic_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)

    mongodb_url: SecretStr = SecretStr("mongodb://127.0.0.1:27017/")
    mongodb_database: str | None = None
    """Defaults to `goldenkey_<service>`."""
    mongodb_timeout_ms: int = Field(default=3000, ge=100)

    timezone: str = "Asia/Shanghai"
    clock_start: AwareDatetime | None = None
    """The simulated instant the hall's day starts; unset, services run on wall-clock time."""
    clock_speed: float = Field(default=1.0, gt=0, le=100_000)
    """Simulated seconds per real second."""
    clock_anchor: AwareDatetime | None = None
    """The real instant at which the simulated clock reads `clock_start`. Services given the same
    anchor share one clock however far apart they start; without one, each anchors at its start."""
    business_hours: Annotated[BusinessHours, NoDecode] = BusinessHours.parse("Mon-Fri 09:00-17:00")

    tokens_file: Path | None = None
    """JSON list of {"sha256", "role", "name"}; without it only the dev tokens work, and only
    when `dev_tokens` is on."""
    dev_tokens: bool = False
    pii_key: SecretStr = SecretStr("goldenkey-dev-only-pii-key")

    log_level: str = "INFO"
    log_json: bool = True

    relay_interval_s: float = Field(default=30.0, gt=0)
    """How often the relay sweeps for events its nudges missed (each save publishes at once)."""
    relay_lease_s: float = Field(default=30.0, gt=0)
    relay_batch: int = Field(default=100, ge=1)
    consumer_retries: int = Field(default=5, ge=0)
    """Attempts after the first before a failing event goes to the dead-letter topic."""
    consumer_backoff_s: float = Field(default=0.2, gt=0)
    consumer_backoff_max_s: float = Field(default=5.0, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    shutdown_timeout_s: float = Field(default=8.0, gt=0)
    retention_days: float = Field(default=7.0, gt=0)
    """How long handled-event ids (inbox) and Idempotency-Key answers are kept."""

    @model_validator(mode="after")
    def _default_database(self) -> KitSettings:
        if self.mongodb_database is None:
            self.mongodb_database = f"goldenkey_{self.service}"
        return self

    @property
    def database(self) -> str:
        assert self.mongodb_database is not None
        return self.mongodb_database
