"""Seeds summarised as a mean and a 95% confidence interval (Student's t): how far an ablation's ordering can be
trusted. A NaN score (a metric that could not score a run) is left out of the mean and the interval and counted
(``sr_iqa.score_rules``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scipy import stats

from sr_iqa.score_rules import nan_aware_mean

CONFIDENCE = 0.95


@dataclass(frozen=True)
class SeedSummary:
    mean: float
    half_width: float  # of the 95% interval: mean +- half_width; NaN with fewer than two finite seeds
    seeds: int  # finite values summarised
    nan_seeds: int  # left out

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def cell(self) -> str:
        """``mean ± half width`` for a table (the mean alone with one seed)."""
        if math.isnan(self.mean):
            return "nan"
        text = f"{self.mean:.4f}" if math.isnan(self.half_width) else f"{self.mean:.4f} ± {self.half_width:.4f}"
        return text + (f" ({self.nan_seeds} NaN)" if self.nan_seeds else "")


def summarise_seeds(values: Sequence[float]) -> SeedSummary:
    """Mean and the half width t_{0.975, n-1} * s / sqrt(n) of the finite values (s: the sample standard deviation)."""
    average = nan_aware_mean(values)  # the rule for NaN, stated once in score_rules
    finite = [float(v) for v in values if not math.isnan(v)]
    n, mean = average.values, average.mean
    if n < 2:
        return SeedSummary(mean, math.nan, n, average.nan_values)
    deviation = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    half_width = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * deviation / math.sqrt(n)
    return SeedSummary(mean, half_width, n, average.nan_values)
