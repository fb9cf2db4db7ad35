"""A run's Q normalisations: for the sampler and for stage 2's objective, each Q made of several metrics is
normalised by the training GTs' scores in the score cache, once, before training (iqa/combined_q.py), on the
population that Q then combines: whole images for SMA and SMP, the ``gt_size`` boxes of the score grid for AMO
(cached or online) and for stage 2, which scores SR crops of that size. A resumed run reads back the statistics
its run folder recorded, as long as the metrics and weights are the same."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sr_iqa.config.q_metrics import objective_cache
from sr_iqa.config.schema import AmoMode, Options, SamplerType
from sr_iqa.data.groups import Group
from sr_iqa.errors import DataError
from sr_iqa.iqa.combined_q import MetricScale, describe, read_scales
from sr_iqa.iqa.score_cache import ScoreCache
from sr_iqa.sampling.cached_scores import open_cache, training_scales

log = logging.getLogger("sr_iqa.sampling")

SAMPLER, OBJECTIVE = "sampler", "train.iqa_opt"  # the sections of the run folder's file, by option key

RunScales = dict[str, dict[str, MetricScale]]


def run_scales(options: Options, groups: Sequence[Group], recorded: Path | None = None) -> RunScales:
    """Per section (``SAMPLER``, ``OBJECTIVE``) whose Q has several metrics, their scales; ``recorded``: the
    run folder's file of a resumed run."""
    previous = read_scales(recorded) if recorded is not None and recorded.is_file() else {}
    iqa_opt = options.train.iqa_opt
    blocks = [(SAMPLER, options.sampler.metrics, options.sampler.cache, "sampler.cache")]
    if iqa_opt is not None:  # the objective's cache: its own, else the sampler's
        blocks.append((OBJECTIVE, iqa_opt.metrics, objective_cache(options),
                       "train.iqa_opt.cache" if iqa_opt.cache is not None else "sampler.cache"))
    sections: RunScales = {}
    for section, weights, cache_path, cache_key in blocks:
        if not weights:
            continue
        kept = previous.get(section)
        if kept is not None and {name: scale.weight for name, scale in kept.items()} == dict(weights):
            sections[section] = kept
            log.info("%s: Q = %s (the statistics recorded in %s)", section, describe(kept), recorded)
            continue
        cache = open_cache(cache_path, cache_key)
        sections[section], population = _scales_on_population(options, section, groups, cache, weights)
        log.info("%s: Q = %s (from %d scores of %s in %s)", section, describe(sections[section]),
                 next(iter(sections[section].values())).images, population, cache.path)
    return sections


def _scales_on_population(options: Options, section: str, groups: Sequence[Group], cache: ScoreCache,
                          weights: dict[str, float]) -> tuple[dict[str, MetricScale], str]:
    """The scales on the population the section's Q combines, and that population in words. Online AMO and stage 2
    use the grid's crop scores when the cache holds them, else the whole images, with a warning saying how to
    score the grid."""
    source = f"{section}.metrics"
    size, stride = options.datasets.train.gt_size, options.sampler.grid_stride
    on_crops = section == OBJECTIVE or options.sampler.type is SamplerType.amo
    if not on_crops:
        return training_scales(groups, cache, weights, options.iqa.metric_options, source), "training GTs (whole)"
    try:
        scales = training_scales(groups, cache, weights, options.iqa.metric_options, source, crops=(size, stride))
        return scales, f"the training GTs' {size}-px crops on the {stride}-px grid"
    except DataError:
        if section == SAMPLER and options.sampler.mode is AmoMode.cached:
            raise  # cached AMO needs that grid anyway: the error names the command
    log.warning("%s: Q is applied to %d-px crops but %s holds no %d:%d grid of every training GT; its metrics are "
                "normalised on whole images instead, whose spread differs from the crops' (run `sr-iqa score "
                "--grid %d:%d` for the crops' own)", section, size, cache.path, size, stride, size, stride)
    scales = training_scales(groups, cache, weights, options.iqa.metric_options, source)
    return scales, "training GTs (whole, no crop grid in the cache)"
