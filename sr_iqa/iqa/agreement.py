"""``sr-iqa agree``: how often each cached metric prefers what the human labels prefer.

Three kinds of pairs per group: a Positive GT over the original, the original over a
Negative GT, a Positive over a Negative. A metric's preference is its score turned into
"higher is better"; a tie counts as half right.
"""

from __future__ import annotations

from collections.abc import Sequence

from sr_iqa.data.groups import Group
from sr_iqa.iqa.score_cache import ScoreCache
from sr_iqa.score_rules import oriented

PAIRS = (("Positive", "original"), ("original", "Negative"), ("Positive", "Negative"))


def _label(group: Group, position: int) -> str | None:
    return "original" if position == 0 else group.gts[position].label


def pairwise_agreement(groups: Sequence[Group], cache: ScoreCache,
                       metric: str) -> dict[tuple[str, str], tuple[float, int]]:
    """(preferred label, other label) -> (pairs where the metric agrees, pairs with both scores)."""
    sign = oriented(1.0, cache.lower_better(metric))
    records = {gt.path: cache.record(gt.path) for group in groups for gt in group.gts}
    table = cache.scores(metric, {record.content_hash for record in records.values()})
    result = {}
    for better, worse in PAIRS:
        agree, total = 0.0, 0
        for group in groups:
            quality = {}
            for position, gt in enumerate(group.gts):
                record = records[gt.path]
                score = table[record.content_hash].get(record.full)
                if score is not None:
                    quality[position] = sign * score
            for high in (p for p in quality if _label(group, p) == better):
                for low in (p for p in quality if _label(group, p) == worse):
                    total += 1
                    agree += 1.0 if quality[high] > quality[low] else 0.5 if quality[high] == quality[low] else 0.0
        result[(better, worse)] = (agree, total)
    return result


def agreement_table(groups: Sequence[Group], cache: ScoreCache) -> str:
    header = ["metric"] + [f"{better} > {worse}" for better, worse in PAIRS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in cache.metrics():
        cells = []
        for agree, total in pairwise_agreement(groups, cache, metric).values():
            cells.append(f"{agree / total:.3f} ({total} pairs)" if total else "— (0 pairs)")
        lines.append("| " + " | ".join([metric, *cells]) + " |")
    return "\n".join(lines)
