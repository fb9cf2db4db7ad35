"""A second ``sr-iqa demo`` with nothing changed prints the saved table instead of validating the three runs and
evaluating seven methods again (two minutes idle, far more on a loaded machine).

The table is saved with a fingerprint of what it was computed from: each run's resolved options, the weights
files its folder holds (name, size, time), the demo set's marker and sr_iqa's version. Anything else (an override,
a run stopped before the table was written, a rebuilt set, ``--fresh``) trains or resumes and evaluates again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import sr_iqa
from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.config import Options, options_to_yaml
from sr_iqa.json_text import read_json_file

FINGERPRINT_FILE = "demo_fingerprint.json"


def fingerprint(runs: Sequence[Options], data_marker: Path) -> dict[str, object]:
    """What a table of these runs on this data was computed from."""
    entries: dict[str, object] = {"sr_iqa": sr_iqa.__version__, "data": _file_state(data_marker)}
    for options in runs:
        models = Path(options.path.experiments_root) / options.name / "models"
        weights = sorted(_file_state(path) for path in models.glob("*.safetensors")) if models.is_dir() else []
        entries[options.name] = {"options": hashlib.sha256(options_to_yaml(options).encode()).hexdigest(),
                                 "weights": weights}
    return entries


def _file_state(path: Path) -> list[object]:
    stat = path.stat() if path.is_file() else None
    return [path.name, stat.st_size if stat else None, stat.st_mtime_ns if stat else None]


def saved_results(folder: Path, current: dict[str, object]) -> tuple[str, str] | None:
    """(the whole saved text, its table) when ``folder`` holds results of exactly ``current``; else None."""
    try:
        saved = read_json_file(folder / FINGERPRINT_FILE)
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(saved, dict) or saved.get("fingerprint") != json.loads(json.dumps(current)):
        return None
    text, table = saved.get("text"), saved.get("table")
    return (text, table) if isinstance(text, str) and isinstance(table, str) else None


def save_results(folder: Path, current: dict[str, object], text: str, table: str) -> None:
    """Written last, after the table: a demo killed before it is never taken as finished."""
    write_text_atomically(folder / FINGERPRINT_FILE,
                          json.dumps({"fingerprint": current, "text": text, "table": table}, indent=1) + "\n")
