"""structlog configuration: JSON lines on stdout for ops, readable console output on a TTY.

Configured once per process (each worker calls it after it starts) so every event carries the same
processors: ISO timestamp, level, logger-bound context such as ``worker``. A command whose stdout is
its result (``sentinel state rebuild``) logs to stderr instead.
"""

from __future__ import annotations

import logging
import sys
from typing import BinaryIO, Literal, TextIO

import orjson
import structlog

LogFormat = Literal["auto", "json", "console"]


class _JsonLines:
    """Where JSON log lines go and from which level, for writers that render their own lines (the
    per-batch decision log); None while logs are console output or not configured."""

    out: BinaryIO | None = None
    level: int = logging.INFO


def level_logged(level: int = logging.INFO) -> bool:
    """Whether events of ``level`` are logged at all: a writer that renders its own lines skips the
    rendering when they are not."""
    return level >= _JsonLines.level


def json_lines_out(level: int = logging.INFO) -> BinaryIO | None:
    """The binary stream JSON log lines are written to when events of ``level`` are logged, else None
    (console format, or a higher level configured): a caller then logs through structlog, or not at all."""
    return _JsonLines.out if level >= _JsonLines.level else None


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
    _JsonLines.out = None if use_console else out.buffer
    _JsonLines.level = numeric_level
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
