"""What an experiment's runs show: each method's mean and 95% interval over seeds (Q measured on the saved SR images
as the gate measures it), the stage-2 measures against the stage-1 model each run fine-tunes (same seed), and the
claims (``claims``) on the per-seed differences A - B, signed so that positive favours A. The same seed gives both
runs the same start and data order, so pairing removes what the seeds share.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from sr_iqa.ablation.claims import (
    GAMING_GAP,
    NOISE_PER_GAIN,
    PSNR_CHANGE,
    Q_GAIN,
    STRUCTURED_NOISE,
    Claim,
    ClaimResult,
    control_verdict,
    decide_primary,
    declared_claims,
)
from sr_iqa.ablation.experiment_options import ExperimentSettings
from sr_iqa.ablation.gaming_images import GAMING_IMAGES, gaming_fraction
from sr_iqa.ablation.intervals import SeedSummary, summarise_seeds
from sr_iqa.ablation.plan import REFERENCE_RUN, AblationRow
from sr_iqa.ablation.validity_gate import GateReport, q_device, tiled_q
from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.data.image_io import read_rgb_tensor
from sr_iqa.evaluate.gaming import gaming_report, structured_noise_score
from sr_iqa.evaluate.multi_gt import GOLD_STANDARD
from sr_iqa.evaluate.tables import folder_name
from sr_iqa.iqa.metrics import create_metric
from sr_iqa.score_rules import nan_aware_mean, oriented

TILED_Q = "tiled_q.json"  # in an evaluation folder


@dataclass(frozen=True)
class Findings:
    q: str
    q_tiles: str  # how Q is measured: the mean over these size:stride tiles of each SR image
    lower_better: dict[str, bool]  # per measure
    stage1_measures: list[str]
    stage2_measures: list[str]
    summaries: dict[str, dict[str, SeedSummary]]  # label -> measure -> over seeds
    bases: dict[str, str]  # stage-2 label -> stage-1 label
    references: list[str]  # labels evaluated once (not trained): the pretrained and the untrained network
    gold: dict[str, float]  # Q and the monitors
    control: list[ClaimResult]  # per arch
    primary: list[ClaimResult]
    fine: list[ClaimResult]
    min_effects: dict[str, float]
    gate: GateReport
    seeds: list[int]
    held_out_groups: int
    per_seed: dict[str, dict[int, dict[str, float]]]  # label -> seed -> measure -> value (the claims' inputs)


def _per_seed(methods: Sequence[AblationRow], settings: ExperimentSettings, gate: GateReport | None = None
              ) -> tuple[dict[str, dict[int, dict[str, float]]], dict[str, bool], dict[str, float], int]:
    """label -> seed -> measure -> value, whether each measure is lower-better, the Gold Standard, the held-out
    groups. With the ``gate``'s held-out records, the fraction of images each run games (``gaming_images``)."""
    values: dict[str, dict[int, dict[str, float]]] = {}
    lower_better: dict[str, bool] = {}
    gold: dict[str, float] = {}
    summaries = {m: json.loads((m.evaluation / "summary.json").read_text()) for m in methods}
    metric = create_metric(settings.q, q_device())
    best_q = None if gate is None else {r.group: r.best_gt(gate.lower_better) for r in gate.kept("held-out")}
    for method, summary in summaries.items():
        row, original = summary["rows"][method.label], summary["against_original"][method.label]
        lower = summary["lower_better"]
        sr_q = _tiled_q(metric, settings.q, method, settings.q_tiles)
        measures = {"Q": nan_aware_mean(list(sr_q.values())).mean if sr_q else math.nan}
        measures |= {name: row[name] for name in settings.monitors}
        measures |= {f"{name} vs original": original[name] for name in settings.distortion}
        lower_better |= {"Q": lower[settings.q]} | {name: lower[name] for name in settings.monitors}
        if best_q is not None:
            measures[GAMING_IMAGES] = gaming_fraction(method.evaluation, method.label, sr_q, best_q,
                                                      settings.monitors, lower_better)
        lower_better |= {f"{name} vs original": lower[name] for name in settings.distortion}
        values.setdefault(method.label, {})[method.seed] = measures
        gold = {name: summary["rows"][GOLD_STANDARD][name] for name in settings.monitors}  # the same in every one
    groups = sum(1 for _ in sr_folder(methods[0]).glob("*.png")) if methods else 0
    for method, summary in summaries.items():
        if method.base is None:
            continue
        base = values[method.base][method.seed]
        mine = values[method.label][method.seed]
        mine[Q_GAIN] = oriented(mine["Q"] - base["Q"], lower_better["Q"])
        lower = summary["lower_better"]
        report = gaming_report({settings.q: mine["Q"]} | {m: mine[m] for m in settings.monitors},
                               {settings.q: base["Q"]} | {m: base[m] for m in settings.monitors},
                               {settings.q: 1.0}, settings.monitors, lower)
        mine[GAMING_GAP] = report.get("gaming_gap", math.nan)
        mine[STRUCTURED_NOISE] = _structured_noise(method, next(m for m in methods if m.label == method.base
                                                                and m.seed == method.seed))
        mine[NOISE_PER_GAIN] = mine[STRUCTURED_NOISE] / mine[Q_GAIN] if mine[Q_GAIN] > 0 else math.nan
        if "psnr vs original" in mine:
            mine[PSNR_CHANGE] = mine["psnr vs original"] - base["psnr vs original"]
    lower_better |= {Q_GAIN: False, GAMING_GAP: True, STRUCTURED_NOISE: True, NOISE_PER_GAIN: True,
                     PSNR_CHANGE: False, GAMING_IMAGES: True}
    return values, lower_better, gold, groups


