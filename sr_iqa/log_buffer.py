"""What a command logs before its run folder exists (option mappings, ignored keys, the data summary), kept
so that the run's ``logs/train.log`` starts with it too."""

from __future__ import annotations

import logging
from pathlib import Path

from sr_iqa.atomic_files import open_appending


class StartupLogBuffer(logging.Handler):
    """Holds records (at most ``capacity``) until ``replay_into`` hands them to the run's file handler."""

    def __init__(self, capacity: int = 10_000) -> None:
        super().__init__()
        self.capacity = capacity
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < self.capacity:
            self.records.append(record)

    def replay_into(self, handler: logging.Handler) -> None:
        for record in self.records:
            if record.levelno >= handler.level:
                handler.handle(record)
        self.records.clear()


class RunLogFile(logging.FileHandler):
    """``logs/train.log``: a file handler that never opens its file through a symbolic link."""

    def _open(self):  # noqa: ANN202 - logging's own hook
        return open_appending(Path(self.baseFilename))


def replay_startup_log(logger: logging.Logger, handler: logging.Handler) -> None:
    """Write what the buffers of ``logger`` hold into ``handler``, and stop buffering."""
    for buffer in [h for h in logger.handlers if isinstance(h, StartupLogBuffer)]:
        buffer.replay_into(handler)
        logger.removeHandler(buffer)
