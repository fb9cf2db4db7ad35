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
from sr_iqa.ablation.plot_legend import legend_below, method_styles
from sr_iqa.atomic_files import write_text_atomically, write_with
from sr_iqa.errors import SrIqaError
from sr_iqa.evaluate.multi_gt import GOLD_STANDARD
from sr_iqa.evaluate.tables import folder_name, markdown_table, plain_table
from sr_iqa.models.lora import STRENGTH_ROW
from sr_iqa.score_rules import arrow, in_words

VS_ORIGINAL = " vs original"  # the column of an FR metric against the original GT


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
    full_reference = [m for m in lower_better if m not in no_reference]
    metrics = full_reference + list(no_reference)
    # FR metrics against the original GT too: the distortion axis of the perception-distortion trade-off
    originals = {f"{m}{VS_ORIGINAL}": m for m in full_reference}
    lower_better = lower_better | {column: lower_better[m] for column, m in originals.items()}
    labels = list(dict.fromkeys(method.label for method in methods))

    def scores(summary: dict, label: str, metric: str) -> float | None:
        row = summary["against_original"][label] if metric in originals else summary["rows"][label]
        return row.get(originals.get(metric, metric))

    intervals = {label: {metric: summarise_seeds([value for m in methods if m.label == label
                                                  for value in [scores(summaries[m], label, metric)]
                                                  if value is not None])
                         for metric in [*metrics, *originals]} for label in labels}
    rows = {label: {metric: summary.mean for metric, summary in by_metric.items() if metric in metrics}
            for label, by_metric in intervals.items()}
    rows[GOLD_STANDARD] = first["rows"][GOLD_STANDARD]
    against_original = {label: {column: by_metric[column].mean for column in originals}
                        for label, by_metric in intervals.items()}
    seeds = sorted({method.seed for method in methods})
    table = markdown_table(rows, metrics, lower_better, no_reference)
    caption = (f"Methods averaged over seeds {seeds}; FR metrics against the Positive GTs; Gold Standard: the best "
               "GT per group, averaged.")
    text = f"{caption}\n\n{table}\n"
    intervals_text = interval_table(intervals, [*metrics, *originals], lower_better)
    spread = ("Mean ± half width of the 95% interval over the seeds (Student's t with n - 1 degrees of freedom, n the "
              "seeds with a score; a NaN seed is left out and counted)" if len(seeds) > 1 else "One seed, no interval")
    text += f"\n{spread}; FR metrics against the Positive GTs, then against the original:\n\n{intervals_text}\n"
    write_text_atomically(root / "ablation_table.md", text)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["method", *metrics])
    writer.writerows([[label, *(row.get(m, "") for m in metrics)] for label, row in rows.items()])
    write_text_atomically(root / "ablation_table.csv", buffer.getvalue())
    plot = root / "perception_distortion.png"
    if plot_metric in no_reference and "psnr" in metrics:
        nr_axes = [plot_metric, *(m for m in no_reference if m != plot_metric)]
        distortion_axes = [column for column in (f"psnr{VS_ORIGINAL}", f"ssim{VS_ORIGINAL}") if column in originals]
        perception_distortion_plot({label: row | against_original.get(label, {}) for label, row in rows.items()},
                                   nr_axes, distortion_axes, lower_better, plot)
    first_seed = {m.label: m for m in methods if m.seed == seeds[0]}
    record = {
        "caption": caption, "table": table, "rows": rows, "metrics": metrics, "lower_better": lower_better,
        "intervals": {label: {metric: summary.as_dict() for metric, summary in by_metric.items()}
                      for label, by_metric in intervals.items()},
        "interval_table": intervals_text, "seeds": seeds,
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


def perception_distortion_plot(rows: dict[str, dict[str, float]], nr_metrics: Sequence[str],
                               distortions: Sequence[str], lower_better: dict[str, bool], path: Path) -> None:
    """One panel per (distortion, NR metric): the distortion against the original GT (PSNR, SSIM) against the NR
    metric, one point per method, an adapter's strengths joined as a curve (weakest first). The Gold Standard has
    no distortion of its own: the dashed vertical line at its NR value."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, grid = pyplot.subplots(len(distortions), len(nr_metrics), figsize=(5.5 * len(nr_metrics),
                                   4.2 * len(distortions) + 0.25 * len(rows) / 3), dpi=110, squeeze=False,
                                   layout="constrained")
    curves = strength_curves(rows)
    styles = method_styles([label for label in rows if label != GOLD_STANDARD])
    for axes, (distortion, nr_metric) in zip(grid.flat, [(d, m) for d in distortions for m in nr_metrics],
                                             strict=True):
        for label, row in rows.items():
            if label == GOLD_STANDARD or distortion not in row:
                continue
            axes.scatter(row[nr_metric], row[distortion], s=30, label=label, **styles[label])
        for points in curves.values():
            axes.plot([rows[label][nr_metric] for _, label in points],
                      [rows[label][distortion] for _, label in points], linestyle="-", linewidth=1, color="grey")
        gold = rows.get(GOLD_STANDARD, {}).get(nr_metric)
        if gold is not None and not math.isnan(gold):
            axes.axvline(gold, linestyle="--", color="grey")
            axes.annotate(GOLD_STANDARD, (gold, axes.get_ylim()[0]), textcoords="offset points", xytext=(4, 6),
                          fontsize=7, color="grey")
        axes.set_xlabel(f"{nr_metric} ({in_words(lower_better[nr_metric])})")
        axes.set_ylabel(f"{distortion} ({in_words(lower_better[distortion])})")
        if lower_better[nr_metric]:
            axes.invert_xaxis()  # better perception to the right, as for higher-better metrics
    figure.suptitle("Perception-distortion (distortion against the original GT)")
    legend_below(figure, grid.flat[0])
    write_with(path, lambda partial: figure.savefig(partial, format="png"))
    pyplot.close(figure)