def sr_folder(method: AblationRow) -> Path:
    """Where the method's evaluation saved its SR images (``sr-iqa eval --save-sr``)."""
    return method.evaluation / "sr" / folder_name(method.label)


def _tiled_q(metric: torch.nn.Module, name: str, method: AblationRow, tiles: str) -> dict[str, float]:
    """image -> Q of the method's saved SR image, the mean over its tiles; kept beside the evaluation
    (``tiled_q.json``, keyed by metric, tiles and the evaluation's summary), so that a later phase or rerun reads it
    instead of scoring every image again."""
    record = method.evaluation / TILED_Q
    key = {"metric": name, "tiles": tiles, "summary": (method.evaluation / "summary.json").stat().st_mtime_ns,
           "covering": True}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        saved = json.loads(record.read_text())
        if saved["key"] == key:
            return {image: float(q) for image, q in saved["images"].items()}
    scores = tiled_q_of_folder(metric, sr_folder(method), tiles)
    write_text_atomically(record, json.dumps({"key": key, "images": scores}))
    return scores


def tiled_q_of_folder(metric: torch.nn.Module, folder: Path, tiles: str) -> dict[str, float]:
    """image -> Q (the mean over its tiles) of each PNG in ``folder``: how the analysis scores a method's SR images."""
    return {path.stem: tiled_q(metric, read_rgb_tensor(path), tiles) for path in sorted(folder.glob("*.png"))}


def _structured_noise(method: AblationRow, base: AblationRow) -> float:
    """The periodic high-frequency part of SR(fine-tuned) - SR(stage 1), mean over the held-out images."""
    mine, theirs = sr_folder(method), sr_folder(base)
    scores = [structured_noise_score(read_rgb_tensor(path) - read_rgb_tensor(theirs / path.name))
              for path in sorted(mine.glob("*.png"))]
    return sum(scores) / len(scores) if scores else math.nan


def analyse(methods: Sequence[AblationRow], settings: ExperimentSettings, archs: Sequence[str],
            gate: GateReport) -> Findings:
    values, lower_better, gold, groups = _per_seed(methods, settings, gate)
    held_out = gate.kept("held-out")
    gold["Q"] = nan_aware_mean([r.best_gt(gate.lower_better) for r in held_out]).mean if held_out else math.nan
    summaries = {label: {measure: summarise_seeds([by_seed[s].get(measure, math.nan) for s in sorted(by_seed)])
                         for measure in next(iter(by_seed.values()))}
                 for label, by_seed in values.items()}
    bases = {m.label: m.base for m in methods if m.base is not None}
    references = [m.label for m in methods if m.evaluation.parent.name.startswith(REFERENCE_RUN)]
    stage1 = ["Q", *settings.monitors, *(f"{name} vs original" for name in settings.distortion), GAMING_IMAGES]
    stage2 = ["Q", Q_GAIN, STRUCTURED_NOISE, NOISE_PER_GAIN, GAMING_GAP, GAMING_IMAGES,
              *(f"{name} vs original" for name in settings.distortion), PSNR_CHANGE]
    effects = dict(settings.min_effects)

    def differences(claim: Claim, arch: str) -> list[float] | None:
        return _differences(claim, arch, values, lower_better, gold)

    families = declared_claims(settings.claims)
    control, primary, fine = [], [], []
    for arch in archs:
        control_differences = None if families.control is None else differences(families.control, arch)
        control_result = None
        if control_differences is not None:
            summary = summarise_seeds(control_differences)
            control_result = ClaimResult(families.control, arch, summary,
                                         control_verdict(summary, effects.get(families.control.measure, 0.0),
                                                         families.control))
            control.append(control_result)
        passed = control_result is not None and control_result.verdict.startswith("decidable")
        primary += decide_primary({claim: differences(claim, arch) for claim in families.primary}, arch, effects,
                                  passed)
        fine += [ClaimResult(claim, arch, None if d is None else summarise_seeds(d), "")
                 for claim in families.fine if (d := differences(claim, arch)) is not None]
    return Findings(settings.q, settings.q_tiles, lower_better, stage1, [m for m in stage2 if m in lower_better],
                    summaries, bases, references, gold, control, primary, fine, effects, gate,
                    sorted({m.seed for m in methods}), groups, values)


def claim_differences(methods: Sequence[AblationRow], settings: ExperimentSettings, claim: Claim,
                      arch: str) -> list[float] | None:
    """Per seed, the claim's paired difference (positive favours ``better``) over the runs ``methods``: what a
    pilot reads before the runs that decide the claim."""
    values, lower_better, gold, _ = _per_seed(methods, settings)
    return _differences(claim, arch, values, lower_better, gold)


def _differences(claim: Claim, arch: str, values: dict[str, dict[int, dict[str, float]]],
                 lower_better: dict[str, bool], gold: dict[str, float]) -> list[float] | None:
    """Per seed, better - worse oriented so that positive favours ``better``; None when a side was not run."""
    def side(name: str) -> dict[int, float] | None:
        if name == GOLD_STANDARD:
            return None  # a constant: the held-out set's best GTs
        by_seed = values.get(f"{arch} {name}")
        return None if by_seed is None else {seed: row.get(claim.measure, math.nan) for seed, row in by_seed.items()}

    present = all(name == GOLD_STANDARD or f"{arch} {name}" in values for name in (claim.better, claim.worse))
    if not present or claim.measure not in lower_better:
        return None
    better, worse = side(claim.better), side(claim.worse)
    seeds = sorted((better or worse or {}).keys())
    constant = gold.get(claim.measure, math.nan)
    return [oriented((better or {}).get(s, constant) - (worse or {}).get(s, constant), lower_better[claim.measure])
            for s in seeds]
