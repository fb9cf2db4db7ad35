"""``sr-iqa label auto``: labels from a no-reference metric, for a set without annotators.

A candidate is Positive when its Q (the metric's score, oriented higher-better) beats the original's by more than
the margin, Negative when it is worse by more than the margin, Similar otherwise. The labels are written as one
annotator named for the metric (``metric-<name>/``), so that indexing, `data check` and `agree` say that a
metric made them, and training reads them as one judgement (a label without votes), not as a person's vote.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.data.groups import METRIC_ANNOTATOR_PREFIX, hggt_label_file, index_hggt
from sr_iqa.data.release_layout import find_splits, labels_folder_of
from sr_iqa.errors import DataError, OptionsError
from sr_iqa.file_names import is_plain_name
from sr_iqa.iqa.score_cache import ScoreCache
from sr_iqa.iqa.scorer import gt_entries, run_scoring
from sr_iqa.sampling.cached_scores import full_image_scores
from sr_iqa.score_rules import oriented


def label_by_margin(candidate: float, original: float, margin: float) -> str:
    """Positive / Similar / Negative from two higher-better scores and the margin in the metric's units."""
    if candidate - original > margin:
        return "Positive"
    if original - candidate > margin:
        return "Negative"
    return "Similar"


def _check_labels_folder(labels: Path, annotator: str) -> None:
    """Refuse to write a metric's labels beside annotators' (they would be counted as one more person)."""
    others = sorted(p.name for p in labels.iterdir() if p.is_dir() and p.name != annotator) if labels.is_dir() else []
    if others:
        raise OptionsError(f"{labels} already holds labels of {', '.join(others)}; a metric's labels stand alone: "
                           "move those folders aside (or label another copy of the set)")


def auto_label(root: Path, metric: str, margin: float, cache: Path, weights_dir: Path | None = None,
               device: str | None = None) -> dict[str, int]:
    """Score every GT of every multi-GT split under ``root`` into ``cache`` and write the metric's label files;
    returns label -> how many candidates got it."""
    annotator = METRIC_ANNOTATOR_PREFIX + metric
    if not is_plain_name(annotator) or not math.isfinite(margin) or margin < 0:
        raise OptionsError(f"--metric {metric!r} / --margin {margin!r}: a metric name and a margin of 0 or more")
    splits = [split for split in find_splits(root) if not split.flat]
    if not splits:
        raise DataError(f"{root}: no multi-GT split (original/ with 01..04/); build one with `sr-iqa data build`")
    for split in splits:
        _check_labels_folder(labels_folder_of(split), annotator)
    indexes = [(split, index_hggt(split.images)) for split in splits]
    groups = [group for _, index in indexes for group in index.groups]
    run_scoring(gt_entries(groups), [metric], cache, None, None, 2, device, weights_dir)
    scores = ScoreCache(cache, read_only=True)
    made_by = {"metric": metric, "margin": margin, "rule": "Positive when Q(candidate) - Q(original) > margin, "
               "Negative when < -margin (Q: the score, higher-better), else Similar",
               "lower_better": scores.lower_better(metric)}
    counts = {"Positive": 0, "Similar": 0, "Negative": 0}
    for split, index in indexes:
        raw = full_image_scores(index.groups, scores, metric)
        for group, group_scores in zip(index.groups, raw, strict=True):
            quality = [oriented(score, made_by["lower_better"]) for score in group_scores]
            labels = {gt.slot: label_by_margin(q, quality[0], margin) for gt, q in zip(group.gts[1:], quality[1:],
                                                                                     strict=True)}
            for label in labels.values():
                counts[label] += 1
            unscored = sum(not math.isfinite(q) for q in quality)
            if unscored:  # the metric could not score an image (NaN): no comparison, so Similar
                counts["not scored, so Similar"] = counts.get("not scored, so Similar", 0) + len(labels)
            path = labels_folder_of(split) / annotator / f"{group.name}.json"
            write_text_atomically(path, json.dumps(hggt_label_file(group.name, list(labels), labels,
                                                                   made_by=made_by), indent=1))
    return counts
