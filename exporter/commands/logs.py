"""Logging set-up: one line per record, as text or JSON, on standard error."""

from __future__ import annotations

import json
import logging
import sys
import time

from exporter.alerting.redact import SECRETS


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
    root = logging.getLogger()
    numeric = logging.getLevelName(level.upper())
    handler.setLevel(numeric)
    # Every record, ours and the libraries', without secrets and on one printable line.
    handler.addFilter(SECRETS)
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # watchdog's warnings must always be created, whatever the log level: its "queue
    # overflowed" line is what triggers a rescan (the handler above still filters what
    # is printed). Its debug chatter is never wanted.
    logging.getLogger("watchdog").setLevel(
        logging.WARNING if numeric >= logging.WARNING else logging.INFO
    )
