"""SentinelStream's configuration: defaults, then an optional TOML file, then environment.

Every setting has one name used in three places: the TOML key (``port = 50051``), the environment
variable (``SENTINEL_PORT=50051``) and, for the few that ``sentinel serve`` exposes, a flag. Values
are validated once, at start-up, so a bad value stops the process with a message naming the setting
and the source it came from instead of failing later on the hot path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
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


class RateLimit(BaseModel):
    """One token bucket of the ``rate_limits`` setting, counted in transactions (a ScoreBatch of 100
    costs 100): refilled at ``rate_per_s``, holding at most ``burst`` (the most one call may carry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float = Field(gt=0, le=10_000_000, description="Transactions per second, on average.")
    burst: int = Field(ge=1, le=10_000_000, description="Transactions admitted at once from a full bucket.")


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
    # At most a year: the hot path computes on event times up to MAX_EVENT_TIME (year 5138), and a skew
    # past that would let validation accept rows it refuses (an error for the whole call).
    max_clock_skew_s: float = Field(
        86_400.0, ge=0, le=365 * 86_400, description="How far in the future an event_time may lie."
    )

    # --- transport security --------------------------------------------------------------------
    # Validated here only for consistency (which settings go together); the files themselves are read
    # and checked at start-up by sentinel.server.transport, and re-read whenever they change.
    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate chain the gRPC port presents (TLS); re-read when the file changes. "
        "Unset: plaintext.",
    )
    tls_key_file: Path | None = Field(
        None,
        validate_default=True,  # so that a certificate without its key is reported
        description="PEM private key of tls_cert_file (unencrypted; readable by the service only).",
    )
    tls_client_ca_file: Path | None = Field(
        None,
        description="PEM CA certificates that client certificates are verified against (mTLS); needs TLS "
        "and require_client_cert.",
    )
    require_client_cert: bool = Field(
        False,
        validate_default=True,  # so that a client CA without it is reported
        description="Refuse connections without a client certificate issued by tls_client_ca_file.",
    )
    insecure: bool = Field(
        False,
        description="Let `sentinel serve` start without TLS or without authentication (flag --insecure): "
        "for a trusted network or a test only.",
    )

    @field_validator("tls_key_file")
    @classmethod
    def _tls_pair(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if "tls_cert_file" not in info.data:  # the certificate setting itself was invalid
            return value
        if value is None and info.data["tls_cert_file"] is not None:
            raise ValueError("tls_cert_file is set: set tls_key_file to its private key too")
        if value is not None and info.data["tls_cert_file"] is None:
            raise ValueError("set tls_cert_file to the certificate of this key too (both or neither)")
        return value

    @field_validator("tls_client_ca_file")
    @classmethod
    def _client_ca_needs_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("tls_cert_file") is None:
            raise ValueError("client certificates need TLS: set tls_cert_file and tls_key_file too")
        return value

    @field_validator("require_client_cert")
    @classmethod
    def _client_ca_and_requirement(cls, value: bool, info: ValidationInfo) -> bool:
        """Both or neither: grpcio either requires a verified client certificate or never asks for one, so
        a client CA without the requirement would verify nothing."""
        if "tls_client_ca_file" not in info.data:  # the CA setting itself was invalid
            return value
        if value and info.data["tls_client_ca_file"] is None:
            raise ValueError("set tls_client_ca_file to the CA that issues the client certificates")
        if not value and info.data["tls_client_ca_file"] is not None:
            raise ValueError(
                "tls_client_ca_file is set: set require_client_cert = true too (gRPC cannot ask for an "
                "optional client certificate, so the CA alone would check nothing)"
            )
        return value

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
        1,
        ge=1,
        le=64,
        description="Micro-batches processed concurrently per worker. 1 (default): the next batch fills "
        "while one is processed, so batches grow with the load and each pays its fixed costs for more "
        "transactions (decision 0009).",
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

    # --- authentication ------------------------------------------------------------------------------
    # Who may call what: sentinel.server.auth (the interceptor), sentinel.server.roles (the role table),
    # sentinel.server.tokens (JWT validation) and sentinel.server.signing_keys (JWKS / shared secret).
    AUTH_ROLES: ClassVar[tuple[str, ...]] = (
        "scorer",
        "ledger-reader",
        "rules-viewer",
        "rules-admin",
        "ops-viewer",
        "events-admin",
    )
    AUTH_PUBLIC_SERVICES: ClassVar[tuple[str, ...]] = (
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    )
    auth_mode: Literal["none", "jwt"] = Field(
        "none",
        description="jwt: every call needs a bearer JWT (or a client certificate mapped in "
        "auth_certificate_roles) whose roles allow the method; none: every caller is anonymous and may "
        "call everything (development only).",
    )
    auth_issuer: str | None = Field(
        None, validate_default=True, description="The `iss` tokens must carry; required with auth_mode=jwt."
    )
    auth_audience: str | None = Field(
        None, validate_default=True, description="The `aud` tokens must name; required with auth_mode=jwt."
    )
    auth_jwks_file: Path | None = Field(
        None,
        description="JWKS file of the token signing keys (public keys, each with its kid); re-read when "
        "it changes (checked on an unknown kid and every auth_jwks_refresh_s).",
    )
    auth_jwks_url: str | None = Field(
        None,
        description="http(s) URL of the JWKS; fetched again on an unknown kid (at most once per "
        "auth_jwks_min_refresh_s) and every auth_jwks_refresh_s.",
    )
    auth_hs256_secret_file: Path | None = Field(
        None,
        description="File holding the shared HS256 secret (at least 32 bytes); only with "
        'auth_algorithms = ["HS256"]. The secret is never given inline.',
    )
    auth_algorithms: list[str] = Field(
        ["RS256", "ES256"],
        validate_default=True,
        description="Signing algorithms accepted (the token's own alg header never widens this); "
        "never none; HS256 only alone and with auth_hs256_secret_file.",
    )
    auth_leeway_s: float = Field(
        30.0, ge=0, le=300, description="Clock skew allowed on a token's exp and nbf, in seconds."
    )
    auth_jwks_refresh_s: float = Field(
        300.0, ge=1, le=86_400, description="How often the JWKS (file or URL) is read again."
    )
    auth_jwks_min_refresh_s: float = Field(
        10.0, ge=0, le=3_600, description="Least time between two fetches of auth_jwks_url on unknown kids."
    )
    auth_public_services: list[str] = Field(
        ["grpc.health.v1.Health"],
        description="Services callable without credentials when auth_mode=jwt (health checks of load "
        "balancers); only health and reflection may be listed.",
    )
    auth_certificate_roles: dict[str, list[str]] = Field(
        {},
        description="mTLS: client certificate identity (a subject alternative name or the common name) -> "
        "roles, for callers that send no token.",
    )
    auth_token_cache_size: int = Field(
        10_000, ge=0, le=1_000_000, description="Validated tokens remembered until they expire (0: none)."
    )

    @field_validator("auth_issuer", "auth_audience")
    @classmethod
    def _required_with_jwt(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("auth_mode") == "jwt" and not value:
            raise ValueError("required with auth_mode = jwt")
        return value

    @field_validator("auth_jwks_url")
    @classmethod
    def _jwks_url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value

    @field_validator("auth_algorithms")
    @classmethod
    def _algorithm_allow_list(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """Never ``none``; HS256 alone (so no public key can ever serve as an HMAC secret) and only with
        its secret file; asymmetric algorithms only with a JWKS, which HS256 never reads."""
        asymmetric = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
        if not value:
            raise ValueError("name at least one algorithm")
        unknown = [name for name in value if name not in asymmetric | {"HS256"}]
        if unknown:
            raise ValueError(
                f"not accepted: {', '.join(unknown)} (alg none never is; choose from "
                f"{', '.join(sorted(asymmetric))} or HS256 alone)"
            )
        secret = info.data.get("auth_hs256_secret_file")
        jwks = info.data.get("auth_jwks_file") or info.data.get("auth_jwks_url")
        if "HS256" in value:
            if len(value) > 1:
                raise ValueError("HS256 cannot be mixed with asymmetric algorithms")
            if secret is None and info.data.get("auth_mode") == "jwt":
                raise ValueError("HS256 needs auth_hs256_secret_file")
            if jwks:
                raise ValueError("HS256 uses auth_hs256_secret_file, not a JWKS: unset auth_jwks_*")
            return value
        if secret is not None:
            raise ValueError('auth_hs256_secret_file is set: the algorithms must be ["HS256"]')
        if info.data.get("auth_mode") == "jwt" and not jwks:
            raise ValueError(f"{', '.join(value)} need auth_jwks_file or auth_jwks_url")
        if info.data.get("auth_jwks_file") and info.data.get("auth_jwks_url"):
            raise ValueError("set auth_jwks_file or auth_jwks_url, not both")
        return value

    @field_validator("auth_public_services")
    @classmethod
    def _public_services(cls, value: list[str]) -> list[str]:
        other = [name for name in value if name not in cls.AUTH_PUBLIC_SERVICES]
        if other:
            raise ValueError(
                f"only health and reflection may be public ({', '.join(cls.AUTH_PUBLIC_SERVICES)}); "
                f"got {', '.join(other)}"
            )
        return value

    @field_validator("auth_certificate_roles")
    @classmethod
    def _certificate_roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for identity, roles in value.items():
            unknown = [role for role in roles if role not in cls.AUTH_ROLES]
            if not identity:
                raise ValueError("a certificate identity must not be empty")
            if unknown:
                raise ValueError(
                    f"{identity!r}: unknown role {', '.join(unknown)} (roles: {', '.join(cls.AUTH_ROLES)})"
                )
        return value

    @property
    def authentication_enabled(self) -> bool:
        """Calls must authenticate (a bearer JWT or a mapped client certificate)."""
        return self.auth_mode != "none"

    # --- decision policy -----------------------------------------------------------------------------
    review_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Model score from which to REVIEW; unset: the model's own."
    )
    decline_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Model score from which to DECLINE; unset: the model's own."
    )

    # --- rate limits and overload ------------------------------------------------------------------
    rate_limits: dict[str, RateLimit] = Field(
        default_factory=dict,
        description="Token buckets per caller, in transactions per second: keys `default`, `role:<role>`, "
        "`client:<subject>`, values {rate_per_s, burst}. A client entry wins over its roles' (the most "
        "generous role entry), a role entry over `default`; no entry: unlimited. Every caller has a bucket "
        "of its own in Redis, shared by all workers and replicas. Empty (the default): no limit, no Redis "
        "call.",
    )
    max_in_flight_transactions: int = Field(
        512,
        ge=1,
        le=1_000_000,
        description="Transactions one worker holds between admitting a call and answering it; a call that "
        "would pass it is refused at once (RESOURCE_EXHAUSTED) instead of queuing, a ScoreStream waits. An "
        "idle worker admits any call. Default: two batches of batch_max_size, the one being processed "
        "and the next one filling up; more would only wait in the batch queue.",
    )
    max_in_flight_bytes: int = Field(
        32 * 1024 * 1024,
        ge=64 * 1024,
        le=4 * 1024 * 1024 * 1024,
        description="Request bytes one worker holds in flight, likewise (an idle worker admits any call).",
    )

    @field_validator("rate_limits")
    @classmethod
    def _rate_limit_keys(cls, value: dict[str, RateLimit]) -> dict[str, RateLimit]:
        for key in value:
            kind, _, name = key.partition(":")
            if key != "default" and (kind not in ("role", "client") or not name):
                raise ValueError(f"key {key!r}: use `default`, `role:<role>` or `client:<subject>`")
        return value

    # --- ops dashboard -------------------------------------------------------------------------------
    dashboard_enabled: bool = Field(
        True,
        description="Serve the live ops dashboard at /dashboard on the metrics port (read-only; with "
        "auth_mode = jwt its data needs a bearer token with the role ops-viewer).",
    )
    dashboard_update_ms: float = Field(
        250.0,
        ge=50.0,
        le=10_000.0,
        description="How often the dashboard's figures are computed and pushed while a page watches "
        "(every 5 s otherwise, to keep the score history).",
    )
    dashboard_score_window_s: float = Field(
        300.0,
        ge=10.0,
        le=86_400.0,
        description="The span of recent model scores the dashboard compares with the training "
        "distribution (drift).",
    )

    # --- decision events: RabbitMQ -------------------------------------------------------------------
    # Published by sentinel.events.amqp (AmqpPublisher); the dispatcher treats the broker as one more
    # destination of every event.
    events_amqp_url: str | None = Field(
        None,
        description="RabbitMQ broker that receives every decision event (amqp:// or amqps://); unset: no "
        "broker destination, and `sentinel dev serve` starts a private broker.",
    )
    events_amqp_exchange: str = Field(
        "sentinel.decisions",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Durable topic exchange the events are published to (declared when missing); routing "
        "key `<type>.<outcome>`, e.g. `decision.recorded.decline`. Receivers bind durable queues to it: "
        "the broker drops an event no queue is bound for.",
    )
    events_amqp_confirm_timeout_s: float = Field(
        10.0,
        gt=0.0,
        le=300.0,
        description="How long one batch may take to be confirmed by the broker, connecting included; past "
        "it (or on a lost connection or a nack) the whole batch is sent again later.",
    )

    @field_validator("events_amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("amqp://", "amqps://")):
            raise ValueError("must start with amqp:// or amqps://")
        return value

    @field_validator("events_amqp_exchange")
    @classmethod
    def _amqp_exchange_name(cls, value: str) -> str:
        if value.startswith("amq."):
            raise ValueError("names starting with amq. are reserved by the broker")
        return value

    # --- decision events ---------------------------------------------------------------------------
    events_enabled: bool = Field(
        False,
        description="`sentinel serve` runs `events_dispatchers` dispatcher processes (restarted when they "
        "die) delivering the decision events of the outbox to webhooks and RabbitMQ.",
    )
    events_dispatchers: int = Field(
        1, ge=1, le=32, description="Dispatcher processes `sentinel serve` runs when events_enabled."
    )
    events_batch_size: int = Field(
        100, ge=1, le=10_000, description="Most deliveries a dispatcher claims for one destination at a time."
    )
    events_poll_interval_ms: float = Field(
        200.0, ge=10.0, le=60_000.0, description="How often an idle dispatcher looks for due deliveries."
    )
    events_webhook_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Per-request timeout of a webhook POST (connect to last byte)."
    )
    events_webhook_concurrency: int = Field(
        16, ge=1, le=1_000, description="Webhook POSTs one dispatcher has in flight per destination."
    )
    events_retry_base_s: float = Field(
        1.0, gt=0, le=3_600, description="First retry delay of a failed delivery, doubled per attempt."
    )
    events_retry_cap_s: float = Field(
        900.0, gt=0, le=86_400, description="Longest retry delay (full jitter: a random delay up to it)."
    )
    events_retry_max_age_s: float = Field(
        86_400.0,
        gt=0,
        le=30 * 86_400,
        description="A delivery still failing this long after it was enqueued becomes dead (dead letter, "
        "`sentinel events replay` resends it).",
    )
    events_circuit_failures: int = Field(
        5, ge=1, le=10_000, description="Consecutive failures that open a destination's circuit."
    )
    events_circuit_cooldown_s: float = Field(
        30.0, gt=0, le=3_600, description="How long an open circuit waits before one probe delivery."
    )
    events_secret_grace_s: float = Field(
        86_400.0,
        ge=0,
        le=30 * 86_400,
        description="How long a rotated webhook secret still signs (a second v1= in the signature header).",
    )
    events_allow_plain_http_loopback: bool = Field(
        False,
        description="Accept http:// webhook URLs on loopback addresses (tests, development); otherwise only "
        "https://.",
    )
    events_metrics_port: int = Field(
        9096,
        ge=0,
        le=65535,
        description="/metrics port of a standalone `sentinel events dispatch` (on metrics_host; 0: any). "
        "Under `sentinel serve` the dispatchers' metrics are on the server's metrics_port.",
    )

    # --- REST gateway ------------------------------------------------------------------------------
    rest_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of the REST/JSON gateway on `host` (a Go process the supervisor starts; OpenAPI "
        "document at /openapi.json); 0: no REST. Unset: `sentinel dev serve` serves REST on 8080, "
        "`sentinel serve` does not.",
    )

    # --- ledger read replica -----------------------------------------------------------------------
    ledger_read_url: str | None = Field(
        None,
        description="A streaming-replication standby of the ledger database: LedgerService reads "
        "(GetBalance, ListHistory, GetDecision) go there; GetDecision asks database_url when the standby "
        "has not replayed the decision yet. Its lag: sentinel_ledger_replica_lag_seconds. Unset: "
        "database_url serves them.",
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

    @field_validator("database_url", "ledger_admin_url", "ledger_read_url")
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
        setting = str(error["loc"][0]) if error["loc"] else name  # a nested value's setting
        env_name = ENV_PREFIX + setting.upper()
        if setting in flags:
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
