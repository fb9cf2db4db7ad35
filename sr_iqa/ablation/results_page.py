"""An experiment's section of ``experiments/RESULTS.md``: how it was run (command, machine, versions, time), its
design, the tables with 95% intervals over seeds, each claim's verdict and the perception-distortion plot.

The section sits between two markers naming the experiment, so a rerun replaces its own section and leaves the
others (another preset, the authors' interpretation outside the markers) as they are.
"""

from __future__ import annotations

import csv
import datetime
import math
import time
from pathlib import Path

from sr_iqa.ablation.claims import PAPER, ClaimResult
from sr_iqa.ablation.experiment_options import Experiment
from sr_iqa.ablation.findings import Findings
from sr_iqa.ablation.gaming_images import GAMING_IMAGES
from sr_iqa.ablation.page_sections import machine_line, overrides_code, replace_section, step_minutes, versions_line
from sr_iqa.ablation.plan import AblationOptions
from sr_iqa.ablation.plot_legend import legend_below, method_styles
from sr_iqa.ablation.prepared_data import PreparedData
from sr_iqa.ablation.validity_gate import GateReport, gate_lines
from sr_iqa.atomic_files import write_with
from sr_iqa.evaluate.multi_gt import GOLD_STANDARD
from sr_iqa.evaluate.tables import plain_table
from sr_iqa.score_rules import arrow, in_words, is_better, oriented


def write_results(experiment: Experiment, ablation: AblationOptions, findings: Findings,
                  step_seconds: dict[str, float], started: float, prepared: PreparedData) -> Path:
    results = Path(experiment.settings.results)
    plot = results.parent / "results" / f"{ablation.name}_perception_distortion.png"
    perception_distortion_plot(findings, plot)
    write_per_seed(findings, per_seed_file(results, ablation.name))
    section = render(experiment, ablation, findings, step_seconds, time.time() - started,
                     plot.relative_to(results.parent), prepared)
    replace_section(results, ablation.name, section)
    return results


def per_seed_file(results: Path, name: str) -> Path:
    """``results/<name>_per_seed.csv`` beside the results page: one row per run, seed and measure."""
    return results.parent / "results" / f"{name}_per_seed.csv"


def write_per_seed(findings: Findings, path: Path) -> None:
    """Every value the claims are computed from, so that a reader can recompute each claim."""
    def rows(partial: Path) -> None:
        with partial.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["method", "seed", "measure", "value", "lower_better"])
            for label, by_seed in findings.per_seed.items():
                for seed, measures in sorted(by_seed.items()):
                    for measure, value in measures.items():
                        writer.writerow([label, seed, measure, repr(float(value)),
                                         findings.lower_better.get(measure)])

    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, rows)


RECOMPUTE = ("Each claim from `{file}`: per seed, the `better` method's value minus the `worse` method's on the "
             "claim's measure (negated where `lower_better` is True), then `scipy.stats.ttest_1samp(differences, "
             "minimum_effect, alternative='greater')` for its one-sided p and Holm's step-down over the primary "
             "family; the interval is the mean ± t(0.975, n - 1) x SD / sqrt(n).")


def _measure_name(findings: Findings, measure: str) -> str:
    """"Q" under the name of the metric it is, with how it is measured."""
    return f"{findings.q.upper()} ({findings.q_tiles} tiles)" if measure == "Q" else measure


def _table(findings: Findings, labels: list[str], measures: list[str], gold: bool) -> str:
    header = ["Method", *(f"{_measure_name(findings, m)} {arrow(findings.lower_better[m])}" for m in measures)]
    rows = [[label, *(findings.summaries[label][m].cell() if m in findings.summaries[label] else ""
                      for m in measures)] for label in labels]
    if gold:
        rows.append([f"{GOLD_STANDARD} (best GT per group)",
                     *(f"{findings.gold[m]:.4f}" if m in findings.gold else "" for m in measures)])
    return plain_table(header, rows)


def _claims_table(findings: Findings, results: list[ClaimResult], verdicts: bool, p_values: bool = False) -> str:
    header = ["Claim", "Paper*", "Measure", "Difference, mean ± 95% interval"]
    header += ["p (one-sided)", "Holm-adjusted p"] if p_values else []
    header += ["Verdict"] if verdicts else []

    def row(result: ClaimResult) -> list[str]:
        cells = [f"{result.arch}: {result.claim.text}", result.claim.paper,
                 _measure_name(findings, result.claim.measure),
                 "" if result.difference is None else result.difference.cell()]
        cells += [_p(result.p_value), _p(result.adjusted_p)] if p_values else []
        return cells + ([result.verdict] if verdicts else [])

    return plain_table(header, (row(result) for result in results))


