"""Multi-GT evaluation as in HGGT: full-reference metrics against every Positive GT (averaged per image)
and against the original, no-reference metrics on SR, and the Gold Standard.

Gold Standard: for each metric that can score a GT on its own (no-reference metrics), the best
value over the group's GTs (the original and every enhanced GT, respecting the metric's
direction), averaged over the groups. Full-reference metrics have no Gold Standard (a GT compared
with itself is perfect).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from sr_iqa.data.groups import Group
from sr_iqa.data.image_io import read_rgb_tensor
from sr_iqa.evaluate.metric_set import MetricSet
from sr_iqa.score_rules import best, nan_aware_means, oriented

GOLD_STANDARD = "Gold Standard"


@dataclass(frozen=True)
class ImageResult:
    """One SR image of one method. ``scores``: FR averaged over the Positive GTs (the original when the group
    has none) plus NR; ``against_original``: FR against the original only."""

    method: str
    image: str
    scores: dict[str, float]
    against_original: dict[str, float]
    positives: int  # Positive GTs the FR scores averaged over (0: the original stood in)


def read_gts(group: Group) -> torch.Tensor:
    """Every GT of a group, read once (Nx3xHxW; the GTs of a group share their size)."""
    return torch.stack([read_rgb_tensor(gt.path) for gt in group.gts])


def positive_references(group: Group, gts: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The Positive GTs of a group; the original alone when there is none (count 0)."""
    positives = group.indices_labelled("Positive")
    if positives:
        return gts[positives], len(positives)
    return gts[:1], 0


@torch.no_grad()
def score_sr(method: str, sr: torch.Tensor, group: Group, gts: torch.Tensor, metric_set: MetricSet) -> ImageResult:
    """HGGT's protocol for one SR image (3xHxW in [0, 1], the size of the group's GTs ``gts``)."""
    references, count = positive_references(group, gts)
    scores = metric_set.score_batch(sr.expand(len(references), -1, -1, -1), references, group.name,
                                    with_no_reference=False)
    averaged = {name: sum(values) / len(values) for name, values in scores.items()}
    averaged |= metric_set.score(sr, None, group.name)  # NR metrics once
    against_original = metric_set.score(sr, gts[0], group.name, with_no_reference=False)
    return ImageResult(method, group.name, averaged, against_original, count)


@torch.no_grad()
def score_gts(group: Group, gts: torch.Tensor, metric_set: MetricSet,
              known: Sequence[Mapping[str, float]] | None = None) -> list[dict[str, float]]:
    """NR scores of every GT of a group, in one batch per metric that ``known`` (per GT, e.g. from the score
    cache) lacks for some GT."""
    known = known or [{} for _ in group.gts]
    missing = [name for name in metric_set.no_reference_names() if any(name not in scores for scores in known)]
    scores = metric_set.score_batch(gts, None, group.name, only=missing) if missing else {}
    return [{name: known[i][name] if name not in scores else scores[name][i] for name in
             metric_set.no_reference_names()} for i in range(len(group.gts))]


def gold_standard(gt_scores: Iterable[Sequence[Mapping[str, float]]],
                  lower_better: Mapping[str, bool]) -> dict[str, float]:
    """Per metric, the best GT value of each group, averaged over the groups."""
    per_group = [{name: best([gt[name] for gt in group], lower_better[name]) for name in lower_better}
                 for group in gt_scores]
    return nan_aware_means(per_group)[0]


def distance_to_gold(summary: Mapping[str, float], gold: Mapping[str, float],
                     lower_better: Mapping[str, bool]) -> dict[str, float]:
    """How much worse than the Gold Standard a method is, per metric (negative: it beats the Gold Standard)."""
    return {name: oriented(gold[name], lower_better[name]) - oriented(summary[name], lower_better[name])
            for name in gold if name in summary}


def mean_over_images(results: Iterable[ImageResult], against_original: bool = False
                     ) -> tuple[dict[str, float], dict[str, int]]:
    """Per metric, the mean over the images (NaN scores left out) and how many were left out."""
    return nan_aware_means(result.against_original if against_original else result.scores for result in results)
