"""The experiment's claims, declared before any run, and how each is decided on paired per-seed differences.

Three kinds, most binding first:
- the **positive control** (UPos on labels that agree with Q, against originals only): decidable when the 95%
  interval of its Q difference lies above the declared minimum effect. If it does not, the data and Q cannot show
  a sampler's effect, and the sampler claims are "not testable", never "not reproduced".
- the **primary claims**, a few, each a one-sided paired t-test of "the difference exceeds the minimum effect",
  with Holm's step-down correction over the family: "reproduced" only when the Holm-adjusted p is below 0.05.
- the **fine orderings** (AMO > SMP > SMA > UPos > Rand, the stage-2 variants, the Gold Standard): their paper
  differences are 0.1 to 3 MUSIQ points after 300k iterations on 20k groups, out of reach here; their differences
  are printed without verdicts.

The paper's figures are those of Zhang et al. (CVPR 2025, arXiv 2504.18524) as the project's issue 18 quotes them:
its SwinIR table with MUSIQ. They are labelled so, and were not checked against the paper here (no network).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from sr_iqa.ablation.intervals import SeedSummary, summarise_seeds
from sr_iqa.evaluate.multi_gt import GOLD_STANDARD

ALPHA = 0.05
ORIGINALS = "Original"  # the sampler "original": originals only
CONTROL = "Control"  # the positive control's stage-1 variant name
NOISE_PER_GAIN = "noise per Q gain"
Q_GAIN, GAMING_GAP, STRUCTURED_NOISE, PSNR_CHANGE = "Q gain", "gaming gap", "structured noise", "PSNR change"
STAGE2_MEASURES = (Q_GAIN, GAMING_GAP, STRUCTURED_NOISE, NOISE_PER_GAIN, PSNR_CHANGE)  # against the base run
PAPER = "SwinIR, MUSIQ ↑ (paper's table as quoted in issue 18; not checked against the paper here)"


@dataclass(frozen=True)
class Claim:
    """``better`` above ``worse`` on ``measure`` (method names without the arch, e.g. "AMO+FT"; either may be the
    Gold Standard). ``paper``: the paper's figures behind it, in the units and model ``PAPER`` names."""

    text: str
    paper: str
    better: str
    worse: str
    measure: str  # "Q", a metric name, "<metric> vs original", or a stage-2 measure
    sampler_claim: bool = False  # depends on the positive control


CONTROL_CLAIM = Claim("Positive control (UPos on labels that agree with Q) above originals only",
                      "none: a check of this design", CONTROL, ORIGINALS, "Q")
PRIMARY_CLAIMS = (
    Claim("Q-guided sampling (AMO) above originals only", "68.08 vs 59.47", "AMO", ORIGINALS, "Q",
          sampler_claim=True),
    Claim("The fine-tuning stage (LoRA) gains Q: AMO+FT above AMO", "70.81 vs 68.08", "AMO+FT", "AMO", "Q"),
    Claim("LoRA adds less structured noise per unit of Q gain than full fine-tuning", "qualitative (full FT: "
          "structured adversarial noise)", "AMO+FT", "AMO+full FT", NOISE_PER_GAIN),
)
FINE_ORDERINGS = (
    Claim("AMO above SMP", "68.08 vs 66.83", "AMO", "SMP", "Q"),
    Claim("SMP above SMA (paper: ≈)", "66.83 vs 66.73", "SMP", "SMA", "Q"),
    Claim("SMA above UPos", "66.73 vs 66.39", "SMA", "UPos", "Q"),
    Claim("SMP above UPos", "66.83 vs 66.39", "SMP", "UPos", "Q"),
    Claim("UPos above Rand", "66.39 vs 65.27", "UPos", "Rand", "Q"),
    Claim("Rand above originals only", "65.27 vs 59.47", "Rand", ORIGINALS, "Q"),
    Claim("UPos above originals only", "66.39 vs 59.47", "UPos", ORIGINALS, "Q"),
    Claim("AMO no further from the original than UPos (LPIPS-ST; here the VGG distance)", "0.124 vs 0.129",
          "AMO", "UPos", "vgg_dist vs original"),
    Claim("UPos+FT above UPos", "69.70 vs 66.39", "UPos+FT", "UPos", "Q"),
    Claim("UPos+FT_HP above UPos", "68.38 vs 66.39", "UPos+FT_HP", "UPos", "Q"),
    Claim("UPos+FT_IG above UPos+FT_HP", "69.37 vs 68.38", "UPos+FT_IG", "UPos+FT_HP", "Q"),
    Claim("AMO+FT above UPos+FT", "70.81 vs 69.70", "AMO+FT", "UPos+FT", "Q"),
    Claim("PSNR falls from originals only to AMO+FT", "22.72 vs 21.77 dB", ORIGINALS, "AMO+FT", "psnr vs original"),
    Claim("AMO+FT above the Gold Standard", "70.81 vs 69.64", "AMO+FT", GOLD_STANDARD, "Q"),
    Claim("AMO below the Gold Standard", "68.08 vs 69.64", GOLD_STANDARD, "AMO", "Q"),
    Claim("LoRA adds less structured noise than full fine-tuning (at equal lambda_Q)", "qualitative",
          "AMO+FT", "AMO+full FT", "structured noise"),
)


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    arch: str
    difference: SeedSummary | None  # of better - worse, positive favouring ``better``; None: not in this preset
    verdict: str
    p_value: float = math.nan  # primary claims: one-sided, before adjustment
    adjusted_p: float = math.nan  # primary claims: Holm-adjusted


