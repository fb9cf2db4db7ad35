"""A run's Q normalisations: for the sampler and for stage 2's objective, each Q made of several metrics is
normalised by the training GTs' scores in the score cache, once, before training (iqa/combined_q.py). A resumed
run reads back the statistics its run folder recorded, as long as the metrics and weights are the same."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sr_iqa.config.q_metrics import objective_cache
from sr_iqa.config.schema import Options
from sr_iqa.data.groups import Group
from sr_iqa.iqa.combined_q import MetricScale, describe, read_scales
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
        sections[section] = training_scales(groups, cache, weights, options.iqa.metric_options,
                                            f"{section}.metrics")
        log.info("%s: Q = %s (from the scores of %d training GTs in %s)", section, describe(sections[section]),
                 next(iter(sections[section].values())).images, cache.path)
    return sections
