"""Evaluation output: per-image CSV, summary CSV / Markdown / JSON, and the console table.

Columns are named exactly as the pyiqa metrics. In Markdown the columns are grouped as in the
HGGT paper: low-level FR, mid-level FR, NR.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.data.groups import Group
from sr_iqa.evaluate.multi_gt import GOLD_STANDARD, ImageResult, distance_to_gold, mean_over_images
from sr_iqa.score_rules import arrow

LOW_LEVEL_FR = ("psnr", "ssim", "psnr_y", "ssimc", "ms_ssim", "hggt_psnr", "hggt_ssim")
MID_LEVEL_FR = ("lpips", "lpips-vgg", "stlpips", "stlpips-vgg", "dists", "topiq_fr")


def metric_group(name: str, no_reference: bool) -> str:
    if no_reference:
        return "NR"
    return "low-level FR" if name in LOW_LEVEL_FR or name not in MID_LEVEL_FR else "mid-level FR"


@dataclass
class EvaluationSummary:
    """Mean scores per method (FR against the Positive GTs, NR on SR) plus the Gold Standard row."""

    rows: dict[str, dict[str, float]]
    against_original: dict[str, dict[str, float]]
    distance_to_gold: dict[str, dict[str, float]]
    lower_better: dict[str, bool]
    no_reference: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    # method -> metric -> images whose score was NaN, left out of its mean (score_rules); absent when none
    nan_images: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_results(cls, results: Sequence[ImageResult], gold: Mapping[str, float],
                     lower_better: Mapping[str, bool], skipped: Mapping[str, str]) -> EvaluationSummary:
        methods = list(dict.fromkeys(result.method for result in results))
        rows, original, nan_images = {}, {}, {}
        for method in methods:
            rows[method], nan_scores = mean_over_images(r for r in results if r.method == method)
            original[method], nan_original = mean_over_images((r for r in results if r.method == method),
                                                               against_original=True)
            counts = nan_scores | {f"{name} vs original": n for name, n in nan_original.items()}
            if counts:
                nan_images[method] = counts
        distance = {m: distance_to_gold(rows[m], gold, lower_better) for m in methods}
        return cls({**rows, GOLD_STANDARD: dict(gold)}, original, distance, dict(lower_better), list(gold),
                   dict(skipped), nan_images)

    @property
    def metrics(self) -> list[str]:
        """FR metrics first (low-level, then mid-level), then NR, in the order given."""
        names = list(self.lower_better)
        order = {"low-level FR": 0, "mid-level FR": 1, "NR": 2}
        return sorted(names, key=lambda n: order[metric_group(n, n in self.no_reference)])

    def to_json(self) -> dict:
        return asdict(self)


def _cell(value: float | None) -> str:
    if value is None:
        return "—"
    return "nan" if math.isnan(value) else f"{value:.4f}"


def plain_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def markdown_table(rows: Mapping[str, Mapping[str, float]], metrics: Sequence[str], lower_better: Mapping[str, bool],
                   no_reference: Sequence[str], first_column: str = "Method") -> str:
    """Methods as rows, metrics as columns (with their direction), the paper's column groups above them."""
    groups = [metric_group(name, name in no_reference) for name in metrics]
    groups = [group if i == 0 or group != groups[i - 1] else "" for i, group in enumerate(groups)]  # label once
    header = [first_column] + [f"{name} {arrow(lower_better[name])}" for name in metrics]
    lines = ["| " + " | ".join([""] + groups) + " |", "|" + "|".join("---" for _ in header) + "|",
             "| " + " | ".join(f"**{h}**" for h in header) + " |"]
    for method, scores in rows.items():
        lines.append("| " + " | ".join([method] + [_cell(scores.get(name)) for name in metrics]) + " |")
    return "\n".join(lines)


def summary_markdown(summary: EvaluationSummary) -> str:
    metrics = summary.metrics
    full_reference = [m for m in metrics if m not in summary.no_reference]
    parts = ["FR metrics averaged over each group's Positive GTs; NR metrics on SR; Gold Standard: the best GT "
             "per group, averaged.", markdown_table(summary.rows, metrics, summary.lower_better, summary.no_reference)]
    if full_reference:
        parts += ["FR metrics against the original GT:",
                  markdown_table(summary.against_original, full_reference, summary.lower_better, [])]
    if summary.no_reference:
        parts += ["Distance to the Gold Standard (positive: worse than the best GT; negative: better):",
                  markdown_table(summary.distance_to_gold, summary.no_reference, summary.lower_better,
                                 summary.no_reference)]
    if summary.nan_images:
        parts.append("Images whose score is NaN (left out of the mean, per the rule in sr_iqa/score_rules.py): "
                     + "; ".join(f"{method}: " + ", ".join(f"{name} {count}" for name, count in counts.items())
                                 for method, counts in summary.nan_images.items()))
    if summary.skipped:
        parts.append("Skipped (cannot run here): " + "; ".join(f"{n}: {m}" for n, m in summary.skipped.items()))
    return "\n\n".join(parts)


def folder_name(method: str) -> str:
    """A method name as a folder name: letters, digits, '-', '_', '+', '.' kept; the rest becomes '_'; a name of dots
    alone ("..") becomes underscores, so that it names a folder inside the output, never its parent."""
    name = re.sub(r"[^A-Za-z0-9+._-]", "_", method)
    return "_" * len(name) if set(name) <= {"."} else name


def write_gt_scores(path: Path, groups: Sequence[Group], gt_scores: Sequence[Sequence[Mapping[str, float]]],
                    metrics: Sequence[str]) -> None:
    """The NR score of every GT (group, slot, label): where the Gold Standard comes from."""
    _write_csv(path, ["group", "slot", "label", *metrics],
               [[group.name, gt.slot, gt.label or "", *(scores.get(m, "") for m in metrics)]
                for group, per_gt in zip(groups, gt_scores, strict=True)
                for gt, scores in zip(group.gts, per_gt, strict=True)])


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomically(path, buffer.getvalue())


def write_evaluation(out: Path, results: Sequence[ImageResult], summary: EvaluationSummary) -> None:
    """per_image.csv, summary.{csv,md,json}, summary_original.csv in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = summary.metrics
    full_reference = [m for m in metrics if m not in summary.no_reference]
    _write_csv(out / "per_image.csv",
               ["method", "image", "positive_gts", *metrics, *(f"{m}_vs_original" for m in full_reference)],
               [[r.method, r.image, r.positives, *(r.scores.get(m, "") for m in metrics),
                 *(r.against_original.get(m, "") for m in full_reference)] for r in results])
    _write_csv(out / "summary.csv", ["method", *metrics],
               [[method, *(row.get(m, "") for m in metrics)] for method, row in summary.rows.items()])
    _write_csv(out / "summary_original.csv", ["method", *full_reference],
               [[method, *(row.get(m, "") for m in full_reference)]
                for method, row in summary.against_original.items()])
    write_text_atomically(out / "summary.md", summary_markdown(summary) + "\n")


def write_summary_json(out: Path, summary: EvaluationSummary) -> None:
    """The proof that an evaluation finished (the ablation runner skips a step that has it): written last, whole."""
    write_text_atomically(out / "summary.json", json.dumps(summary.to_json(), indent=2) + "\n")
