"""Which held-out images a method games: its Q beats the best GT of the group while no judge (a monitor the model
never trained on) does. Q can be pushed past every photo a person would take as the target; the judges then say
whether the image got better or only its Q did. The fraction of such images is reported per run, beside the
gaming gap of stage 2 (which compares a run with its own stage-1 model, not with the GTs).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from sr_iqa.score_rules import best, is_better

GAMING_IMAGES = "gaming images"  # the measure's name: the fraction of held-out images, lower is better


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def best_judge_scores(gt_scores: Path, judges: Sequence[str], lower_better: Mapping[str, bool]
                      ) -> dict[str, dict[str, float]]:
    """group -> judge -> the best score any of its GTs (the original included) reaches: the Gold Standard per
    group, from the evaluation's ``gt_scores.csv``."""
    scores: dict[str, dict[str, list[float]]] = {}
    with gt_scores.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for judge in judges:
                scores.setdefault(row["group"], {}).setdefault(judge, []).append(_number(row.get(judge)))
    return {group: {judge: best(values, lower_better[judge]) for judge, values in by_judge.items()}
            for group, by_judge in scores.items()}


def gaming_fraction(evaluation: Path, label: str, sr_q: Mapping[str, float], best_q: Mapping[str, float],
                    judges: Sequence[str], lower_better: Mapping[str, bool]) -> float:
    """The fraction of held-out images where the method's Q (``sr_q``: image -> Q of its SR image) beats the
    group's best GT (``best_q``, measured as the gate measures it) while none of ``judges`` scores the SR image
    above that judge's best GT; NaN without images or judges. ``lower_better`` holds "Q" and each judge."""
    if not judges:
        return math.nan
    with (evaluation / "per_image.csv").open(newline="") as handle:
        sr_scores = {row["image"]: row for row in csv.DictReader(handle) if row["method"] == label}
    best_judges = best_judge_scores(evaluation / "gt_scores.csv", judges, lower_better)
    flags = []
    for image, q in sr_q.items():
        if image not in best_q or image not in sr_scores or image not in best_judges:
            continue
        q_beats = is_better(q, best_q[image], lower_better["Q"])
        judge_beats = any(is_better(_number(sr_scores[image].get(judge)), best_judges[image][judge],
                                    lower_better[judge]) for judge in judges)
        flags.append(q_beats and not judge_beats)
    return sum(flags) / len(flags) if flags else math.nan
