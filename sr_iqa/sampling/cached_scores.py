"""Scores for the samplers, read from the score cache once, before training: the full-image Q of every GT (SMA,
SMP) and every GT's crop grid (cached AMO). A missing score is an error naming what to score."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from sr_iqa.config.path_checks import missing_score_cache
from sr_iqa.data.groups import Group
from sr_iqa.errors import DataError, OptionsError
from sr_iqa.iqa.combined_q import MetricScale, metric_scales
from sr_iqa.iqa.score_cache import ImageRecord, ScoreCache, metric_key

log = logging.getLogger("sr_iqa.sampling")


def open_cache(path: str | Path, key: str, metrics: Sequence[str] = (), grid: str = "") -> ScoreCache:
    """The score cache named by option ``key``, read-only: training ranks never write it (a read-only data mount
    will do). A missing one is an error with the command that writes it (``metrics``, and the ``grid`` cached AMO
    reads, `` --grid SIZE:STRIDE``)."""
    if not Path(path).is_file():
        raise OptionsError(missing_score_cache(key, path, metrics, grid))
    return ScoreCache(Path(path), read_only=True)


def _score_command(cache: ScoreCache, metric: str, grid: str = "") -> str:
    """The command that writes what is missing: the training's own option file names the data and the options."""
    name = metric.partition(" ")[0]
    return f"`sr-iqa score -opt <this option file> --metric {name} --cache {cache.path}{grid}`"


def _missing_scores(metric: str, cache: ScoreCache, missing: list[str], grid: str) -> DataError:
    return DataError(f"{len(missing)} image(s) have no '{metric}' score in {cache.path}; run "
                     f"{_score_command(cache, metric, grid)} first:\n" + "\n".join(missing[:20]))


def require_metric(cache: ScoreCache, metric: str, grid: str = "") -> None:
    """``metric``: the cache's key, the pyiqa name followed by its options' JSON when it has any (``-opt`` the
    same option file gives ``score`` those options)."""
    if metric not in cache.metrics():
        raise DataError(f"{cache.path} holds no '{metric}' scores (it has: {', '.join(cache.metrics()) or 'none'}); "
                        f"run {_score_command(cache, metric, grid)}")


def gt_records(groups: Sequence[Group], cache: ScoreCache) -> list[ImageRecord]:
    """Every GT's record, in group order: one read of the images table and one stat per file, so a Q of several
    metrics reads them once for all its metrics."""
    return cache.records([gt.path for group in groups for gt in group.gts])


def full_image_scores(groups: Sequence[Group], cache: ScoreCache, metric: str,
                      records: Sequence[ImageRecord] | None = None) -> list[list[float]]:
    """Raw full-image score of every GT of every group (``records``: their ``gt_records``, read here when not
    given); one DataError lists the images without one."""
    require_metric(cache, metric)
    records = records if records is not None else gt_records(groups, cache)
    table = cache.scores(metric, {r.content_hash for r in records})
    missing = [str(r.path) for r in records if r.full not in table[r.content_hash]]
    if missing:
        raise _missing_scores(metric, cache, missing, "")
    scores = iter([table[r.content_hash][r.full] for r in records])
    return check_scored([[next(scores) for _ in group.gts] for group in groups], metric, cache)


def crop_score_grids(groups: Sequence[Group], cache: ScoreCache, metric: str, size: int, stride: int,
                     records: Sequence[ImageRecord] | None = None) -> list[np.ndarray]:
    """Per group, raw scores shaped (GTs, rows, columns) for every ``size`` box on the ``stride`` grid
    (``records``: as for ``full_image_scores``)."""
    require_metric(cache, metric, f" --grid {size}:{stride}")
    records = records if records is not None else gt_records(groups, cache)
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
    return check_scored(grids, metric, cache)


Scored = TypeVar("Scored", list[float], np.ndarray)


def check_scored(groups: list[Scored], metric: str, cache: ScoreCache) -> list[Scored]:
    """A group the metric could not score (NaN) falls back as the samplers' docs say; every group so would leave
    Q no choice at all, which stops here, and a part of them is said."""
    unscored = sum(not np.isfinite(np.asarray(values, dtype=float)).any() for values in groups)
    if groups and unscored == len(groups):
        raise DataError(f"{cache.path}: every '{metric}' score of the training GTs is NaN (the metric could not "
                        "score them), so Q would choose nothing; score them with a metric that can "
                        "(`sr-iqa score --metric NAME`), or use the rand or upos sampler")
    if unscored:
        log.warning("%s: %d of %d groups have no '%s' score on any GT (NaN) and fall back as the sampler's docs "
                    "say", cache.path, unscored, len(groups), metric)
    return groups


def training_scales(groups: Sequence[Group], cache: ScoreCache, weights: Mapping[str, float],
                    metric_options: Mapping[str, dict[str, Any]], source: str,
                    records: Sequence[ImageRecord] | None = None,
                    crops: tuple[int, int] | None = None) -> dict[str, MetricScale]:
    """Each metric's normalisation from its scores of every GT of ``groups`` (the training set): of the whole
    images, or with ``crops`` (size, stride) of every box of that grid, the population a Q applied to crops
    combines (a metric's spread differs between whole images and crops: PIQE's by a factor of five)."""
    keys = {name: metric_key(name, metric_options.get(name)) for name in weights}
    records = records if records is not None else gt_records(groups, cache)
    if crops is None:
        scores = {name: [q for group in full_image_scores(groups, cache, key, records) for q in group]
                  for name, key in keys.items()}
    else:
        scores = {name: np.concatenate([grid.ravel() for grid in crop_score_grids(groups, cache, key, *crops,
                                                                                    records)]).tolist()
                  for name, key in keys.items()}
    return metric_scales(weights, scores, {name: cache.lower_better(key) for name, key in keys.items()}, source)
