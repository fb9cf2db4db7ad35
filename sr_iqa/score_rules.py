"""How scores are compared and averaged, stated once for every table, sampler and loss.

Direction: a metric is lower-better (NIQE, LPIPS) or higher-better (PSNR, MUSIQ); ``oriented`` turns any score into
its higher-better form (the sign flip), and the rest compares through it.

NaN: a metric that cannot score an image (NIQE on a flat crop) gives NaN. A mean leaves NaN values out and counts
them, so one unscorable image neither turns a method's whole column into NaN nor disappears unnoticed. An infinite
score is no score either: means and ``best`` leave out every non-finite value alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

Score = TypeVar("Score")  # a float, a numpy array or a torch tensor


def oriented(score: Score, lower_better: bool) -> Score:
    """The score with higher meaning better: negated for a lower-better metric."""
    return -score if lower_better else score  # type: ignore[operator]


def is_better(a: float, b: float, lower_better: bool) -> bool:
    return oriented(a, lower_better) > oriented(b, lower_better)


def best(values: Sequence[float], lower_better: bool) -> float:
    """The best finite value (NaN when there is none)."""
    finite = [v for v in values if math.isfinite(v)]
    return max(finite, key=lambda v: oriented(v, lower_better)) if finite else math.nan


def arrow(lower_better: bool) -> str:
    """The table header's mark: ↓ lower is better, ↑ higher is better."""
    return "↓" if lower_better else "↑"


def in_words(lower_better: bool) -> str:
    return "lower is better" if lower_better else "higher is better"


@dataclass(frozen=True)
class NanAwareMean:
    mean: float  # of the finite values; NaN when there is none
    values: int  # finite values averaged
    nan_values: int  # left out: NaN or infinite


def nan_aware_mean(values: Iterable[float]) -> NanAwareMean:
    """The mean of the finite values, and how many were left out (NaN or infinite, as ``best`` leaves them)."""
    listed = [float(v) for v in values]
    finite = [v for v in listed if math.isfinite(v)]
    mean = sum(finite) / len(finite) if finite else math.nan
    return NanAwareMean(mean, len(finite), len(listed) - len(finite))


def nan_aware_means(rows: Iterable[Mapping[str, float]]) -> tuple[dict[str, float], dict[str, int]]:
    """Per key, the NaN-aware mean over the rows, and the NaN values left out (keys with none omitted)."""
    columns: dict[str, list[float]] = {}
    for row in rows:
        for name, value in row.items():
            columns.setdefault(name, []).append(value)
    means = {name: nan_aware_mean(values) for name, values in columns.items()}
    return ({name: m.mean for name, m in means.items()},
            {name: m.nan_values for name, m in means.items() if m.nan_values})
