"""Progress bars: lively on a terminal, one plain line every 30 s in a log file (CI, cluster jobs)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm.auto import tqdm


class _Lines:
    """Where tqdm writes when standard error is not a terminal: each refresh becomes one line of its own instead
    of a carriage return that rewrites the previous one (which a log file keeps as one ever-growing line)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(**kwargs: Any) -> tqdm:
    if sys.stderr.isatty():
        return tqdm(dynamic_ncols=True, mininterval=0.5, **kwargs)
    return tqdm(file=_Lines(sys.stderr), ncols=100, mininterval=30.0, **kwargs)
