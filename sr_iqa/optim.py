"""Optimizers and LR schedulers named by ``train.optim_g`` / ``train.scheduler``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from sr_iqa.config.call_options import build_from_block, trial_build
from sr_iqa.errors import OptionsError

OPTIMIZER_TYPES = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
SCHEDULER_TYPES = {
    "MultiStepLR": torch.optim.lr_scheduler.MultiStepLR,
    "CosineAnnealingLR": torch.optim.lr_scheduler.CosineAnnealingLR,
}


def build_optimizer(block: Mapping[str, Any], parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Frozen parameters (a LoRA backbone) are left out."""
    return build_from_block(block, OPTIMIZER_TYPES, [p for p in parameters if p.requires_grad])


def build_scheduler(block: Mapping[str, Any] | None,
                    optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """No block means a constant learning rate (BasicSR would refuse; a short demo wants none)."""
    if block is None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return build_from_block(block, SCHEDULER_TYPES, optimizer)


def check_optimizer_and_scheduler(optim_block: Mapping[str, Any], scheduler_block: Mapping[str, Any] | None,
                                  key: str, source: str) -> None:
    """Torch checks ``lr``, ``betas``, ``eps`` and ``weight_decay`` only when the optimizer is made, and a scheduler
    fails (``T_max: 0``) or never fires (``milestones: abc``) only when it steps: both are tried here on one
    scalar parameter, so that such a value is one line at load time."""
    betas = optim_block.get("betas")
    if betas is not None and (not isinstance(betas, (list, tuple)) or len(betas) != 2):
        raise OptionsError(f"{source}: '{key}.betas' must be a list of two numbers in [0, 1), got {betas!r}")
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = trial_build(key, source, lambda: build_optimizer(optim_block, [parameter]))
    if scheduler_block is None:
        return
    milestones = scheduler_block.get("milestones")
    if milestones is not None and not (isinstance(milestones, (list, tuple)) and milestones and all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in milestones)):
        raise OptionsError(f"{source}: 'train.scheduler.milestones' must be a list of iterations (integers of at "
                           f"least 1), got {milestones!r}")
    t_max = scheduler_block.get("T_max")
    if t_max is not None and (isinstance(t_max, bool) or not isinstance(t_max, int) or t_max < 1):
        raise OptionsError(f"{source}: 'train.scheduler.T_max' must be an integer of at least 1, got {t_max!r}")
    scheduler = trial_build("train.scheduler", source, lambda: build_scheduler(scheduler_block, optimizer))

    def steps() -> None:
        for _ in range(3):
            optimizer.step()
            scheduler.step()

    trial_build("train.scheduler", source, steps)
