"""Iteration counts from a time budget: a plan that fits a short GPU loan on whatever machine runs it.

Before the first step, two short trainings of the plan's first stage-1 run (k and 2k iterations, in this process,
in a scratch folder) give the seconds per iteration r and the fixed cost o of a training (start-up, warm-up, the
final save); one evaluation of the first reference row gives the seconds e of an evaluation. A first, untimed
training of k iterations takes the process's one-time costs (imports, kernels, compilation): timed first, they
once made the k-run slower than the 2k-run, r came out as zero and the plan asked for millions of iterations.
Should the 2k-run still not be the slower one, r is taken as its time per iteration, an upper bound. Scoring the
probe evaluation's SR images with Q as the analysis does gives a, the analysis' seconds per evaluation, and s is what
the experiment has already spent (data, gate, score cache, the probe itself). With n1 stage-1 and n2 stage-2
trainings, stage 2 at ``stage2_fraction`` of stage 1's iterations N, and m evaluations:

    s + (n1 + n2) o + m (e + a) + r N (n1 + n2 * stage2_fraction) <= seconds

N is the largest count that fits (at least ``min_iterations``). The plan is written once, before any result, and
read back by every later invocation, so a resumed experiment trains the same counts.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import MISSING

from sr_iqa.ablation.plan import Step
from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.errors import SrIqaError

TIME_PLAN = "time_plan.json"  # in the ablation's folder


@dataclass
class TimeBudgetOptions:
    seconds: float = MISSING  # the whole experiment after the install: data, gate, probe, steps and analysis
    probe_iterations: int = 5  # k: the probe trains k and 2k iterations
    stage2_fraction: float = 0.5  # stage 2's iterations as a fraction of stage 1's
    min_iterations: int = 4


@dataclass(frozen=True)
class TimePlan:
    seconds_per_iteration: float  # r
    seconds_per_training: float  # o: a training's cost beyond its iterations
    seconds_per_eval: float  # e
    stage1_iterations: int
    stage2_iterations: int
    planned_seconds: float  # of the whole experiment at these rates, s included
    budget_seconds: float
    seconds_per_analysis: float = 0.0  # a: Q of one evaluation's SR images (the analysis, after the steps)
    seconds_spent: float = 0.0  # s: before the plan (data, gate, score cache, probe)

    def line(self) -> str:
        return (f"time plan: {self.seconds_per_iteration:.3f} s per iteration, {self.seconds_per_training:.1f} s per "
                f"training beyond its iterations, {self.seconds_per_eval:.1f} + "
                f"{self.seconds_per_analysis:.1f} s per evaluation and its analysis, {self.seconds_spent:.0f} s spent "
                "before the plan (measured here) -> "
                f"{self.stage1_iterations} stage-1 and {self.stage2_iterations} stage-2 iterations, planned "
                f"{self.planned_seconds:.0f} s in all for a budget of {self.budget_seconds:.0f} s"
                + (" (OVER the budget even at the minimum count: the fixed costs alone exceed it)"
                   if self.planned_seconds > self.budget_seconds else ""))

    def stage1_overrides(self) -> list[str]:
        return [f"train.total_iter={self.stage1_iterations}", f"logger.save_checkpoint_freq={self.stage1_iterations}"]

    def stage2_overrides(self) -> list[str]:
        return [f"train.total_iter={self.stage2_iterations}", f"logger.save_checkpoint_freq={self.stage2_iterations}"]


def fit_iterations(budget: TimeBudgetOptions, per_iteration: float, per_training: float, per_eval: float,
                   stage1_runs: int, stage2_runs: int, evals: int, per_analysis: float = 0.0, spent: float = 0.0
                   ) -> TimePlan:
    """The largest stage-1 count N that fits the budget at these rates (the formula in the module docstring)."""
    fixed = spent + (stage1_runs + stage2_runs) * per_training + evals * (per_eval + per_analysis)
    weight = per_iteration * (stage1_runs + stage2_runs * budget.stage2_fraction)
    stage1 = max(budget.min_iterations, int((budget.seconds - fixed) / weight) if weight > 0 else 0)
    stage2 = max(1, int(stage1 * budget.stage2_fraction)) if stage2_runs else 0
    planned = fixed + per_iteration * (stage1_runs * stage1 + stage2_runs * stage2)
    return TimePlan(per_iteration, per_training, per_eval, stage1, stage2, planned, budget.seconds, per_analysis,
                    spent)


def measure_and_plan(budget: TimeBudgetOptions, steps: list[Step], folder: Path, run_in_process, say=print,
                     started: float | None = None, analyse_images: Callable[[Path], object] | None = None
                     ) -> TimePlan:
    """The recorded plan in ``folder``, else one measured now (``run_in_process``: a planned command -> exit
    status) and recorded there. ``started``: ``time.monotonic()`` when the experiment began (s counts from it);
    ``analyse_images``: what the analysis does with a folder of SR images (a is its time on the probe's)."""
    path = folder / TIME_PLAN
    if path.is_file():
        plan = TimePlan(**json.loads(path.read_text()))
        say(plan.line() + " (recorded before the first step)")
        return plan
    scratch = folder / "timing_probe"
    k = budget.probe_iterations
    seconds = _probe_trainings(next(step for step in steps if step.kind == "stage1"), k, scratch, run_in_process)
    reference = next((step for step in steps if step.kind == "eval" and step.run.startswith("reference_")), None)
    per_eval, per_analysis = (0.0, 0.0) if reference is None else \
        _probe_evaluation(reference, scratch / "eval", run_in_process, analyse_images)
    shutil.rmtree(scratch, ignore_errors=True)
    per_iteration = probe_rate(seconds[k], seconds[2 * k], k)
    per_training = max(seconds[k] - k * per_iteration, 0.0)
    spent = time.monotonic() - started if started is not None else 0.0
    plan = fit_iterations(budget, per_iteration, per_training, per_eval,
                          sum(s.kind == "stage1" for s in steps), sum(s.kind == "stage2" for s in steps),
                          sum(s.kind == "eval" for s in steps), per_analysis, spent)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(asdict(plan), indent=1))
    say(plan.line())
    return plan


