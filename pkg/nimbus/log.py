"""structlog set-up shared by every process.

Secrets never reach a log: the redaction processor blanks every event key
that names one, wherever it comes from (a handler, a library, a bound
context). Request ids travel in structlog's contextvars.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

SECRET_KEYS = frozenset({
    "admin_pass", "password", "root_password", "token", "authorization",
    "service_token", "private_key", "secret", "user_data",
})
REDACTED = "***"


def _redact(_logger, _name, event: dict) -> dict:
    for key in event.keys() & SECRET_KEYS:
        event[key] = REDACTED
    return event


def configure(level: str | None = None, json: bool | None = None) -> None:
    """Console logs for a terminal, JSON lines otherwise (Kubernetes)."""
    level = (level or os.environ.get("NIMBUS_LOG_LEVEL", "info")).upper()
    if json is None:
        fmt = os.environ.get("NIMBUS_LOG_FORMAT", "")
        json = fmt == "json" or (fmt != "console" and not sys.stderr.isatty())
    renderer = (structlog.processors.JSONRenderer() if json
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")


get = structlog.get_logger