def _beats_gold(findings: Findings, label: str, measure: str) -> bool:
    measures = findings.summaries[label]
    return measure in measures and is_better(measures[measure].mean, findings.gold.get(measure, math.nan),
                                             findings.lower_better[measure])


def _gaming_line(findings: Findings, labels: list[str]) -> str:
    """What "gaming images" counts, and the methods flagged as gaming: Q beats the Gold Standard while no judge
    (monitor) does, on the means over the held-out groups."""
    judges = [m for m in findings.stage1_measures if m in findings.gold and m != "Q"]
    flagged = [label + (f" ({findings.summaries[label][GAMING_IMAGES].cell()} of the images)"
                        if GAMING_IMAGES in findings.summaries[label] else "")
               for label in labels if _beats_gold(findings, label, "Q")
               and not any(_beats_gold(findings, label, judge) for judge in judges)]
    return (f"{GAMING_IMAGES}: the fraction of held-out images whose {_measure_name(findings, 'Q')} beats the best GT "
            f"of the group while no judge ({', '.join(judges) or 'none'}) scores the image above its best GT. "
            f"Flagged as gaming (Q above the {GOLD_STANDARD}, no judge above it): "
            f"{'; '.join(flagged) or 'none'}.")


def _p(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def _gate_section(gate: GateReport, prepared: PreparedData) -> str:
    lower = gate.lower_better
    held_out = [r for r in gate.records if r.split == "held-out"]
    header = ["Held-out group", "Photo", f"{gate.metric} original", f"{gate.metric} bicubic x4", "Best GT",
              "Headroom (best GT over the original)", "Gate"]
    rows = []
    for record in held_out:
        top, slot = record.best_gt(lower), record.best_slot(lower)
        rows.append([record.group, record.photo, f"{record.original:.2f}", f"{record.bicubic:.2f}",
                     f"{slot} {top:.2f}", f"{abs(oriented(top - record.original, lower)):.2f}",
                     "kept" if record.dropped is None else f"dropped: {record.dropped}"])
    counts = "\n".join(f"- {line}" for line in gate_lines(gate))
    training = [r for r in gate.records if r.split == "train"]
    dropped_train = [r for r in training if r.dropped is not None]
    reasons = "; ".join(f"{r.group} ({r.photo}): {r.dropped}" for r in dropped_train[:8])
    more = f" and {len(dropped_train) - 8} more" if len(dropped_train) > 8 else ""
    parts = [counts,
             f"- The positive control's labels have a Positive in {prepared.control_groups} of "
             f"{len(gate.kept('train'))} kept training groups (the others train on their original).",
             plain_table(header, rows)]
    if dropped_train:
        parts.append(f"Training groups dropped: {reasons}{more}.")
    if len(gate.kept("held-out")) < 6:
        parts.append("**The gate leaves fewer than 6 held-out groups: no claim on Q can be tested with this data.**")
    return "\n\n".join(parts)


def render(experiment: Experiment, ablation: AblationOptions, findings: Findings, step_seconds: dict[str, float],
           wall_seconds: float, plot: Path, prepared: PreparedData) -> str:
    settings = experiment.settings
    stage1 = [label for label in findings.summaries if label not in findings.bases]
    stage2 = list(findings.bases)
    total = sum(step_seconds.values()) / 60
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    q_name = _measure_name(findings, "Q")
    effects = ", ".join(f"{_measure_name(findings, m)} {v:g}" for m, v in findings.min_effects.items())
    probe = (prepared.probe.line(settings.q) if prepared.probe is not None else
             "lambda_Q as the option files set it (no probe)")
    per_seed = per_seed_file(Path(settings.results), ablation.name).name
    parts = [
        f"## Preset `{settings.preset}` (`{ablation.name}`)",
        f"Written by `sr-iqa experiment --preset {settings.preset}` (option file `{experiment.source}`) on {now}.",
        f"- Machine: {machine_line()}.\n- Versions: {versions_line()}.\n"
        f"- Time: {total:.1f} min of steps (stage 1 {step_minutes(step_seconds, 'stage1'):.1f}, stage 2 "
        f"{step_minutes(step_seconds, 'stage2'):.1f}, evaluation {step_minutes(step_seconds, 'eval'):.1f}; summed over "
        f"every invocation, {len(step_seconds)} steps); this invocation {wall_seconds / 60:.1f} min with the data "
        "and the analysis.",
        "### Design (fixed before the first run)",
        settings.design.strip(),
        f"- Q: {settings.q} (samplers and stage 2), everywhere measured as the mean over the {findings.q_tiles} "
        f"(size:stride) tiles of an image; monitors, never trained on: {', '.join(settings.monitors)}; "
        f"distortion against the original GT: {', '.join(settings.distortion)}.\n"
        f"- {findings.held_out_groups} held-out groups after the gate; seeds {findings.seeds}; every cell is the mean "
        "over seeds ± the half width of its 95% interval (Student's t, n - 1 degrees of freedom).\n"
        f"- Primary claims: a one-sided paired t-test of \"the difference exceeds the minimum effect\" ({effects}; "
        "0 for a measure not named), Holm's correction over the family, reproduced when the adjusted p < 0.05. "
        "The fine orderings are printed without verdicts.\n"
        f"- Stage 2: {probe}.\n"
        + (f"- Seeds from a pilot, before the runs: {prepared.power.line()}.\n" if prepared.power else "")
        + f"- Per-seed values: [`{per_seed}`](results/{per_seed}). {RECOMPUTE.format(file=per_seed)}\n"
        f"- Overrides of every run (after the option files): {overrides_code(ablation.overrides)}; stage 1: "
        f"{overrides_code(ablation.stage1_overrides)}; stage 2: {overrides_code(ablation.stage2_overrides)}.",
        "### 0. Validity gate (before any training)",
        _gate_section(findings.gate, prepared),
        "### 1. Samplers (stage 1), on the held-out groups",
        f"Rows without an interval are evaluated once (not trained): "
        f"{', '.join(findings.references) or 'none'}.",
        _table(findings, stage1, findings.stage1_measures, gold=True),
        _gaming_line(findings, [*stage1, *stage2]),
        "**Control (decided before any sampler claim is read).**",
        _claims_table(findings, findings.control, verdicts=True) if findings.control else "No control in this preset.",
        "### 2. Stage 2, against the stage-1 model each run fine-tunes (same seed)",
        f"Q gain: {q_name} of the fine-tuned model minus its stage-1 model's, positive = better. Structured noise: "
        "RMS of the periodic high-frequency part of SR(fine-tuned) - SR(stage 1), grey levels; noise per Q gain: "
        "their ratio (a run that gains no Q has none), which compares LoRA and full fine-tuning at equal Q gain to "
        "first order. Gaming gap: the change of Q minus the mean change of the monitors, in percent of the "
        "stage-1 values. PSNR change: against the original, fine-tuned minus stage 1.",
        _table(findings, stage2, findings.stage2_measures, gold=False),
        f"### 3. Primary claims (declared before the runs; Holm over {len(findings.primary)})",
        _claims_table(findings, findings.primary, verdicts=True, p_values=True),
        "### 4. Fine orderings, without verdicts",
        "Out of reach on a CPU with NIQE: the paper's differences are 0.1 to 3 MUSIQ points after 300k iterations "
        "on 20k groups. The paired differences are printed for the record.",
        _claims_table(findings, findings.fine, verdicts=False),
        f"\\* Paper: {PAPER}.",
        f"![perception-distortion]({plot.as_posix()})",
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def perception_distortion_plot(findings: Findings, path: Path) -> None:
    """Q against PSNR to the original, each method at its mean with its 95% intervals as error bars; the Gold
    Standard is the vertical line at its Q."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 5 + 0.25 * len(findings.summaries) / 3), dpi=120,
                                   layout="constrained")
    styles = method_styles(list(findings.summaries))
    for label, measures in findings.summaries.items():
        q, psnr = measures["Q"], measures.get("psnr vs original")
        if psnr is None or math.isnan(q.mean) or math.isnan(psnr.mean):
            continue
        axes.errorbar(q.mean, psnr.mean, xerr=_bar(q.half_width), yerr=_bar(psnr.half_width), linestyle="none",
                      capsize=3, markersize=5, label=label, **styles[label])
    gold = findings.gold.get("Q", math.nan)
    if not math.isnan(gold):
        axes.axvline(gold, linestyle="--", color="grey")
        axes.annotate(GOLD_STANDARD, (gold, axes.get_ylim()[0]), textcoords="offset points", xytext=(4, 6),
                      fontsize=8, color="grey")
    lower_better = findings.lower_better["Q"]
    axes.set_xlabel(f"{findings.q} of the SR images, mean over {findings.q_tiles} tiles ({in_words(lower_better)})")
    axes.set_ylabel("PSNR against the original GT (dB)")
    axes.set_title("Perception-distortion, held-out groups (95% intervals over seeds)")
    if lower_better:
        axes.invert_xaxis()  # better perception to the right
    legend_below(figure, axes)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda partial: figure.savefig(partial, format="png"))
    pyplot.close(figure)


def _bar(half_width: float) -> float | None:
    return None if math.isnan(half_width) else half_width
