"""The 'did you mean' part of option errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Suffix for an error message: the closest valid name, else the full list."""
    candidates = sorted(candidates)
    match = closest(word, candidates)
    if match:
        return f"did you mean '{match}'?"
    return "valid keys: " + ", ".join(candidates)
