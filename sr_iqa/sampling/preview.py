"""``sr-iqa sampler preview``: what a sampler would pick on a data set, before any GPU hour is spent.

One CSV row per GT: ``group,slot,label,score,probability``, the probability being that of a
full-image choice. The summary compares the mean score of the expected chosen GT with the mean
per-group best, which is how far tau is from greedy.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.config.schema import SamplerType
from sr_iqa.data.groups import Group
from sr_iqa.iqa.combined_q import combined, describe
from sr_iqa.iqa.score_cache import ScoreCache
from sr_iqa.sampling.cached_scores import full_image_scores, gt_records, training_scales
from sr_iqa.sampling.choosers import as_quality, probabilities
from sr_iqa.score_rules import in_words


def preview(groups: Sequence[Group], cache: ScoreCache, weights: Mapping[str, float], sampler: SamplerType,
            tau: float) -> tuple[str, str]:
    """(CSV text, summary text). One metric: its raw score; several (``weights``): Q, their normalised weighted sum
    (higher is better), as ``sampler.metrics`` trains."""
    if len(weights) == 1:
        (metric,) = weights
        lower_better = cache.lower_better(metric)
        scores = full_image_scores(groups, cache, metric)
        name = metric
    else:
        records = gt_records(groups, cache)  # once for every metric
        scales = training_scales(groups, cache, weights, {}, "--metric", records)
        per_metric = {metric: full_image_scores(groups, cache, metric, records) for metric in weights}
        scores = [list(combined({m: np.asarray(per_metric[m][i]) for m in weights}, scales))
                  for i in range(len(groups))]
        lower_better, name = False, f"Q = {describe(scales)}"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["group", "slot", "label", "score", "probability"])
    expected, best = [], []
    for group, group_scores in zip(groups, scores, strict=True):
        q = as_quality(group_scores, lower_better)
        probability = probabilities(sampler, group, q, tau)
        for gt, score, p in zip(group.gts, group_scores, probability, strict=True):
            writer.writerow([group.name, gt.slot, gt.label or ("original" if gt.slot == "original" else ""),
                             repr(float(score)), repr(float(p))])
        expected.append(float(np.dot(probability, group_scores)))
        best.append(group_scores[int(np.argmax(q))])
    summary = (f"{sampler.value} (tau {tau}) on {len(groups)} groups, {name} ({in_words(lower_better)}): "
               f"mean score of the expected chosen GT {statistics.fmean(expected):.4f}, "
               f"mean per-group best {statistics.fmean(best):.4f}")
    return out.getvalue(), summary


def write_or_print(csv_text: str, out: Path | None) -> None:
    if out is None:
        print(csv_text, end="")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(out, csv_text)
