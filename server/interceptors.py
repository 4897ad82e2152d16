"""Server interceptors: count and time every call by method and final status code; end health watches
at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from sentinel.server.metrics import CALL_SECONDS, CALLS


def _code_name(context: grpc.aio.ServicerContext, default: str) -> str:
    code = context.code()
    if code is None:
        return default
    return code.name if isinstance(code, grpc.StatusCode) else grpc.StatusCode(code).name


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Records sentinel_calls_total{method,code} and sentinel_call_seconds{method}.

    The instrumented handler of a method is built on its first call and reused: the services are
    fixed once the server runs, and building it per call cost every unary call a few per cent.
    """

    def __init__(self) -> None:
        self._instrumented: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        instrumented = self._instrumented.get(handler_call_details.method)
        if instrumented is not None:
            return instrumented
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        instrumented = self._instrument(handler, handler_call_details.method.rsplit("/", 1)[-1])
        self._instrumented[handler_call_details.method] = instrumented
        return instrumented

    @staticmethod
    def _instrument(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The handler wrapped so that it counts and times its calls."""
        calls_ok = CALLS.labels(method, "OK")
        seconds = CALL_SECONDS.labels(method)

        if handler.unary_unary is not None:
            behavior = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    response = await behavior(request, context)
                except asyncio.CancelledError:  # the client went away (or its deadline passed)
                    CALLS.labels(method, _code_name(context, "CANCELLED")).inc()
                    raise
                except BaseException:
                    CALLS.labels(method, _code_name(context, "UNKNOWN")).inc()
                    raise
                else:
                    code = _code_name(context, "OK")
                    (calls_ok if code == "OK" else CALLS.labels(method, code)).inc()
                    return response
                finally:
                    seconds.observe(time.perf_counter() - started)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            stream_behavior = handler.stream_stream

            async def stream_stream(
                request_iterator: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    async for response in stream_behavior(request_iterator, context):
                        yield response
                except BaseException:
                    CALLS.labels(method, _code_name(context, "CANCELLED")).inc()
                    raise
                else:
                    CALLS.labels(method, _code_name(context, "OK")).inc()
                finally:
                    seconds.observe(time.perf_counter() - started)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # unary-stream (health Watch): left uninstrumented


HEALTH_WATCH_METHOD = "/grpc.health.v1.Health/Watch"
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _SerialWrites:
    """The context a wrapped Watch writes through: one write at a time, the last status kept.

    A Watch cancelled in the middle of a write leaves that write pending in gRPC core, and another
    write on the call then fails (GRPC_CALL_ERROR_TOO_MANY_OPERATIONS): the lock lets the closer
    cancel only between writes.
    """

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self.context = context
        self.lock = asyncio.Lock()
        self.last_status: int | None = None

    async def write(self, message: health_pb2.HealthCheckResponse) -> None:
        async with self.lock:
            await self.context.write(message)
            self.last_status = message.status

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)


class HealthWatchCloser(grpc.aio.ServerInterceptor):
    """Ends every health Watch stream once shutdown begins.

    A Watch never ends on its own, and ``server.stop(grace)`` waits for every call: one connected
    health watcher held each shutdown for the whole grace period. Ended here (after a last
    NOT_SERVING), the watchers leave the grace to the calls that are really in flight.
    """

    def __init__(self) -> None:
        self._closing = asyncio.Event()

    def close_watches(self) -> None:
        """End the open Watch streams and any that start from now on."""
        self._closing.set()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method != HEALTH_WATCH_METHOD:
            return handler
        watch = handler.unary_stream
        closing = self._closing

        async def closable_watch(request: Any, context: grpc.aio.ServicerContext) -> None:
            writes = _SerialWrites(context)
            watching = asyncio.ensure_future(watch(request, writes))
            closed = asyncio.ensure_future(closing.wait())
            try:
                await asyncio.wait((watching, closed), return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the watcher goes away
                closed.cancel()
                async with writes.lock:
                    cancelled = watching.cancel()
                if cancelled:
                    with contextlib.suppress(asyncio.CancelledError):
                        await watching
            if not watching.cancelled():
                watching.result()  # the watch ended by itself: its error is the call's
                return
            if writes.last_status != NOT_SERVING:
                await context.write(health_pb2.HealthCheckResponse(status=NOT_SERVING))

        return grpc.unary_stream_rpc_method_handler(
            closable_watch,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
