"""``sr-iqa agree``: whether the annotators agree with each other, and how often each cached metric prefers what
their labels prefer, so that a user sees whether Q could stand in for the annotators on their data.

Annotators: Fleiss' kappa over the enhanced GTs (per GT slot and overall), 1 for full agreement, 0 for what chance
gives. Metrics: three kinds of pairs per group: a Positive GT over the original, the original over a Negative GT,
a Positive over a Negative. A metric's preference is its score turned into "higher is better"; a tie counts as half
right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sr_iqa.data.groups import LABEL_VALUES, Group
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


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa of a subjects x categories table of how many raters chose each category (the same number of
    raters for every subject): (P - Pe) / (1 - Pe); NaN when chance agreement is total (every vote one category)."""
    raters = sum(counts[0])
    if not counts or raters < 2 or any(sum(row) != raters for row in counts):
        raise ValueError("Fleiss' kappa needs two or more raters, the same number for every subject")
    subjects = len(counts)
    observed = sum((sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in counts) / subjects
    shares = [sum(row[j] for row in counts) / (subjects * raters) for j in range(len(counts[0]))]
    chance = sum(share * share for share in shares)
    return math.nan if chance == 1 else (observed - chance) / (1 - chance)


def annotator_kappas(groups: Sequence[Group]) -> dict[str, tuple[float, int]]:
    """GT slot (and "all") -> (Fleiss' kappa of the annotators' votes, GTs counted), over the enhanced GTs that
    carry every annotator's vote."""
    items: dict[str, list[list[int]]] = {}
    for gt in (gt for group in groups for gt in group.gts[1:] if len(gt.votes) >= 2):
        row = [gt.votes.count(label) for label in LABEL_VALUES]
        items.setdefault(gt.slot, []).append(row)
        items.setdefault("all", []).append(row)
    result = {}
    for slot in sorted(items, key=lambda name: (name == "all", name)):
        rows = items[slot]
        same_raters = [row for row in rows if sum(row) == sum(rows[0])]
        result[slot] = (fleiss_kappa(same_raters), len(same_raters))
    return result


def kappa_lines(groups: Sequence[Group], notes: Sequence[str] = ()) -> list[str]:
    """The annotators' agreement in words: Fleiss' kappa per GT slot and overall."""
    kappas = annotator_kappas(groups)
    if not kappas:
        made = next((note for note in notes if "made by the metric" in note), None)
        if made is not None:
            return [f"annotators' agreement: none to measure: {made}; that metric's row below agrees with its own "
                    "labels by construction"]
        return ["annotators' agreement: none to measure (no GT carries two or more annotators' votes)"]
    cells = ", ".join(f"{slot} {kappa:.3f} ({count} GTs)" for slot, (kappa, count) in kappas.items())
    return [f"annotators' agreement (Fleiss' kappa; 1 all agree, 0 what chance gives): {cells}"]


def agreement_table(groups: Sequence[Group], cache: ScoreCache) -> str:
    header = ["metric"] + [f"{better} > {worse}" for better, worse in PAIRS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in cache.metrics():
        cells = []
        for agree, total in pairwise_agreement(groups, cache, metric).values():
            cells.append(f"{agree / total:.3f} ({total} pairs)" if total else "— (0 pairs)")
        lines.append("| " + " | ".join([metric, *cells]) + " |")
    return "\n".join(lines)
