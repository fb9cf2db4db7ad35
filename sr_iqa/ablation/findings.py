"""What an experiment's runs show: each method's mean and 95% interval over seeds, the stage-2 measures against the
stage-1 model each run fine-tunes (same seed), and the paper's orderings as paired differences over seeds.

A claim "A above B" is decided on the per-seed differences A - B (signed so that positive favours A): reproduced
when the whole 95% interval is above 0, not reproduced when it is below, not decidable when it contains 0. The
same seed gives both runs the same start and data order, so pairing removes what the seeds share.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sr_iqa.ablation.experiment_options import ExperimentSettings
from sr_iqa.ablation.intervals import SeedSummary, summarise_seeds
from sr_iqa.ablation.plan import AblationRow
from sr_iqa.data.image_io import read_rgb_tensor
from sr_iqa.evaluate.gaming import gaming_report, structured_noise_score
from sr_iqa.evaluate.multi_gt import GOLD_STANDARD
from sr_iqa.evaluate.tables import folder_name
from sr_iqa.score_rules import oriented

Q_GAIN, GAMING_GAP, STRUCTURED_NOISE, PSNR_CHANGE = "Q gain", "gaming gap", "structured noise", "PSNR change"


@dataclass(frozen=True)
class Claim:
    """An ordering the paper reports: ``better`` above ``worse`` on ``measure`` (method names without the arch,
    e.g. "AMO+FT"; ``worse`` may be the Gold Standard). ``equal``: the paper's "≈"."""

    text: str
    paper: str  # the paper's figures behind it
    better: str
    worse: str
    measure: str  # "Q", a metric name, "<metric> vs original", or a stage-2 measure
    equal: bool = False


ORIGINALS = "Original"  # the sampler "original": originals only
# Zhang et al., CVPR 2025 (arXiv 2504.18524), SwinIR, MUSIQ (higher is better), as quoted in the project's issue 18.
SAMPLER_CLAIMS = (
    Claim("AMO above SMP", "68.08 vs 66.83", "AMO", "SMP", "Q"),
    Claim("SMP ≈ SMA", "66.83 vs 66.73", "SMP", "SMA", "Q", equal=True),
    Claim("SMA above UPos", "66.73 vs 66.39", "SMA", "UPos", "Q"),
    Claim("SMP above UPos", "66.83 vs 66.39", "SMP", "UPos", "Q"),
    Claim("UPos above Rand", "66.39 vs 65.27", "UPos", "Rand", "Q"),
    Claim("Rand above originals only", "65.27 vs 59.47", "Rand", ORIGINALS, "Q"),
    Claim("AMO above originals only", "68.08 vs 59.47", "AMO", ORIGINALS, "Q"),
    Claim("AMO no further from the original than UPos (LPIPS-ST; here the VGG distance)", "0.124 vs 0.129",
          "AMO", "UPos", "vgg_dist vs original"),
)
STAGE2_CLAIMS = (
    Claim("UPos+FT above UPos", "69.70 vs 66.39", "UPos+FT", "UPos", "Q"),
    Claim("AMO+FT above AMO", "70.81 vs 68.08", "AMO+FT", "AMO", "Q"),
    Claim("UPos+FT_HP above UPos", "68.38 vs 66.39", "UPos+FT_HP", "UPos", "Q"),
    Claim("UPos+FT_IG above UPos+FT_HP", "69.37 vs 68.38", "UPos+FT_IG", "UPos+FT_HP", "Q"),
    Claim("UPos+FT above UPos+FT_IG", "69.70 vs 69.37", "UPos+FT", "UPos+FT_IG", "Q"),
    Claim("AMO+FT above UPos+FT", "70.81 vs 69.70", "AMO+FT", "UPos+FT", "Q"),
    Claim("PSNR falls from originals only to AMO+FT", "22.72 vs 21.77 dB", ORIGINALS, "AMO+FT", "psnr vs original"),
    Claim("AMO+FT no further from the original than AMO (LPIPS-ST; here the VGG distance)", "0.121 vs 0.124",
          "AMO+FT", "AMO", "vgg_dist vs original"),
    Claim("LoRA games Q less than full fine-tuning (gaming gap)", "full FT: structured adversarial noise",
          "AMO+FT", "AMO+full FT", GAMING_GAP),
    Claim("LoRA adds less structured noise than full fine-tuning", "full FT: structured adversarial noise",
          "AMO+FT", "AMO+full FT", STRUCTURED_NOISE),
    Claim("LoRA distorts less than full fine-tuning (PSNR vs the original)", "LoRA: little distortion",
          "AMO+FT", "AMO+full FT", "psnr vs original"),
)
GOLD_CLAIMS = (
    Claim("AMO+FT above the Gold Standard", "70.81 vs 69.64", "AMO+FT", GOLD_STANDARD, "Q"),
    Claim("AMO below the Gold Standard", "68.08 vs 69.64", GOLD_STANDARD, "AMO", "Q"),
)
CLAIMS = {"Samplers": SAMPLER_CLAIMS, "Stage 2": STAGE2_CLAIMS, "Gold Standard": GOLD_CLAIMS}


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    arch: str
    difference: SeedSummary | None  # of better - worse, positive favouring ``better``; None: not in this preset
    verdict: str


@dataclass(frozen=True)
class Findings:
    q: str
    lower_better: dict[str, bool]  # per measure
    stage1_measures: list[str]
    stage2_measures: list[str]
    summaries: dict[str, dict[str, SeedSummary]]  # label -> measure -> over seeds
    bases: dict[str, str]  # stage-2 label -> stage-1 label
    gold: dict[str, float]  # Q and the monitors
    claims: dict[str, list[ClaimResult]]  # section -> results
    seeds: list[int]
    held_out_groups: int


