"""The ablation's results in one place: the paper-style table (methods + Gold Standard, seeds averaged),
the perception-distortion plot, and ``ablation.json``, from which ``sr-iqa report`` builds its page."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from sr_iqa.ablation.intervals import SeedSummary, summarise_seeds
from sr_iqa.ablation.plan import AblationRow
from sr_iqa.atomic_files import write_text_atomically, write_with
from sr_iqa.errors import SrIqaError
from sr_iqa.evaluate.multi_gt import GOLD_STANDARD
from sr_iqa.evaluate.tables import folder_name, markdown_table, plain_table
from sr_iqa.models.lora import STRENGTH_ROW
from sr_iqa.score_rules import arrow, in_words


def aggregate(methods: Sequence[AblationRow], root: Path, plot_metric: str, dataset: str, report_images: int) -> dict:
    """Write ``ablation_table.{md,csv}``, ``perception_distortion.png`` and ``ablation.json`` in ``root``."""
    summaries = {}
    for method in methods:
        path = method.evaluation / "summary.json"
        if not path.is_file():
            raise SrIqaError(f"{path} is missing: the evaluation of {method.label} (seed {method.seed}) has not run")
        summaries[method] = json.loads(path.read_text())
    first = next(iter(summaries.values()))
    lower_better, no_reference = first["lower_better"], first["no_reference"]
    metrics = [m for m in lower_better if m not in no_reference] + list(no_reference)
    labels = list(dict.fromkeys(method.label for method in methods))
    intervals = {label: {metric: summarise_seeds([summaries[m]["rows"][label][metric] for m in methods
                                                  if m.label == label and metric in summaries[m]["rows"][label]])
                         for metric in metrics} for label in labels}
    rows = {label: {metric: summary.mean for metric, summary in by_metric.items()}
            for label, by_metric in intervals.items()}
    rows[GOLD_STANDARD] = first["rows"][GOLD_STANDARD]
    seeds = sorted({method.seed for method in methods})
    table = markdown_table(rows, metrics, lower_better, no_reference)
    caption = (f"Methods averaged over seeds {seeds}; FR metrics against the Positive GTs; Gold Standard: the best "
               "GT per group, averaged.")
    text = f"{caption}\n\n{table}\n"
    if len(seeds) > 1:
        text += ("\nMean ± half width of the 95% interval over the seeds (Student's t with n - 1 degrees of freedom, "
                 "n the seeds with a score; a NaN seed is left out and counted):\n\n"
                 f"{interval_table(intervals, metrics, lower_better)}\n")
    write_text_atomically(root / "ablation_table.md", text)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["method", *metrics])
    writer.writerows([[label, *(row.get(m, "") for m in metrics)] for label, row in rows.items()])
    write_text_atomically(root / "ablation_table.csv", buffer.getvalue())
    plot = root / "perception_distortion.png"
    if plot_metric in no_reference and "psnr" in metrics:
        perception_distortion_plot(rows, plot_metric, bool(lower_better[plot_metric]), plot)
    first_seed = {m.label: m for m in methods if m.seed == seeds[0]}
    record = {
        "caption": caption, "table": table, "rows": rows, "metrics": metrics, "lower_better": lower_better,
        "intervals": {label: {metric: summary.as_dict() for metric, summary in by_metric.items()}
                      for label, by_metric in intervals.items()},
        "no_reference": no_reference, "plot": plot.name if plot.is_file() else None, "plot_metric": plot_metric,
        "dataset": dataset, "report_images": report_images,
        "sr_folders": {label: str(m.evaluation / "sr" / folder_name(label)) for label, m in first_seed.items()},
        "gt_scores": str(next(iter(first_seed.values())).evaluation / "gt_scores.csv"),
    }
    write_text_atomically(root / "ablation.json", json.dumps(record, indent=2) + "\n")
    return record


def interval_table(intervals: dict[str, dict[str, SeedSummary]], metrics: Sequence[str],
                   lower_better: dict[str, bool]) -> str:
    header = ["Method"] + [f"{name} {arrow(lower_better[name])}" for name in metrics]
    return plain_table(header, ([label] + [by_metric[name].cell() for name in metrics]
                                for label, by_metric in intervals.items()))


def strength_curves(rows: dict[str, dict[str, float]]) -> dict[str, list[tuple[float, str]]]:
    """Rows of one adapter at several strengths (``eval --lora-strength``), by adapter: (strength, row), sorted."""
    curves: dict[str, list[tuple[float, str]]] = {}
    for label in rows:
        match = STRENGTH_ROW.match(label)
        if match:
            curves.setdefault(match["name"], []).append((float(match["strength"]), label))
    return {name: sorted(points) for name, points in curves.items() if len(points) > 1}


def perception_distortion_plot(rows: dict[str, dict[str, float]], nr_metric: str, lower_better: bool,
                               path: Path) -> None:
    """PSNR (against the Positive GTs) against an NR metric, one point per method; the Gold Standard has no PSNR
    of its own, so it is the vertical line at its NR value."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4.5), dpi=120)
    for label, row in rows.items():
        if label == GOLD_STANDARD:
            continue
        axes.scatter(row[nr_metric], row["psnr"], s=40)
        axes.annotate(label, (row[nr_metric], row["psnr"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    for points in strength_curves(rows).values():  # one adapter at several strengths: its curve, weakest first
        axes.plot([rows[label][nr_metric] for _, label in points], [rows[label]["psnr"] for _, label in points],
                  linestyle="-", linewidth=1, color="grey")
    gold = rows.get(GOLD_STANDARD, {}).get(nr_metric)
    if gold is not None and not math.isnan(gold):
        axes.axvline(gold, linestyle="--", color="grey")
        axes.annotate(GOLD_STANDARD, (gold, axes.get_ylim()[0]), textcoords="offset points", xytext=(4, 6),
                      fontsize=8, color="grey")
    axes.set_xlabel(f"{nr_metric} ({in_words(lower_better)})")
    axes.set_ylabel("PSNR vs Positive GTs (dB)")
    axes.set_title("Perception-distortion")
    if lower_better:
        axes.invert_xaxis()  # better perception to the right, as for higher-better metrics
    figure.tight_layout()
    write_with(path, lambda partial: figure.savefig(partial, format="png"))
    pyplot.close(figure)