def _probe_trainings(first: Step, k: int, scratch: Path, run_in_process) -> dict[int, float]:
    """Seconds of the first stage-1 run trained for k and 2k iterations, after an untimed warm-up run (key 0)."""
    seconds = {}
    for iterations in (0, k, 2 * k):
        started = time.monotonic()
        count = iterations or k
        command = [*first.command, f"path.experiments_root={scratch}", f"name=probe_{iterations}",
                   f"train.total_iter={count}", f"logger.save_checkpoint_freq={count}"]
        if run_in_process(command) != 0:
            raise SrIqaError(f"the timing probe's training failed: {' '.join(command)}")
        seconds[iterations] = time.monotonic() - started
    return seconds


def _probe_evaluation(reference: Step, out: Path, run_in_process,
                      analyse_images: Callable[[Path], object] | None) -> tuple[float, float]:
    """(e, a): seconds of one evaluation (the first reference row, its SR images saved) and of the analysis of
    those images."""
    started = time.monotonic()
    command = _with(_with(reference.command, "--out", str(out)), "--save-sr", str(out / "sr"))
    if run_in_process(command) != 0:
        raise SrIqaError(f"the timing probe's evaluation failed: {' '.join(command)}")
    per_eval = time.monotonic() - started
    if analyse_images is None:
        return per_eval, 0.0
    started = time.monotonic()
    analyse_images(out / "sr")
    return per_eval, time.monotonic() - started


def probe_rate(k_seconds: float, twice_k_seconds: float, k: int) -> float:
    """Seconds per iteration from a k-run and a 2k-run: their difference over k, or, when the 2k-run was not the
    slower (noise, or a one-time cost the warm-up did not take), the 2k-run's time per iteration (an upper
    bound: the plan then stays within the budget)."""
    if twice_k_seconds > k_seconds:
        return (twice_k_seconds - k_seconds) / k
    return twice_k_seconds / (2 * k)


def _with(command: list[str], flag: str, value: str) -> list[str]:
    """``command`` with the value after ``flag`` replaced."""
    at = command.index(flag)
    return [*command[:at + 1], value, *command[at + 2:]]
