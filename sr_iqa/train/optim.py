"""Optimizers and LR schedulers named by ``train.optim_g`` / ``train.scheduler``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from sr_iqa.config.call_options import build_from_block

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
