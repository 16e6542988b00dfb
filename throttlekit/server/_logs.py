"""The server's log output: ``--log-format text`` (one human line per record) or ``json`` (one JSON
object per line: ``time`` (UTC, ISO 8601 with ms), ``level``, ``logger``, ``event`` (the rendered message)
and any structured fields a call passed with ``extra=``, plus ``exc`` for an exception).

Log lines never carry a client key or a secret at the default level: the service logs errors through
:func:`~throttlekit._errors.loggable` and never logs request keys; the Monitor secret is never logged
(the startup line says ``monitor:secret``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

__all__ = ["JsonFormatter", "configure_logging"]

#: LogRecord attributes that are not a call's structured fields.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out:
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every log record (the root logger) to ``stream`` (stderr) as ``fmt`` (``text``/``json``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
