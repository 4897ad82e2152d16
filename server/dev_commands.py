"""``sentinel dev``: run SentinelStream on one machine with nothing set up beforehand.

``sentinel dev serve`` (what ``make run`` calls) starts a private redis-server and PostgreSQL under
the data directory for whichever of ``redis_url`` / ``database_url`` is not configured, and a private
RabbitMQ when decision events are enabled without ``events_amqp_url`` (only then: the broker takes
seconds to boot), serves, and stops them again on exit. It listens on loopback only, so it may serve
without TLS or authentication (its first log line says so); ``--tls`` serves TLS and requires client
certificates, all issued by a private CA made once under ``<data_dir>/tls/`` (the CA's key is not kept).
"""

from __future__ import annotations

import argparse
from typing import Any

import structlog

from sentinel.config import ConfigError, Settings
from sentinel.localservices import local_services
from sentinel.logs import configure_logging
from sentinel.server.commands import add_server_flags, settings_from_args

log = structlog.get_logger("sentinel.dev")


def _dev_serve(args: argparse.Namespace) -> int:
    from sentinel.certificates import ensure_dev_pki
    from sentinel.server.auth import check_signing_keys
    from sentinel.server.transport import announce, require_loopback
    from sentinel.server.workers import refuse_taken_port, serve

    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format)
    require_loopback(settings.host)
    details: dict[str, str] = {}
    if args.tls:
        if settings.tls_cert_file is not None:
            raise ConfigError("--tls makes its own certificates: leave tls_cert_file and tls_key_file unset")
        pki = ensure_dev_pki(settings.data_dir.resolve() / "tls")
        settings = settings.model_copy(
            update={
                "tls_cert_file": pki.server_cert,
                "tls_key_file": pki.server_key,
                "tls_client_ca_file": pki.ca_cert,
                "require_client_cert": True,
            }
        )
        details = {
            "ca_cert": str(pki.ca_cert),
            "client_cert": str(pki.client_cert),
            "client_key": str(pki.client_key),
        }
    refuse_taken_port(settings.host, settings.port)  # before private services start for nothing
    settings = _with_rest_gateway(settings, tls=args.tls)
    announce(settings, **details)  # the first log line: how the server is reached
    check_signing_keys(settings)
    services_dir = settings.data_dir.resolve() / "services"
    with local_services(
        services_dir,
        redis=settings.redis_url is None,
        postgres=settings.database_url is None,
        rabbitmq=settings.events_enabled and settings.events_amqp_url is None,
    ) as (redis, postgres, rabbitmq):
        updates: dict[str, Any] = {}
        if redis is not None:
            updates["redis_url"] = redis.url
            log.info("private_redis_started", url=redis.url, directory=str(redis.directory))
        if postgres is not None:
            updates["database_url"] = postgres.url
            log.info("private_postgres_started", url=postgres.url, directory=str(postgres.directory))
        if rabbitmq is not None:
            updates["events_amqp_url"] = rabbitmq.amqp_url
            log.info("private_rabbitmq_started", url=rabbitmq.amqp_url, directory=str(rabbitmq.directory))
        return serve(settings.model_copy(update=updates))


def _with_rest_gateway(settings: Settings, *, tls: bool) -> Settings:
    """REST on 8080 unless ``rest_port`` says otherwise (not with --tls: its client certificates cannot
    pass through the gateway), the gateway built or brought up to date first; without Go, one log line
    and no REST."""
    from sentinel.server.rest_gateway import DEV_REST_PORT, build_gateway

    rest_port = settings.rest_port
    if rest_port is None:
        rest_port = 0 if tls else DEV_REST_PORT
    if rest_port and build_gateway() is None:
        log.warning("rest_gateway_unavailable", reason="go is missing: gRPC only, no REST (needs Go 1.26+)")
        rest_port = 0
    return settings.model_copy(update={"rest_port": rest_port})


def register(subparsers: Any) -> None:
    """Add ``sentinel dev``."""
    parser = subparsers.add_parser("dev", help="development helpers (private Redis, Postgres, RabbitMQ)")
    dev_subparsers = parser.add_subparsers(dest="dev_command", metavar="ACTION", required=True)
    serve_parser = dev_subparsers.add_parser(
        "serve", help="serve, starting private Redis/Postgres/RabbitMQ for whichever URL is not configured"
    )
    add_server_flags(serve_parser)
    serve_parser.add_argument(
        "--tls",
        action="store_true",
        help="serve TLS and require client certificates, issued by a private CA under <data_dir>/tls/",
    )
    serve_parser.set_defaults(handler=_dev_serve)
