"""Operational logging: one line per record, JSON for machines or text for people.

Every record carries the id of the request it was written for (``request_id``, from a
context variable the HTTP layer sets), and no record carries an API key: anything
shaped like a token is cut to its public key id before it is written.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

# The request being served by this task or thread (None outside requests).
request_id_var: ContextVar[str | None] = ContextVar("kiteline_request_id", default=None)

_TOKEN = re.compile(r"\b(kl_[a-z0-9]{12})_[A-Za-z0-9_-]{43}")
_QUIET = ("alembic", "casbin", "httpx", "httpx2", "httpcore")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestContextFilter(logging.Filter):
    """Adds the request id, and cuts tokens out of the message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        message = record.getMessage()
        if "kl_" in message:
            record.msg = _TOKEN.sub(r"\1_<redacted>", message)
            record.args = None
        return True


def configure_logging(level: str, fmt: str = "text") -> None:
    """Send every record to stderr as JSON (``fmt="json"``) or as text. Like
    ``logging.basicConfig``, it leaves a root logger that already has handlers (a host
    application's, a test runner's) as it is."""
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    else:
        formatter = logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(RequestContextFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's loggers go through the same handler.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