def verdict(difference: SeedSummary, equal: bool) -> str:
    if difference.seeds < 2 or math.isnan(difference.half_width):
        return "not decidable (fewer than two seeds with a score)"
    low, high = difference.mean - difference.half_width, difference.mean + difference.half_width
    if equal:
        return "consistent (the interval contains 0)" if low <= 0 <= high else "not reproduced (they differ)"
    if low > 0:
        return "reproduced"
    if high < 0:
        return "not reproduced: the opposite holds"
    return "not decidable at this size (the interval contains 0)"


def _per_seed(methods: Sequence[AblationRow], settings: ExperimentSettings
              ) -> tuple[dict[str, dict[int, dict[str, float]]], dict[str, bool], dict[str, float], int]:
    """label -> seed -> measure -> value, whether each measure is lower-better, the Gold Standard, the held-out
    groups."""
    values: dict[str, dict[int, dict[str, float]]] = {}
    lower_better: dict[str, bool] = {}
    gold: dict[str, float] = {}
    summaries = {m: json.loads((m.evaluation / "summary.json").read_text()) for m in methods}
    for method, summary in summaries.items():
        row, original = summary["rows"][method.label], summary["against_original"][method.label]
        lower = summary["lower_better"]
        measures = {"Q": row[settings.q]} | {name: row[name] for name in settings.monitors}
        measures |= {f"{name} vs original": original[name] for name in settings.distortion}
        lower_better |= {"Q": lower[settings.q]} | {name: lower[name] for name in settings.monitors}
        lower_better |= {f"{name} vs original": lower[name] for name in settings.distortion}
        values.setdefault(method.label, {})[method.seed] = measures
        gold = {"Q": summary["rows"][GOLD_STANDARD][settings.q]} | {
            name: summary["rows"][GOLD_STANDARD][name] for name in settings.monitors}  # the same in every summary
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
                               settings.q, settings.monitors, lower)
        mine[GAMING_GAP] = report.get("gaming_gap", math.nan)
        mine[STRUCTURED_NOISE] = _structured_noise(method, next(m for m in methods if m.label == method.base
                                                                and m.seed == method.seed))
        if "psnr vs original" in mine:
            mine[PSNR_CHANGE] = mine["psnr vs original"] - base["psnr vs original"]
    lower_better |= {Q_GAIN: False, GAMING_GAP: True, STRUCTURED_NOISE: True, PSNR_CHANGE: False}
    return values, lower_better, gold, groups


def sr_folder(method: AblationRow) -> Path:
    """Where the method's evaluation saved its SR images (``sr-iqa eval --save-sr``)."""
    return method.evaluation / "sr" / folder_name(method.label)


def _structured_noise(method: AblationRow, base: AblationRow) -> float:
    """The periodic high-frequency part of SR(fine-tuned) - SR(stage 1), mean over the held-out images."""
    mine, theirs = sr_folder(method), sr_folder(base)
    scores = [structured_noise_score(read_rgb_tensor(path) - read_rgb_tensor(theirs / path.name))
              for path in sorted(mine.glob("*.png"))]
    return sum(scores) / len(scores) if scores else math.nan


def analyse(methods: Sequence[AblationRow], settings: ExperimentSettings, archs: Sequence[str]) -> Findings:
    values, lower_better, gold, groups = _per_seed(methods, settings)
    summaries = {label: {measure: summarise_seeds([by_seed[s].get(measure, math.nan) for s in sorted(by_seed)])
                         for measure in next(iter(by_seed.values()))}
                 for label, by_seed in values.items()}
    bases = {m.label: m.base for m in methods if m.base is not None}
    stage1 = ["Q", *settings.monitors, *(f"{name} vs original" for name in settings.distortion)]
    stage2 = ["Q", Q_GAIN, GAMING_GAP, STRUCTURED_NOISE, *(f"{name} vs original" for name in settings.distortion),
              PSNR_CHANGE]
    claims = {section: [_decide(claim, arch, values, lower_better, gold) for arch in archs for claim in listed]
              for section, listed in CLAIMS.items()}
    return Findings(settings.q, lower_better, stage1, [m for m in stage2 if m in lower_better], summaries, bases,
                    gold, claims, sorted({m.seed for m in methods}), groups)


def _decide(claim: Claim, arch: str, values: dict[str, dict[int, dict[str, float]]],
            lower_better: dict[str, bool], gold: dict[str, float]) -> ClaimResult:
    def side(name: str) -> dict[int, float] | None:
        if name == GOLD_STANDARD:
            return None  # a constant: the held-out set's best GTs
        by_seed = values.get(f"{arch} {name}")
        return None if by_seed is None else {seed: row.get(claim.measure, math.nan) for seed, row in by_seed.items()}

    better, worse = side(claim.better), side(claim.worse)
    present = all(name == GOLD_STANDARD or f"{arch} {name}" in values for name in (claim.better, claim.worse))
    if not present or claim.measure not in lower_better:
        return ClaimResult(claim, arch, None, "not run in this preset")
    seeds = sorted((better or worse or {}).keys())
    constant = gold.get(claim.measure, math.nan)
    differences = [oriented((better or {}).get(s, constant) - (worse or {}).get(s, constant),
                            lower_better[claim.measure]) for s in seeds]
    difference = summarise_seeds(differences)
    return ClaimResult(claim, arch, difference, verdict(difference, claim.equal))
