"""structlog configuration: JSON lines on stdout for ops, readable console output on a TTY.

Configured once per process (each worker calls it after it starts) so every event carries the same
processors: ISO timestamp, level, logger-bound context such as ``worker``. A command whose stdout is
its result (``sentinel state rebuild``) logs to stderr instead.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import orjson
import structlog

LogFormat = Literal["auto", "json", "console"]


def configure_logging(level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    """Route structlog (and stdlib logging of libraries) to ``stream`` (default: stdout) in the chosen
    format."""
    out = sys.stdout if stream is None else stream
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    # JSON lines are rendered by orjson straight to bytes: one event per decision must stay cheap.
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer(orjson.dumps)
    )
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=(
            structlog.WriteLoggerFactory(file=out)
            if use_console
            else structlog.BytesLoggerFactory(file=out.buffer)
        ),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.INFO))
