"""How many seeds a claim needs, from a pilot's per-seed spread, before the runs that decide it.

A claim is decided by the one-sided paired t-test of "the mean difference exceeds the minimum effect" (``claims``).
Its power against a true difference of ``minimum effect + effect`` with the pilot's standard deviation of the
paired differences is that of the noncentral t distribution: the probability that t exceeds the critical value,
with noncentrality ``effect / sd * sqrt(n)``. The number of seeds is the smallest n that reaches the target power,
kept within the file's bounds (at least ``min_seeds``: a sign-flip test on three seeds cannot go below p = 0.125).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scipy import stats

from sr_iqa.atomic_files import write_text_atomically

ALPHA = 0.05
POWER_FILE = "power.json"  # in the ablation's folder: the pilot's plan, reused by a rerun


@dataclass
class PowerOptions:
    """``experiment.power``: a pilot of the control's two arms sets the number of seeds of every run."""

    effect: float = 0.5  # the smallest true difference beyond the minimum effect worth detecting, in the measure
    target: float = 0.8  # the power asked for
    pilot_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    min_seeds: int = 8
    max_seeds: int = 12  # what the machine can afford; the page says when the target needs more


def t_test_power(n: int, effect: float, sd: float, alpha: float = ALPHA) -> float:
    """The power of the one-sided one-sample (paired) t-test with n values at a true shift ``effect`` above the
    null, the differences' standard deviation ``sd``."""
    if n < 2 or not sd > 0:
        return math.nan
    critical = stats.t.ppf(1 - alpha, n - 1)
    return float(stats.nct.sf(critical, n - 1, effect / sd * math.sqrt(n)))


def seeds_for_power(effect: float, sd: float, target: float = 0.8, alpha: float = ALPHA, limit: int = 10_000) -> int:
    """The smallest n >= 2 whose power reaches ``target`` (``limit`` when none below it does)."""
    for n in range(2, limit):
        if t_test_power(n, effect, sd, alpha) >= target:
            return n
    return limit


@dataclass(frozen=True)
class PowerPlan:
    """The pilot's spread and what it asks for, recorded beside the runs so that a rerun keeps the same seeds."""

    claim: str
    measure: str
    pilot_seeds: list[int]
    pilot_differences: list[float]
    sd: float
    effect: float
    target: float
    needed: int  # seeds for the target power
    seeds: list[int]  # the seeds every run uses: the pilot's, then the next integers

    def line(self) -> str:
        power = t_test_power(len(self.seeds), self.effect, self.sd)
        short = (f"; the target needs {self.needed}, more than the {len(self.seeds)} this file allows, so the "
                 f"claim runs at power {power:.2f}") if self.needed > len(self.seeds) else ""
        return (f"power: the pilot ({len(self.pilot_seeds)} seeds) of '{self.claim}' gives a paired difference of "
                f"{_mean(self.pilot_differences):.4g} with SD {self.sd:.4g} on {self.measure}; {self.needed} seeds "
                f"detect a true difference of {self.effect:g} beyond the minimum effect with power {self.target:g} "
                f"(one-sided t, alpha {ALPHA}); running {len(self.seeds)} seeds {self.seeds}{short}")

    def save(self, path: Path) -> None:
        write_text_atomically(path, json.dumps(asdict(self), indent=1) + "\n")


def plan_seeds(options: PowerOptions, claim: str, measure: str, differences: Sequence[float]) -> PowerPlan:
    """The seeds every run uses, from the pilot's paired differences of the control claim."""
    finite = [d for d in differences if math.isfinite(d)]
    sd = float(stats.tstd(finite)) if len(finite) >= 2 else math.nan
    needed = seeds_for_power(options.effect, sd, options.target) if sd > 0 else options.min_seeds
    count = max(options.min_seeds, min(needed, options.max_seeds), len(options.pilot_seeds))
    seeds = list(options.pilot_seeds)
    candidate = 0
    while len(seeds) < count:
        if candidate not in seeds:
            seeds.append(candidate)
        candidate += 1
    return PowerPlan(claim, measure, list(options.pilot_seeds), [float(d) for d in differences], sd, options.effect,
                     options.target, needed, seeds)


def read_plan(path: Path) -> PowerPlan | None:
    """The recorded plan, or None when there is none or it cannot be read (the pilot then decides again)."""
    try:
        return PowerPlan(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan
