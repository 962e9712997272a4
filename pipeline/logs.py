"""Log output for the command line: readable text, or one JSON object per line for collectors.

``--log-format json`` (or ``VMGATE_LOG_FORMAT=json``) writes each record as a JSON object with
``time`` (RFC 3339, UTC), ``level``, ``logger``, ``message`` and, when an exception is logged,
``exception``; log shippers (Loki, Elasticsearch, Cloud Logging) parse it without patterns.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object."""
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        body: dict[str, object] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send the pipeline's logs to standard error in ``log_format`` (text or json)."""
    if log_format not in LOG_FORMATS:
        msg = f"unknown log format {log_format!r}: use text or json"
        raise ValueError(msg)
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
