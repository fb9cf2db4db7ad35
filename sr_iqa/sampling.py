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

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_iqa.config.schema import AmoMode, SamplerOptions, SamplerType
from sr_iqa.data.datasets import CropBox, GTChooser, OriginalGT
from sr_iqa.data.groups import Group
from sr_iqa.errors import DataError, OptionsError
from sr_iqa.iqa.metrics import score_each
from sr_iqa.iqa.score_cache import ScoreCache
from sr_iqa.score_rules import oriented

log = logging.getLogger("sr_iqa.sampling")


def goodness(scores: Sequence[float], lower_better: bool) -> np.ndarray:
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


def probabilities(sampler: SamplerType, group: Group, q: np.ndarray | None, tau: float,
                  exclude_labels: Sequence[str] = ()) -> np.ndarray:
    """The probability of each GT of ``group``; ``q`` holds one "higher is better" score per GT (not for rand/upos).
    GTs labelled with one of ``exclude_labels`` are never candidates (the original always is, for rand/sma/amo)."""
    count = len(group.gts)
    result = np.zeros(count)
    if sampler is SamplerType.original:
        result[0] = 1.0
        return result
    candidates = [i for i, gt in enumerate(group.gts) if i == 0 or gt.label not in exclude_labels]
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

    def quality(self, position: int, group: Group, box: CropBox) -> np.ndarray | None:
        if self.sampler is SamplerType.amo:
            return self.crops[position][:, box.top // self.grid_stride, box.left // self.grid_stride]
        return self.full[position] if self.full is not None else None

    def choose(self, position: int, group: Group, box: CropBox, rng: np.random.Generator) -> int:
        return draw(probabilities(self.sampler, group, self.quality(position, group, box), self.tau,
                                  self.exclude_labels), rng)


def _missing_scores(metric: str, cache: ScoreCache, missing: list[str], hint: str) -> DataError:
    return DataError(f"{len(missing)} image(s) have no '{metric}' score in {cache.path}; run `sr-iqa score "
                     f"--metric {metric}{hint}` first:\n" + "\n".join(missing[:20]))


def require_metric(cache: ScoreCache, metric: str) -> None:
    if metric not in cache.metrics():
        raise DataError(f"{cache.path} holds no '{metric}' scores (it has: {', '.join(cache.metrics()) or 'none'}); "
                        f"run `sr-iqa score --metric {metric}`")


def full_image_scores(groups: Sequence[Group], cache: ScoreCache, metric: str) -> list[list[float]]:
    """Raw full-image score of every GT of every group; one DataError lists the images without one."""
    require_metric(cache, metric)
    records = cache.records([gt.path for group in groups for gt in group.gts])
    table = cache.scores(metric, {r.content_hash for r in records})
    missing = [str(r.path) for r in records if r.full not in table[r.content_hash]]
    if missing:
        raise _missing_scores(metric, cache, missing, "")
    scores = iter([table[r.content_hash][r.full] for r in records])
    return [[next(scores) for _ in group.gts] for group in groups]


def crop_score_grids(groups: Sequence[Group], cache: ScoreCache, metric: str, size: int,
                     stride: int) -> list[np.ndarray]:
    """Per group, raw scores shaped (GTs, rows, columns) for every ``size`` box on the ``stride`` grid."""
    require_metric(cache, metric)
    records = cache.records([gt.path for group in groups for gt in group.gts])
    values, present, offsets = cache.grid_scores(metric, records, size, stride)
    grids, missing, position = [], [], 0
    for group in groups:
        first = records[position]
        rows, columns = (first.height - size) // stride + 1, (first.width - size) // stride + 1
        start = offsets[position]
        count = len(group.gts) * rows * columns  # a group's GTs share their size: their boxes follow each other
        grids.append(values[start:start + count].reshape(len(group.gts), rows, columns))
        complete = present[start:start + count].reshape(len(group.gts), -1).all(axis=1)
        missing += [str(records[position + i].path) for i in np.flatnonzero(~complete)]
        position += len(group.gts)
    if missing:
        raise _missing_scores(metric, cache, missing, f" --grid {size}:{stride}")
    return grids


def build_chooser(options: SamplerOptions, groups: Sequence[Group], gt_size: int) -> GTChooser:
    """The ``GTChooser`` for training: scores are read from the cache once, here, never per sample."""
    boxes = options.box_stride or 1  # every sampler's crop grid (cached AMO: its score grid when not given)
    if options.type is SamplerType.original:
        return OriginalGT(boxes)
    if options.type in (SamplerType.upos, SamplerType.smp):
        without = sum(not positive_indices(group) for group in groups)
        log.info("%s: %d of %d groups have no Positive and fall back to the original GT", options.type.value,
                 without, len(groups))
    exclude = tuple(options.exclude_labels)
    if options.type in (SamplerType.rand, SamplerType.upos):
        return CachedScoreSampler(options.type, options.tau, box_stride=boxes, exclude_labels=exclude)
    if options.type is SamplerType.amo and options.mode is AmoMode.online:
        return OriginalGT(boxes)  # the dataset loads every GT crop; the trainer picks on the device
    path = Path(options.cache)
    if not path.is_file():
        raise OptionsError(f"sampler.cache: no score cache at {path}; write it with `sr-iqa score`")
    cache = ScoreCache(path, read_only=True)  # training ranks never write it (a read-only data mount will do)
    require_metric(cache, options.metric)
    lower_better = cache.lower_better(options.metric)
    if options.type is SamplerType.amo:
        grids = crop_score_grids(groups, cache, options.metric, gt_size, options.grid_stride)
        return CachedScoreSampler(options.type, options.tau, crops=[goodness(g, lower_better) for g in grids],
                                  box_stride=options.box_stride or options.grid_stride, exclude_labels=exclude,
                                  grid_stride=options.grid_stride)
    full = full_image_scores(groups, cache, options.metric)
    return CachedScoreSampler(options.type, options.tau, full=[goodness(f, lower_better) for f in full],
                              box_stride=boxes, exclude_labels=exclude)


@torch.no_grad()
def online_amo_choice(candidates: torch.Tensor, mask: torch.Tensor, metric: torch.nn.Module,
                      lower_better: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's AMO: Q of every GT crop (B x n x 3 x H x W) on the device; returns (argmax index, Q per GT)."""
    batch, count = candidates.shape[:2]
    q = score_each(metric, candidates.flatten(0, 1))[0].view(batch, count)  # NaN where a crop cannot be scored
    q = oriented(q, lower_better)
    q = q.nan_to_num(nan=float("-inf")).masked_fill(~mask, float("-inf"))
    return q.argmax(dim=1), q  # argmax takes the first of equal maxima, as the cached AMO does
