"""Structured logs: one JSON object per line when ``Settings.log_json`` (``ORCH_LOG_JSON=true``).

Every line has ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and ``message``; a
record with an exception adds ``exc_type`` and ``exc`` (the traceback as text); attributes passed
with ``extra=`` are kept as fields (their values as JSON when they can be, else as text). Log
shippers (Loki, Elasticsearch, Cloud Logging) read these lines without a parsing rule.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Final

import orjson

__all__ = ["JsonFormatter", "logging_config"]

_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime", "taskName"}
)


def _default(value: Any) -> str:
    return repr(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value
        return orjson.dumps(out, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


def logging_config(level: str, *, json: bool) -> dict[str, Any] | None:
    """A ``logging.config.dictConfig`` for the worker: JSON lines on stdout when ``json``, else None
    (Faust's own coloured format)."""
    if not json:
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
                "level": level,
            }
        },
        "root": {"level": level, "handlers": ["default"]},
    }
