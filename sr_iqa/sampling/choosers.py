"""The samplers' rule: which of a group's GTs supervises a sample, as a probability over its GTs.

Every sampler draws from a probability vector over the group's GTs (index 0 is the original):

- ``original``: the original always (single-GT training).
- ``rand``: uniform over all GTs.
- ``upos``: uniform over the Positives (HGGT); the original when there is none.
- ``sma``: softmax(Q / tau) over all GTs.
- ``smp``: softmax(Q / tau) over the Positives; the original when there is none.
- ``amo``: the argmax of Q, measured on the training crop (cached: read from the score cache's crop grid; the crop
  box is drawn on that grid; online: ``online_amo``).

Q ("quality") is always higher-is-better: ``as_quality`` orients a lower-better metric (NIQE) first. Ties resolve
to the lowest index. Draws use the sample's own RNG, so they are reproducible and independent per worker and per
rank. The choosers here implement the dataset's hook, ``sr_iqa.data.datasets.GTChooser``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sr_iqa.config.schema import SamplerType
from sr_iqa.data.datasets import CropBox
from sr_iqa.data.groups import Group
from sr_iqa.score_rules import oriented


def as_quality(scores: Sequence[float], lower_better: bool) -> np.ndarray:
    """Scores turned into "higher is better"; a region the metric could not score (NaN) is the worst (-inf)."""
    values = np.asarray(scores, dtype=np.float64)
    values = oriented(values, lower_better)
    return np.where(np.isnan(values), -np.inf, values)


def softmax(values: np.ndarray, tau: float) -> np.ndarray:
    """softmax(values / tau); uniform when no value is finite (no candidate could be scored)."""
    if not np.isfinite(values).any():
        return np.full(len(values), 1.0 / len(values))
    shifted = (values - values.max()) / tau
    weights = np.exp(shifted)
    return weights / weights.sum()


def positive_indices(group: Group) -> list[int]:
    return group.indices_labelled("Positive")


def worst_first(q: np.ndarray) -> np.ndarray:
    """Q negated, so that the argmax or softmax favours the worst; an unscorable GT (-inf) stays never chosen."""
    return np.where(np.isfinite(q), -q, -np.inf)


def candidate_indices(group: Group, exclude_labels: Sequence[str] = (), include_original: bool = True) -> list[int]:
    """The GTs rand, sma and amo choose among: the original (unless left out) and the enhanced GTs whose label is
    not excluded; the original alone when nothing else is left."""
    candidates = [i for i, gt in enumerate(group.gts)
                  if (include_original if i == 0 else gt.label not in exclude_labels)]
    return candidates or [0]


def probabilities(sampler: SamplerType, group: Group, q: np.ndarray | None, tau: float,
                  exclude_labels: Sequence[str] = (), include_original: bool = True,
                  worst: bool = False) -> np.ndarray:
    """The probability of each GT of ``group``; ``q`` holds one Q (higher is better) per GT (not for rand/upos).
    GTs labelled with one of ``exclude_labels`` are never candidates, nor the original without
    ``include_original`` (``candidate_indices``); ``worst``: sma, smp and amo favour the lowest Q instead."""
    count = len(group.gts)
    result = np.zeros(count)
    if sampler is SamplerType.original:
        result[0] = 1.0
        return result
    candidates = candidate_indices(group, exclude_labels, include_original)
    if sampler is SamplerType.rand:
        result[candidates] = 1.0 / len(candidates)
        return result
    if sampler in (SamplerType.upos, SamplerType.smp):
        candidates = positive_indices(group) or [0]
    if sampler is SamplerType.upos:
        result[candidates] = 1.0 / len(candidates)
        return result
    if q is None:
        raise ValueError(f"the {sampler.value} sampler needs scores")
    if worst:
        q = worst_first(np.asarray(q, dtype=np.float64))
    if sampler is SamplerType.amo:
        result[candidates[int(np.argmax(q[candidates]))]] = 1.0  # argmax takes the first of equal maxima
        return result
    result[candidates] = softmax(q[candidates], tau)
    return result


def draw(probability: np.ndarray, rng: np.random.Generator) -> int:
    return int(rng.choice(len(probability), p=probability))


@dataclass
class OriginalGT:
    """Supervise with the original GT (plain single-GT training)."""

    box_stride: int = 1

    def choose(self, position: int, group: Group, box: CropBox, rng: np.random.Generator) -> int:
        return 0

    def quality(self, position: int, group: Group, box: CropBox) -> np.ndarray | None:
        return None


@dataclass
class CachedScoreSampler:
    """A ``GTChooser`` driven by cached scores, so the choice is made before any image is read.

    ``full[position]`` holds the "higher is better" full-image Q of each GT of the group at that position.
    For AMO, ``crops[position][i, row, column]`` is GT i's Q on the box at (row * stride, column * stride);
    the dataset draws its crop boxes on that grid.
    """

    sampler: SamplerType
    tau: float = 1.0
    full: list[np.ndarray] | None = None
    crops: list[np.ndarray] | None = None
    box_stride: int = 1  # the grid crop boxes are drawn on (a multiple of grid_stride for AMO)
    exclude_labels: tuple[str, ...] = ()
    grid_stride: int = 1  # AMO: the stride of the crop-score grid
    include_original: bool = True  # the original is a candidate (rand, sma, amo)
    worst: bool = False  # sampler.choose: worst

    def quality(self, position: int, group: Group, box: CropBox) -> np.ndarray | None:
        if self.sampler is SamplerType.amo:
            return self.crops[position][:, box.top // self.grid_stride, box.left // self.grid_stride]
        return self.full[position] if self.full is not None else None

    def choose(self, position: int, group: Group, box: CropBox, rng: np.random.Generator) -> int:
        return draw(probabilities(self.sampler, group, self.quality(position, group, box), self.tau,
                                  self.exclude_labels, self.include_original, self.worst), rng)


def shuffled_among_gts(per_group: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Each group's Q (GTs on the first axis, crop grids behind it) with its GTs permuted by one permutation per
    group drawn from ``seed``: the negative control's scores, as structured as Q but no longer about its GT."""
    rng = np.random.default_rng(seed)
    return [values[rng.permutation(len(values))] for values in per_group]
