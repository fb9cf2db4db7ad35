"""The training's sampler from its options: the chooser the dataset calls for every sample, with the scores it
needs read from the cache once, here, never per sample."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sr_iqa.config.schema import AmoMode, SamplerOptions, SamplerType
from sr_iqa.data.datasets import GTChooser
from sr_iqa.data.groups import Group
from sr_iqa.errors import OptionsError
from sr_iqa.iqa.score_cache import ScoreCache, metric_key
from sr_iqa.sampling.cached_scores import crop_score_grids, full_image_scores, require_metric
from sr_iqa.sampling.choosers import CachedScoreSampler, OriginalGT, as_quality, positive_indices
from sr_iqa.sampling.online_amo import OnlineAmoCrops

log = logging.getLogger("sr_iqa.sampling")


def build_chooser(options: SamplerOptions, groups: Sequence[Group], gt_size: int,
                  metric_options: Mapping[str, dict[str, Any]] | None = None) -> GTChooser:
    """The ``GTChooser`` for training: scores are read from the cache once, here, never per sample.

    ``sampler.metric`` is a pyiqa name, as online AMO and ``sr-iqa score --metric`` take it; with an entry in
    ``iqa.metric_options`` (``metric_options``), its scores are those that ``score`` stored under the name and
    those options."""
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
        return OnlineAmoCrops(boxes)  # every GT's crop is read; OnlineAmo picks on the device
    path = Path(options.cache)
    if not path.is_file():
        raise OptionsError(f"sampler.cache: no score cache at {path}; write it with `sr-iqa score`")
    cache = ScoreCache(path, read_only=True)  # training ranks never write it (a read-only data mount will do)
    key = metric_key(options.metric, (metric_options or {}).get(options.metric))
    require_metric(cache, key)
    lower_better = cache.lower_better(key)
    if options.type is SamplerType.amo:
        grids = crop_score_grids(groups, cache, key, gt_size, options.grid_stride)
        return CachedScoreSampler(options.type, options.tau, crops=[as_quality(g, lower_better) for g in grids],
                                  box_stride=options.box_stride or options.grid_stride, exclude_labels=exclude,
                                  grid_stride=options.grid_stride)
    full = full_image_scores(groups, cache, key)
    return CachedScoreSampler(options.type, options.tau, full=[as_quality(f, lower_better) for f in full],
                              box_stride=boxes, exclude_labels=exclude)
