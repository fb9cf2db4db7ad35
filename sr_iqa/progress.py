"""Progress bars: lively on a terminal, one line every 30 s in a log file (CI, cluster jobs)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


def progress_bar(**kwargs: Any) -> tqdm:
    return tqdm(dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30.0, **kwargs)
