"""Loss builders. Pixel losses are basicsr's own classes (they carry ``loss_weight``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from basicsr.losses.basic_loss import CharbonnierLoss, L1Loss, MSELoss

from sr_iqa.config.call_options import build_from_block

PIXEL_LOSS_TYPES = {"L1Loss": L1Loss, "MSELoss": MSELoss, "CharbonnierLoss": CharbonnierLoss}


def build_pixel_loss(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, PIXEL_LOSS_TYPES)