def one_sided_p(differences: Sequence[float], min_effect: float) -> float:
    """p of the paired one-sided t-test of H0 "mean difference <= min_effect" (scipy's; NaN values left out); NaN
    with fewer than two finite values; 0 or 1 when they do not vary (where t is undefined)."""
    finite = [d for d in differences if not math.isnan(d)]
    if len(finite) < 2:
        return math.nan
    if max(finite) == min(finite):
        return 0.0 if finite[0] > min_effect else 1.0
    return float(stats.ttest_1samp(finite, min_effect, alternative="greater").pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order (a NaN p stays NaN and is not counted in m)."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class ClaimFamilies:
    """The claims an experiment declares: the control (decided first; the sampler claims are read only when it
    passes), the primary family (Holm) and the fine orderings (no verdicts)."""

    control: Claim | None
    primary: tuple[Claim, ...]
    fine: tuple[Claim, ...]


BUILT_IN = ClaimFamilies(CONTROL_CLAIM, PRIMARY_CLAIMS, FINE_ORDERINGS)


def declared_claims(block: object | None) -> ClaimFamilies:
    """The families of an experiment file's ``experiment.claims`` block (``ClaimsOptions``); without one, the
    built-in control, primary claims and fine orderings."""
    if block is None:
        return BUILT_IN

    def claim(option: object) -> Claim:
        return Claim(option.text, option.paper, option.better, option.worse, option.measure, option.sampler_claim)

    return ClaimFamilies(None if block.control is None else claim(block.control),
                         tuple(claim(c) for c in block.primary), tuple(claim(c) for c in block.fine))


def control_verdict(difference: SeedSummary, min_effect: float, claim: Claim = CONTROL_CLAIM) -> str:
    if difference.seeds < 2 or math.isnan(difference.half_width):
        return "not decidable (fewer than two seeds with a score)"
    if difference.mean - difference.half_width > min_effect:
        return (f"decidable: {claim.better} beats {claim.worse} on {claim.measure} (95% interval above the minimum "
                "effect)")
    return ("NOT decidable: the interval does not lie above the minimum effect, so this design cannot see a "
            f"sampler's effect on {claim.measure}")


def primary_verdict(difference: SeedSummary, adjusted_p: float, control_passed: bool, sampler_claim: bool) -> str:
    if sampler_claim and not control_passed:
        return "not testable with this data and Q (the positive control is not decidable)"
    if math.isnan(adjusted_p):
        return "not decidable (fewer than two seeds with a value)"
    if adjusted_p < ALPHA:
        return f"reproduced (Holm-adjusted p = {adjusted_p:.3f})"
    if not math.isnan(difference.half_width) and difference.mean + difference.half_width < 0:
        return f"not reproduced: the opposite holds (95% interval below 0; adjusted p = {adjusted_p:.3f})"
    return f"not shown (Holm-adjusted p = {adjusted_p:.3f})"


def decide_primary(differences: dict[Claim, list[float] | None], arch: str, min_effects: dict[str, float],
                   control_passed: bool) -> list[ClaimResult]:
    """The primary family decided together (Holm over the claims run in this preset)."""
    present = [(claim, values) for claim, values in differences.items() if values is not None]
    p_values = [one_sided_p(values, min_effects.get(claim.measure, 0.0)) for claim, values in present]
    adjusted = dict(zip((claim for claim, _ in present), holm(p_values), strict=True))
    raw = dict(zip((claim for claim, _ in present), p_values, strict=True))
    results = []
    for claim, values in differences.items():
        if values is None:
            results.append(ClaimResult(claim, arch, None, "not run in this preset"))
            continue
        summary = summarise_seeds(values)
        results.append(ClaimResult(claim, arch, summary, primary_verdict(summary, adjusted[claim], control_passed,
                                                                         claim.sampler_claim),
                                   raw[claim], adjusted[claim]))
    return results
