"""Server interceptors: count and time every call by method and final status code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

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
