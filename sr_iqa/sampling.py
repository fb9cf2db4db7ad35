"""The five GT samplers: which of a group's GTs supervises a sample.

Every sampler draws from a probability vector over the group's GTs (index 0 is the original):

- ``rand``: uniform over all GTs.
- ``upos``: uniform over the Positives (HGGT); the original when there is none.
- ``sma``: softmax(Q / tau) over all GTs.
- ``smp``: softmax(Q / tau) over the Positives; the original when there is none.
- ``amo``: the argmax of Q, measured on the training crop (cached: read from the score cache's
  crop grid; the crop box is drawn on that grid).

Q is always "higher is better": a lower-better metric (NIQE) is negated first. Ties resolve to
the lowest index. Draws use the sample's own RNG, so they are reproducible and independent per
worker and per rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from sr_iqa.data.datasets import CropBox
from sr_iqa.data.groups import Group
from sr_iqa.iqa.score_cache import Region


class SamplerType(str, Enum):
    rand = "rand"
    upos = "upos"
    sma = "sma"
    smp = "smp"
    amo = "amo"


def goodness(scores: Sequence[float], lower_better: bool) -> np.ndarray:
    """Scores turned into "higher is better"."""
    values = np.asarray(scores, dtype=np.float64)
    return -values if lower_better else values


def softmax(values: np.ndarray, tau: float) -> np.ndarray:
    shifted = (values - values.max()) / tau
    weights = np.exp(shifted)
    return weights / weights.sum()


def positive_indices(group: Group) -> list[int]:
    return group.indices_labelled("Positive")


def probabilities(sampler: SamplerType, group: Group, q: np.ndarray | None, tau: float) -> np.ndarray:
    """The probability of each GT of ``group``; ``q`` holds one "higher is better" score per GT (not for rand/upos)."""
    count = len(group.gts)
    result = np.zeros(count)
    if sampler is SamplerType.rand:
        result[:] = 1.0 / count
        return result
    candidates = list(range(count))
    if sampler in (SamplerType.upos, SamplerType.smp):
        candidates = positive_indices(group) or [0]
    if sampler is SamplerType.upos:
        result[candidates] = 1.0 / len(candidates)
        return result
    if q is None:
        raise ValueError(f"the {sampler.value} sampler needs scores")
    if sampler is SamplerType.amo:
        result[candidates[int(np.argmax(q[candidates]))]] = 1.0  # argmax takes the first of equal maxima
        return result
    result[candidates] = softmax(q[candidates], tau)
    return result


def draw(probability: np.ndarray, rng: np.random.Generator) -> int:
    return int(rng.choice(len(probability), p=probability))


@dataclass
class CachedScoreSampler:
    """A ``GTChooser`` driven by cached scores, so the choice is made before any image is read.

    ``full[position]`` holds the "higher is better" full-image score of each GT of the group at that position;
    ``crops[position][i]`` maps crop regions to GT i's score (cached AMO draws its crop box on that grid).
    """

    sampler: SamplerType
    tau: float = 1.0
    full: list[np.ndarray] | None = None
    crops: list[list[dict[Region, float]]] | None = None

    def __call__(self, position: int, group: Group, box: CropBox, rng: np.random.Generator) -> int:
        if self.sampler is SamplerType.amo:
            region = Region(box.left, box.top, box.size, box.size)
            q = np.array([gt_crops[region] for gt_crops in self.crops[position]])
        else:
            q = self.full[position] if self.full is not None else None
        return draw(probabilities(self.sampler, group, q, self.tau), rng)
