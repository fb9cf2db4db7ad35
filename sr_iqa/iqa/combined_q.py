"""Q made of several NR metrics, each normalised on its own before the weighted sum.

    Q(x) = sum_m  w_m * (s_m * q_m(x) - c_m) / r_m

``s_m`` is +1 for a higher-better metric and -1 for a lower-better one (``score_rules.oriented``); ``c_m`` is the
median of ``s_m * q_m`` over every GT of the training set (read from the score cache) and ``r_m`` its spread, 1.4826
times the median absolute deviation (the standard deviation for normally spread scores). The sum is higher-better
and in units of each metric's spread over the training GTs, so no metric weighs more because its scale is wider
(NIQE moves by a point where PIQE moves by ten), and an optimiser that games one metric gains only that metric's
share. Median and MAD rather than mean and standard deviation: NIQE of single-block crops has a long tail (on the
demo set's 150 training GTs: median 8.8, a few above 50, up to 99.7), which gives a standard deviation of 13.9
against a MAD spread of 3.1; one outlier GT would otherwise set the scale of the whole term.

Normalising each reward on its own before combining them is how LucidNFT (arXiv 2603.05947) fuses its rewards,
per rollout group; here the statistics are the training GTs', which sr_iqa's score cache already holds.

The scales are fixed before training and written into the run folder (``SCALES_FILE``); a resumed run reads them
back, so its objective does not move when the cache gains scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.errors import DataError
from sr_iqa.iqa.metrics import score_each
from sr_iqa.score_rules import oriented

SCALES_FILE = "q_normalisation.json"  # in the run folder: {section: {metric: MetricScale}}
Scores = TypeVar("Scores", np.ndarray, torch.Tensor)
MAD_TO_STD = 1.4826  # the median absolute deviation of normal data times this is its standard deviation


@dataclass(frozen=True)
class MetricScale:
    """One metric's place in the sum: its weight, direction, and the spread of its training-GT scores."""

    weight: float
    lower_better: bool
    centre: float  # median of the oriented (higher-better) scores
    spread: float  # 1.4826 x their median absolute deviation
    images: int  # scores the statistics come from: one per GT (whole images) or per grid box (crops)

    def normalised(self, scores: Scores) -> Scores:
        """``weight * (oriented(scores) - centre) / spread``: the metric's term of Q."""
        return self.weight * (oriented(scores, self.lower_better) - self.centre) / self.spread


def metric_scales(weights: Mapping[str, float], scores: Mapping[str, Sequence[float]],
                  lower_better: Mapping[str, bool], source: str) -> dict[str, MetricScale]:
    """Each metric's scale from its raw scores of the training GTs (NaN left out); a metric whose scores do not
    spread (fewer than two finite values, or all equal) cannot be normalised and is refused, naming ``source``."""
    scales = {}
    for name, weight in weights.items():
        values = oriented(np.asarray(scores[name], dtype=np.float64), lower_better[name])
        values = values[np.isfinite(values)]
        centre = float(np.median(values)) if len(values) else math.nan
        spread = MAD_TO_STD * float(np.median(np.abs(values - centre))) if len(values) else math.nan
        if len(values) < 2 or not spread > 0:
            raise DataError(f"{source}: '{name}' cannot be normalised: its {len(values)} finite score(s) of the "
                            "training GTs do not spread (Q of several metrics divides each by the median absolute "
                            "deviation); score more training images or leave the metric out")
        scales[name] = MetricScale(float(weight), lower_better[name], centre, spread, len(values))
    return scales


def combined(per_metric: Mapping[str, Scores], scales: Mapping[str, MetricScale]) -> Scores:
    """Q from each metric's raw scores (arrays of one shape): the sum of the normalised terms; NaN where any is."""
    terms = [scales[name].normalised(per_metric[name]) for name in scales]
    return sum(terms[1:], terms[0])


class CombinedQ(torch.nn.Module):
    """Q of several metrics as one higher-better metric module: per-image values, NaN for an image one of them
    cannot score. Wraps inference metrics (online AMO) or loss forms (stage 2) alike."""

    lower_better = False

    def __init__(self, metrics: Mapping[str, torch.nn.Module], scales: Mapping[str, MetricScale]) -> None:
        super().__init__()
        self.names = list(scales)
        self.metrics = torch.nn.ModuleList(metrics[name] for name in self.names)
        self.scales = dict(scales)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        per_metric = {name: score_each(metric, image)[0] for name, metric in zip(self.names, self.metrics,
                                                                                 strict=True)}
        return combined(per_metric, self.scales)


def describe(scales: Mapping[str, MetricScale]) -> str:
    """One log line: each term with its weight and the statistics it is divided by."""
    def term(name: str, scale: MetricScale) -> str:
        difference = f"{-scale.centre:.4g} - {name}" if scale.lower_better else f"{name} - {scale.centre:.4g}"
        return f"{scale.weight:g} x ({difference}) / {scale.spread:.4g}"

    return " + ".join(term(name, scale) for name, scale in scales.items())


def write_scales(path: Path, sections: Mapping[str, Mapping[str, MetricScale]]) -> None:
    write_text_atomically(path, json.dumps({section: {name: asdict(scale) for name, scale in scales.items()}
                                            for section, scales in sections.items()}, indent=1) + "\n")


SCORE_LIMIT = 1e12  # far beyond any metric's scores; 1e308 passes isfinite and overflows the first difference


def _check_recorded(name: str, scale: MetricScale) -> None:
    """A recorded scale as ``metric_scales`` writes it (the file may have been edited or damaged)."""
    numbers = (scale.weight, scale.centre, scale.spread)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= SCORE_LIMIT for v in numbers):
        raise ValueError(f"'{name}' needs weight, centre and spread within +-{SCORE_LIMIT:g}")
    if not (scale.weight > 0 and scale.spread > 0 and isinstance(scale.lower_better, bool)
            and isinstance(scale.images, int) and not isinstance(scale.images, bool) and scale.images >= 1):
        raise ValueError(f"'{name}' needs a positive weight and spread, lower_better true or false and a count of "
                         "images")


def read_scales(path: Path) -> dict[str, dict[str, MetricScale]]:
    try:
        recorded = json.loads(path.read_text())
        sections = {section: {name: MetricScale(**fields) for name, fields in scales.items()}
                    for section, scales in recorded.items()}
        for scales in sections.values():
            for name, scale in scales.items():
                _check_recorded(name, scale)
        return sections
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise DataError(f"{path}: not a Q normalisation file written by sr_iqa ({error}); delete it to measure the "
                        "statistics again from the score cache") from None
