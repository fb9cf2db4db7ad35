"""The training's sampler from its options: the chooser the dataset calls for every sample, with the scores it
needs read from the cache once, here, never per sample."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sr_iqa.config.path_checks import score_grid_flag
from sr_iqa.config.q_metrics import weighted_metrics
from sr_iqa.config.schema import AmoMode, QChoice, SamplerOptions, SamplerType
from sr_iqa.data.datasets import GTChooser
from sr_iqa.data.groups import Group
from sr_iqa.iqa.combined_q import MetricScale, combined
from sr_iqa.iqa.score_cache import ScoreCache, metric_key
from sr_iqa.sampling.cached_scores import (
    crop_score_grids,
    full_image_scores,
    gt_records,
    open_cache,
    require_metric,
)
from sr_iqa.sampling.choosers import (
    CachedScoreSampler,
    OriginalGT,
    as_quality,
    positive_indices,
    shuffled_among_gts,
)
from sr_iqa.sampling.online_amo import OnlineAmoCrops

log = logging.getLogger("sr_iqa.sampling")


def build_chooser(options: SamplerOptions, groups: Sequence[Group], gt_size: int,
                  metric_options: Mapping[str, dict[str, Any]] | None = None,
                  scales: Mapping[str, MetricScale] | None = None) -> GTChooser:
    """The ``GTChooser`` for training: scores are read from the cache once, here, never per sample.

    ``sampler.metric`` is a pyiqa name, as online AMO and ``sr-iqa score --metric`` take it; with an entry in
    ``iqa.metric_options`` (``metric_options``), its scores are those that ``score`` stored under the name and
    those options. ``sampler.metrics`` (several metrics) needs their ``scales`` (``q_scales.run_scales``)."""
    boxes = options.box_stride or 1  # every sampler's crop grid (cached AMO: its score grid when not given)
    if options.type is SamplerType.original:
        return OriginalGT(boxes)
    if options.type in (SamplerType.upos, SamplerType.smp):
        without = sum(not positive_indices(group) for group in groups)
        log.info("%s: %d of %d groups have no Positive and fall back to the original GT", options.type.value,
                 without, len(groups))
    choice = {"exclude_labels": tuple(options.exclude_labels), "include_original": options.include_original,
              "worst": options.choose is QChoice.worst}
    if options.type in (SamplerType.rand, SamplerType.upos):
        return CachedScoreSampler(options.type, options.tau, box_stride=boxes, **choice)
    if options.type is SamplerType.amo and options.mode is AmoMode.online:
        return OnlineAmoCrops(boxes)  # every GT's crop is read; OnlineAmo picks on the device
    keys = {name: metric_key(name, (metric_options or {}).get(name)) for name in weighted_metrics(options)}
    cache = open_cache(options.cache, "sampler.cache", list(weighted_metrics(options)),
                       score_grid_flag(options, gt_size))
    for key in keys.values():
        require_metric(cache, key)
    records = gt_records(groups, cache)  # once for every metric of Q
    if options.type is SamplerType.amo:
        grids = {name: crop_score_grids(groups, cache, key, gt_size, options.grid_stride, records)
                 for name, key in keys.items()}
        crops = _maybe_shuffled(_qualities(grids, keys, cache, scales), options.shuffle_seed)
        return CachedScoreSampler(options.type, options.tau, crops=crops,
                                  box_stride=options.box_stride or options.grid_stride,
                                  grid_stride=options.grid_stride, **choice)
    full = {name: [np.asarray(q) for q in full_image_scores(groups, cache, key, records)]
            for name, key in keys.items()}
    qualities = _maybe_shuffled(_qualities(full, keys, cache, scales), options.shuffle_seed)
    return CachedScoreSampler(options.type, options.tau, full=qualities, box_stride=boxes, **choice)


def _maybe_shuffled(qualities: list[np.ndarray], seed: int | None) -> list[np.ndarray]:
    if seed is None:
        return qualities
    log.info("sampler.shuffle_seed %d: Q permuted among each group's GTs (a negative control)", seed)
    return shuffled_among_gts(qualities, seed)


def _qualities(per_metric: Mapping[str, list[np.ndarray]], keys: Mapping[str, str], cache: ScoreCache,
               scales: Mapping[str, MetricScale] | None) -> list[np.ndarray]:
    """Per group, Q (higher is better, -inf where not scorable): the one metric's scores oriented, or the
    normalised sum of several (``scales``)."""
    if not scales:
        (name, key), = keys.items()
        return [as_quality(scores, cache.lower_better(key)) for scores in per_metric[name]]
    groups = len(next(iter(per_metric.values())))
    return [as_quality(combined({name: values[i] for name, values in per_metric.items()}, scales), False)
            for i in range(groups)]
