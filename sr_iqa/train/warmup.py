"""BasicSR's ``train.warmup_iter``: a linear learning-rate warm-up in front of any scheduler.

BasicSR (``BaseModel.update_learning_rate``, basicsr 1.4.2) sets, at iteration ``i`` (1-based) with
``i < warmup_iter``, every group's lr to ``initial_lr * i / warmup_iter``; from ``warmup_iter`` on the group
follows its scheduler, which has stepped ``i - 1`` times. sr_iqa does the same, with one difference on
purpose: BasicSR overwrites the lr the scheduler reads, so a chainable scheduler (``MultiStepLR``) goes on from
the last warm-up value and never reaches ``initial_lr`` (lr 1e-3, warm-up 4: 7.5e-4 for the rest of the run);
here the scheduler keeps its own values underneath the warm-up, so the lr after the warm-up is the scheduler's.
Closed-form schedulers (``CosineAnnealingLR``) give BasicSR's values exactly.
"""

from __future__ import annotations

from typing import Any

import torch


class LinearWarmup:
    """Wraps a scheduler (Accelerate's prepared one too); ``step()`` once per iteration, as the scheduler alone
    would be stepped. It keeps no state of its own: the scheduler's own lrs are its ``get_last_lr()``, and the
    iteration is the training's, so a resumed run re-applies the warm-up with ``start_at``."""

    def __init__(self, scheduler: Any, optimizer: torch.optim.Optimizer, warmup_iter: int) -> None:
        self.scheduler = scheduler
        self.optimizer = optimizer
        self.warmup_iter = warmup_iter
        self.finished = 0  # iterations done
        self._apply()

    def start_at(self, finished_iterations: int) -> None:
        """After a resume: the saved scheduler and optimizer are loaded; set the lr of the next iteration."""
        self.finished = finished_iterations
        self._apply()

    def _apply(self) -> None:
        """The lr of the next iteration (``finished + 1``): a warm-up fraction of ``initial_lr``, or the scheduler's."""
        iteration = self.finished + 1
        for group, scheduled in zip(self.optimizer.param_groups, self.scheduler.get_last_lr(), strict=True):
            warming = iteration < self.warmup_iter
            group["lr"] = group["initial_lr"] * iteration / self.warmup_iter if warming else scheduled

    def step(self) -> None:
        for group, scheduled in zip(self.optimizer.param_groups, self.scheduler.get_last_lr(), strict=True):
            group["lr"] = scheduled  # the scheduler steps from its own values
        self.scheduler.step()
        self.finished += 1
        self._apply()


def with_warmup(scheduler: Any, optimizer: torch.optim.Optimizer, warmup_iter: int) -> Any:
    """The scheduler itself when there is no warm-up (``warmup_iter`` -1, 0 or 1, as in BasicSR)."""
    return LinearWarmup(scheduler, optimizer, warmup_iter) if warmup_iter > 1 else scheduler
