"""Logging to stderr, one line per event, for journald."""

from __future__ import annotations

import logging
import sys


class OneLineFormatter(logging.Formatter):
    """Folds tracebacks into the line, so journald keeps one entry per event."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
