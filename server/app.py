"""One worker's grpc.aio server: the scoring, health and reflection services on a shared port.

Every worker of ``sentinel serve`` runs this in its own process and event loop. The port is bound
with SO_REUSEPORT so the kernel spreads connections over the workers.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Callable

import grpc
import structlog
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from sentinel.config import Settings
from sentinel.events.service import EventsServicer
from sentinel.server.admission import Admission
from sentinel.server.auth import auth_interceptors
from sentinel.server.deadletter import DeadLetters
from sentinel.server.interceptors import HealthWatchCloser, MetricsInterceptor
from sentinel.server.ledger_service import LedgerServicer
from sentinel.server.pipeline import ScoringPipeline
from sentinel.server.request_wire import add_scoring_service
from sentinel.server.resources import WorkerResources
from sentinel.server.rules.service import RulesServicer
from sentinel.server.scoring import ScoringServicer
from sentinel.server.transport import add_port
from sentinel.v1 import (
    events_pb2,
    events_pb2_grpc,
    ledger_pb2,
    ledger_pb2_grpc,
    rules_pb2,
    rules_pb2_grpc,
    scoring_pb2,
)

log = structlog.get_logger("sentinel.server")

SCORING_SERVICE = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
RULES_SERVICE = rules_pb2.DESCRIPTOR.services_by_name["RulesService"].full_name
EVENTS_SERVICE = events_pb2.DESCRIPTOR.services_by_name["EventsService"].full_name
REFLECTION_V1_SERVICE = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1_FILE = "grpc/reflection/v1/reflection.proto"


def server_options(settings: Settings, reuse_port: bool) -> list[tuple[str, int]]:
    """Channel arguments: explicit message limits, SO_REUSEPORT only when workers share the port."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.keepalive_time_ms", 60_000),
    ]


def enable_reflection(server: grpc.aio.Server, services: tuple[str, ...]) -> None:
    """Serve reflection as ``grpc.reflection.v1`` (what grpcurl and Postman ask first) and v1alpha.

    grpcio-reflection ships only v1alpha. v1 is the same protocol under another package name (same
    messages, same field numbers), so one v1alpha servicer answers both method paths."""
    _add_reflection_v1_descriptor()
    servicer = reflection.aio.ReflectionServicer((*services, reflection.SERVICE_NAME, REFLECTION_V1_SERVICE))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1_method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1_SERVICE, {"ServerReflectionInfo": v1_method}),)
    )


def _add_reflection_v1_descriptor() -> None:
    """Put grpc.reflection.v1 in the default pool (renamed from v1alpha) so that a client can describe
    the v1 service it lists; no code generator options, they are for other languages."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(REFLECTION_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name, proto.package = REFLECTION_V1_FILE, "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # assigning "" would mark a scalar as a message field
                field.type_name = field.type_name.replace(old, new)
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(old, new)
        method.output_type = method.output_type.replace(old, new)
    pool.AddSerializedFile(proto.SerializeToString())


def scoring_path(
    settings: Settings, resources: WorkerResources, dead_letters: DeadLetters | None
) -> tuple[ScoringPipeline, ScoringServicer]:
    """The scoring pipeline over a worker's resources and the ScoringService servicer in front of it:
    what a worker serves, and what ``sentinel bench pipeline`` measures without gRPC."""
    pipeline = ScoringPipeline(
        settings,
        state_store=resources.state_store,
        model=resources.model,
        rules=resources.rules,
        ledger=resources.ledger,
    )
    servicer = ScoringServicer(
        pipeline,
        max_clock_skew_s=settings.max_clock_skew_s,
        max_batch_items=settings.max_batch_items,
        max_response_bytes=settings.max_message_bytes,
        rules=resources.rules,
        log_sample_rate=settings.log_decision_sample_rate,
        group_max=settings.batch_max_size,
        group_wait_s=settings.batch_max_wait_ms / 1000,
        dead_letters=dead_letters,
        admission=Admission.from_settings(settings, resources.redis),
    )
    return pipeline, servicer


async def run_worker(
    settings: Settings, port: int, worker_id: int, reuse_port: bool, on_serving: Callable[[], None]
) -> None:
    """Serve until SIGTERM/SIGINT, then stop taking calls and let in-flight calls finish."""
    structlog.contextvars.bind_contextvars(worker=worker_id, pid=os.getpid())
    resources = await WorkerResources.open(settings, worker_id)
    dead_letters = DeadLetters(resources.redis, max_entries=settings.dead_letter_max_entries)
    pipeline, scoring = scoring_path(settings, resources, dead_letters)
    pipeline.start()
    watches = HealthWatchCloser()
    server = grpc.aio.server(
        options=server_options(settings, reuse_port),
        interceptors=[MetricsInterceptor(), *auth_interceptors(settings), watches],
    )
    health_servicer = health.aio.HealthServicer()
    add_scoring_service(scoring, server)
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(LedgerServicer(*resources.ledger_pools()), server)
    rules_pb2_grpc.add_RulesServiceServicer_to_server(
        RulesServicer(
            resources.rule_store,
            max_clock_skew_s=settings.max_clock_skew_s,
            state_provider=resources.state_store.state_of,
        ),
        server,
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    events_servicer = EventsServicer(settings)
    events_pb2_grpc.add_EventsServiceServicer_to_server(events_servicer, server)
    enable_reflection(
        server, (SCORING_SERVICE, LEDGER_SERVICE, RULES_SERVICE, EVENTS_SERVICE, health.SERVICE_NAME)
    )
    bound = add_port(server, settings, port)  # TLS when configured (sentinel.server.transport)
    if bound == 0:
        raise OSError(f"cannot bind {settings.host}:{port}")
    await server.start()
    # Everything built so far (model, rules, protobuf descriptors, connections) lives as long as the
    # worker: out of the cyclic GC's sight, a collection walks only what requests allocate.
    gc.collect()
    gc.freeze()
    for service in ("", SCORING_SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("worker_serving", address=f"{settings.host}:{bound}")
    on_serving()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("worker_stopping", grace_s=settings.shutdown_grace_s)
    await health_servicer.enter_graceful_shutdown()
    watches.close_watches()  # the grace is for calls in flight: stop returns when they have ended
    await server.stop(settings.shutdown_grace_s)
    await scoring.close()
    await dead_letters.drain()  # the rejects' appends still under way, before Redis is closed
    await pipeline.close()
    await events_servicer.close()
    await resources.close()
    log.info("worker_stopped")
