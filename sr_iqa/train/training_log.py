"""What the loop reports every ``logger.print_freq`` iterations: the mean losses and monitors since the last
report, over every rank, to the log, the progress bar and the trackers; a non-finite loss ends the run."""

from __future__ import annotations

import logging
import math
import time

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from sr_iqa.losses import IqaObjective
from sr_iqa.train.step import StepOutput

log = logging.getLogger("sr_iqa.train")


class IntervalMeans:
    """Per-name sums and counts, kept on the device (no host sync per step). Losses are summed as they are, so a
    NaN reaches the mean and stops the run; monitors leave non-finite values out and count only the others. A
    name counts only the micro-batches that had it (the generator's losses are absent while D warms up alone)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}
        self.monitor_names: set[str] = set()

    def add(self, output: StepOutput) -> None:
        for name, value in output.losses.items():
            self._add(name, value.float(), torch.ones((), device=value.device))
        for name, value in output.monitors.items():
            self.monitor_names.add(name)
            finite = torch.isfinite(value)
            self._add(name, torch.where(finite, value.float(), 0.0), finite.float())

    def _add(self, name: str, value: torch.Tensor, count: torch.Tensor) -> None:
        self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.counts[name] = self.counts[name] + count if name in self.counts else count

    def reduce(self, accelerator: Accelerator) -> tuple[dict[str, float], dict[str, float]]:
        """(losses, monitors): means over every rank's micro-batches; NaN for a monitor with no finite value.
        A name may be missing on some rank (stage 2's ``l_g_iqa`` where Q scored no crop of the interval), so
        the ranks first agree on the names (a small object all-gather, once per report), then one all-reduce."""
        names = sorted(self.sums)
        if accelerator.num_processes > 1:
            gathered_names = gather_object([(names, sorted(self.monitor_names))])
            names = sorted({name for rank_names, _ in gathered_names for name in rank_names})
            self.monitor_names.update(name for _, monitors in gathered_names for name in monitors)
        if not names:
            return {}, {}
        zero = torch.zeros((), device=accelerator.device)
        stacked = torch.stack([torch.stack([self.sums.get(name, zero), self.counts.get(name, zero)])
                               for name in names])
        totals = accelerator.reduce(stacked, reduction="sum").tolist()
        means = {name: total / count if count else float("nan") for name, (total, count) in zip(names, totals,
                                                                                                 strict=True)}
        self.sums.clear()
        self.counts.clear()
        losses = {name: value for name, value in means.items() if name not in self.monitor_names}
        return losses, {name: value for name, value in means.items() if name in self.monitor_names}


def unscored_q_crops(accelerator: Accelerator, iqa_objective: IqaObjective, metric: str) -> int:
    """The SR crops Q could not score since the last report, over every rank (left out of the Q term: flat crops
    have no finite features); a warning when there were any. Resets the objective's count."""
    skipped = torch.tensor(iqa_objective.skipped, device=accelerator.device)
    unscored = int(accelerator.reduce(skipped, reduction="sum"))
    iqa_objective.skipped = 0
    if unscored:
        log.warning("%d SR crops since the last report could not be scored by %s (flat crops have no finite "
                    "features) and were left out of the IQA term", unscored, metric)
    return unscored


def non_finite_losses(losses: dict[str, float]) -> str | None:
    """The same reduced values on every rank: all stop together."""
    bad = [f"{name} {value}" for name, value in losses.items() if not math.isfinite(value)]
    return ", ".join(bad) if bad else None


def report(accelerator: Accelerator, iteration: int, total: int, lr: float, losses: dict[str, float],
           monitors: dict[str, float], extra_scalars: dict[str, float], extra_text: str, bar: tqdm,
           started: float) -> None:
    """The log line, the progress bar and the trackers' ``train/*`` scalars (a NaN monitor is left out)."""
    shown = {**losses, **{name: value for name, value in monitors.items() if math.isfinite(value)}}
    bar.set_postfix(**{name: f"{value:.4f}" for name, value in losses.items()}, lr=f"{lr:.2e}")
    log.info("iter %d/%d  lr %.3e  %s  %.1f s  %s", iteration, total, lr,
             "  ".join(f"{name} {value:.4f}" for name, value in shown.items()), time.perf_counter() - started,
             extra_text)
    accelerator.log({**{f"train/{name}": value for name, value in shown.items()}, "train/lr": lr, **extra_scalars},
                    step=iteration)
