"""structlog configuration: JSON lines on stdout for ops, readable console output on a TTY.

Configured once per process (each worker calls it after it starts) so every event carries the same
processors: ISO timestamp, level, logger-bound context such as ``worker``.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import orjson
import structlog

LogFormat = Literal["auto", "json", "console"]


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Route structlog (and stdlib logging of libraries) to stdout in the chosen format."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
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
            structlog.WriteLoggerFactory(file=sys.stdout)
            if use_console
            else structlog.BytesLoggerFactory(file=sys.stdout.buffer)
        ),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
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
