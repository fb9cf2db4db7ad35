"""Where sr_iqa keeps files it derives once per user: converted NIQE parameters, installed pretrained networks."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$SR_IQA_CACHE``, else ``$XDG_CACHE_HOME/sr_iqa``, else ``~/.cache/sr_iqa``."""
    if "SR_IQA_CACHE" in os.environ:
        return Path(os.environ["SR_IQA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sr_iqa"
