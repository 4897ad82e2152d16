"""SentinelStream's configuration: defaults, then an optional TOML file, then environment.

Every setting has one name used in three places: the TOML key (``port = 50051``), the environment
variable (``SENTINEL_PORT=50051``) and, for the few that ``sentinel serve`` exposes, a flag. Values
are validated once, at start-up, so a bad value stops the process with a message naming the setting
and the source it came from instead of failing later on the hot path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "SENTINEL_"
CONFIG_FILE_ENV = "SENTINEL_CONFIG"


class ConfigError(Exception):
    """The configuration is invalid; ``str()`` lists every bad value with its setting name."""


class Settings(BaseSettings):
    """All settings of a SentinelStream process. The README's configuration reference lists them."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # --- gRPC server -------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the gRPC server listens on.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free port.")
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=256,
        description="Worker processes sharing the port (SO_REUSEPORT).",
    )
    max_message_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="Largest gRPC message accepted or sent.",
    )
    max_batch_items: int = Field(
        10_000, ge=1, le=100_000, description="Most transactions accepted in one ScoreBatch call."
    )
    shutdown_grace_s: float = Field(
        10.0, gt=0, le=600, description="Seconds in-flight calls get to finish on SIGTERM."
    )
    max_clock_skew_s: float = Field(
        86_400.0, ge=0, description="How far in the future an event_time may lie."
    )

    # --- dependencies --------------------------------------------------------------------------
    redis_url: str | None = Field(
        None, description="Redis for per-account state; unset: `sentinel dev serve` starts one."
    )
    database_url: str | None = Field(
        None, description="Postgres for the ledger and rules; unset: `sentinel dev serve` starts one."
    )
    data_dir: Path = Field(
        Path(".sentinel"), description="Where local state lives (private databases, spool, models)."
    )

    # --- ledger --------------------------------------------------------------------------------
    ledger_admin_url: str | None = Field(
        None,
        description="Postgres login that applies ledger migrations (creates the owner and writer roles); "
        "unset: database_url. The service itself always acts as role sentinel_ledger_writer.",
    )
    ledger_migrate_on_start: bool = Field(
        True, description="Apply pending ledger migrations at start-up (else only check the version)."
    )
    ledger_ack: Literal["durable", "async"] = Field(
        "durable",
        description="durable: answer after the decision's transaction committed (or was fsync'd to the "
        "spool); async: answer once queued (a crash can lose the last moments of decisions).",
    )
    ledger_writer_connections: int = Field(
        2, ge=1, le=32, description="Writer connections per process, each committing groups concurrently."
    )
    ledger_batch_max_records: int = Field(
        2_000, ge=1, le=100_000, description="Most decisions written in one group-commit transaction."
    )
    ledger_batch_max_wait_ms: float = Field(
        0.0,
        ge=0,
        le=1_000,
        description="How long a free writer waits for a group to fill up; 0 (default): it takes what "
        "queued while the previous group committed, which groups by itself under load (waiting 0.5 ms "
        "doubled the commit wait p99 at 10,000 decisions/s).",
    )
    ledger_queue_max_records: int = Field(
        100_000, ge=1, le=10_000_000, description="Decisions waiting for a writer before submit() waits."
    )
    ledger_commit_timeout_s: float = Field(
        2.0, gt=0, le=600, description="A group not committed within this goes to the spool instead."
    )
    ledger_connect_timeout_s: float = Field(5.0, gt=0, le=600, description="Timeout of a ledger connection.")
    ledger_retry_interval_s: float = Field(
        0.5, gt=0, le=600, description="Pause between attempts to replay the spool into Postgres."
    )
    ledger_spool_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="Bound of the local outage spool (all workers together); past it decisions are refused "
        "(UNAVAILABLE).",
    )
    ledger_partitions_ahead: int = Field(
        2, ge=1, le=24, description="Monthly decision partitions kept created ahead of the current month."
    )

    # --- logs ------------------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level of log events written."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="json: JSON lines; console: for humans; auto: console on a TTY, else json."
    )
    log_decision_sample_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of decisions logged as one event each."
    )

    # --- metrics -----------------------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="Address of the Prometheus /metrics endpoint.")
    metrics_port: int = Field(
        9095, ge=0, le=65535, description="Port of the Prometheus endpoint; 0 picks a free port."
    )

    # --- micro-batching ----------------------------------------------------------------------------
    batch_max_size: int = Field(256, ge=1, le=4096, description="Most transactions in one micro-batch.")
    batch_max_wait_ms: float = Field(
        1.0, ge=0.0, le=50.0, description="Longest a transaction waits for company while a batch runs."
    )
    batch_max_in_flight: int = Field(
        2, ge=1, le=64, description="Micro-batches processed concurrently per worker."
    )

    # --- per-account state (Redis) -----------------------------------------------------------------
    redis_cluster: bool = Field(
        False, description="redis_url points at a Redis Cluster node (keys are grouped by hash slot)."
    )
    redis_budget_ms: float = Field(
        500.0,
        gt=0,
        le=5_000,
        description="Time Redis gets to answer a batch's state call before scoring goes degraded "
        "(counted while the worker listens: a busy event loop does not use it up).",
    )
    redis_retry_after_s: float = Field(
        1.0, gt=0, le=60, description="After a Redis failure, how long to score degraded before retrying."
    )
    state_ttl_s: int = Field(
        30 * 86_400, ge=60, description="Idle time after which an account's state expires in Redis."
    )
    idempotency_ttl_s: int = Field(
        86_400, ge=60, description="How long Redis remembers an idempotency key (the ledger: forever)."
    )
    claim_takeover_s: float = Field(
        10.0,
        gt=0,
        le=3_600,
        description="A retry finding its key admitted but undecided this long decides it itself (the first "
        "worker died); keep it above ledger_commit_timeout_s.",
    )
    dead_letter_max_entries: int = Field(
        100_000, ge=100, description="Rejected transactions kept in the Redis dead-letter stream."
    )
    degraded_mode: Literal["fail_open", "fail_closed"] = Field(
        "fail_open",
        description="Without account state: fail_open decides from stateless inputs, fail_closed REVIEWs.",
    )

    # --- decision policy -----------------------------------------------------------------------------
    review_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Model score from which to REVIEW; unset: the model's own."
    )
    decline_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Model score from which to DECLINE; unset: the model's own."
    )

    # --- model registry ------------------------------------------------------------------------------
    model_dir: Path | None = Field(
        None, description="Model registry (one directory per version + ACTIVE); unset: <data_dir>/models."
    )
    model_poll_interval_ms: float = Field(
        500.0, ge=10.0, le=60_000.0, description="How often a worker checks for a newly activated model."
    )

    # --- rules ---------------------------------------------------------------------------------------
    rules_poll_interval_ms: float = Field(
        500.0,
        ge=50.0,
        le=60_000.0,
        description="How often a worker checks the rule set's generation (fallback of LISTEN/NOTIFY).",
    )
    rules_seed_defaults: bool = Field(
        True, description="Store the default rule set when the rule database has never held a rule."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("database_url", "ledger_admin_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: explicit arguments (flags) > environment > TOML file > defaults."""
        config_file = os.environ.get(CONFIG_FILE_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, raising ConfigError that names every bad value and where it came from.

    ``config_file`` takes precedence over ``SENTINEL_CONFIG``; ``overrides`` (command-line flags)
    over everything else. ``None`` overrides are ignored, so unset flags do not mask the environment.
    """
    if config_file is not None:
        os.environ[CONFIG_FILE_ENV] = str(config_file)
    path = os.environ.get(CONFIG_FILE_ENV)
    if path and not Path(path).is_file():
        raise ConfigError(f"configuration file {path!r} (from {CONFIG_FILE_ENV}) does not exist")
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, given)) from None
    except ValueError as exc:  # a malformed TOML file
        raise ConfigError(f"configuration file {path!r}: {exc}") from None


def _describe(exc: ValidationError, config_file: str | None, flags: dict[str, Any]) -> str:
    """One line per bad value: the setting, its source, the problem and the value given."""
    lines = ["invalid configuration:"]
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        env_name = ENV_PREFIX + name.upper()
        if name in flags:
            source = "command line"
        elif env_name in os.environ:
            source = f"environment {env_name}"
        elif config_file:
            source = f"{config_file}"
        else:
            source = "defaults"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  {name} [{source}]: {message}{shown}")
    return "\n".join(lines)
