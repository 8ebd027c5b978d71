"""Configuration from `GOLDENKEY_*` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from goldenkey.kit.clock import BusinessHours

DEV_PII_KEY = "goldenkey-dev-only-pii-key"
"""The development PII key: it is in the repository, so with it a plate hash and the masked plate
give the plate back at once."""


class DevSecretsOutsideDevMode(RuntimeError):
    """A service outside dev mode was configured with a development secret: it refuses to start."""


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
    kafka_replication_factor: int | None = Field(default=None, ge=1)
    """Of the topics a service creates; unset, the broker's own `default.replication.factor`."""

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

    dev_mode: bool = False
    """A developer's machine or a test (`GOLDENKEY_DEV_MODE=true`): only then may a service start
    with the public development secrets — the dev PII key, the dev tokens (docs/security.md)."""
    tokens_file: Path | None = None
    """JSON list of {"sha256", "role", "name"}; without it only the dev tokens work, and only
    when `dev_tokens` is on."""
    dev_tokens: bool = False
    """Accept the dev tokens (`dev-admin`…) when no tokens file is given: dev mode only."""
    pii_key: SecretStr = SecretStr(DEV_PII_KEY)
    """The HMAC key of `plate_hash` and `phone_hash`. The default is public: dev mode only."""

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
    consumer_contention_retries: int = Field(default=15, ge=0)
    """Like `consumer_retries`, for a handler that lost races (`ConcurrencyError`) or timed out."""
    consumer_attempt_timeout_s: float = Field(default=30.0, gt=0)
    """How long one attempt at a message may hold the consumer (at most a quarter of the max poll interval)."""
    consumer_max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    """aiokafka's: a consumer that has not polled for this long leaves its group (the session and
    heartbeat settings below are aiokafka's too; docs/kit.md, "Consumers")."""
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1000)
    consumer_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    consumer_new_group_horizon_s: float = Field(default=3600.0, ge=0)
    """A consumer group that never committed on a topic starts at its records younger than this."""
    max_event_bytes: int = Field(default=256 * 1024, ge=1024)
    """A consumed record larger than this is poison ("oversize")."""
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    shutdown_timeout_s: float = Field(default=8.0, gt=0)
    retention_days: float = Field(default=7.0, gt=0)
    """How long handled-event ids (inbox) and Idempotency-Key answers are kept."""

    @model_validator(mode="after")
    def _default_database(self) -> KitSettings:
        if self.mongodb_database is None:
            self.mongodb_database = f"goldenkey_{self.service}"
        return self

    def refuse_dev_secrets(self, accepted_dev_tokens: list[str]) -> None:
        """Outside dev mode, refuse to start with the public development secrets: the dev PII key,
        `dev_tokens`, or a tokens file that accepts dev tokens (`accepted_dev_tokens`, those the
        service's token registry accepts). The error names the settings to change."""
        if self.dev_mode:
            return
        problems = []
        if self.pii_key.get_secret_value() == DEV_PII_KEY:
            problems.append(
                "GOLDENKEY_PII_KEY is the public development key, with which anyone can reverse a plate "
                "hash: set it to a secret of your own"
            )
        if self.dev_tokens:
            problems.append("GOLDENKEY_DEV_TOKENS is on: remove it and give a GOLDENKEY_TOKENS_FILE")
        if self.tokens_file is not None and accepted_dev_tokens:
            problems.append(
                f"GOLDENKEY_TOKENS_FILE ({self.tokens_file}) accepts the public dev tokens "
                f"{', '.join(accepted_dev_tokens)}: give a tokens file without their hashes"
            )
        if problems:
            raise DevSecretsOutsideDevMode(
                f"{self.service} refuses to start outside dev mode: {'; '.join(problems)}. "
                "(On a developer's machine or in a test, set GOLDENKEY_DEV_MODE=true.)"
            )

    @property
    def database(self) -> str:
        assert self.mongodb_database is not None
        return self.mongodb_database
