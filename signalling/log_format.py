"""Logs for machines: one JSON object per line (`[log] format = "json"`), stdlib logging.

Lines about a call or a person carry their ids: `call_id`, `participant_id`
and `user_id` come from the record's `extra` when the line names them, else
from the connection the line was logged for (`connection_ids`, set by the
call WebSocket once it has joined or resumed; asyncio tasks started from it
inherit it).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from signalling.config_ops import LogSettings

ID_FIELDS = ("call_id", "participant_id", "user_id")
# The ids of the call WebSocket whose work is being logged ({} outside one).
connection_ids: ContextVar[dict[str, str]] = ContextVar("connection_ids", default={})  # noqa: B039 - never mutated
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def log_as(call_id: str, participant_id: str, user_id: str) -> None:
    """From here on, this task's (and its new tasks') lines are about this participant."""
    connection_ids.set({"call_id": call_id, "participant_id": participant_id, "user_id": user_id})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = connection_ids.get()
        for name in ID_FIELDS:
            value = getattr(record, name, None) or ids.get(name)
            if value:
                out[name] = str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(settings: LogSettings, stream: Any = None) -> None:
    """The root logger's one handler, in the configured format (replaces earlier ones)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
