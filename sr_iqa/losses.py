"""Loss builders. Pixel losses are basicsr's own classes (they carry ``loss_weight``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from basicsr.losses.basic_loss import CharbonnierLoss, L1Loss, MSELoss
from basicsr.losses.gan_loss import GANLoss

from sr_iqa.config.call_options import build_from_block


def local_variance(image: torch.Tensor, window: int) -> torch.Tensor:
    """Per-pixel variance over a ``window`` x ``window`` neighbourhood (Nx1xHxW)."""
    pool = lambda x: F.avg_pool2d(x, window, stride=1, padding=window // 2, count_include_pad=False)  # noqa: E731
    return (pool(image * image) - pool(image) ** 2).clamp_min(0)


def negative_weight_map(original: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                        window: int) -> torch.Tensor:
    """Where the Negative GT's changes are more textured than the supervising GT's, scaled to [0, 1] per image.

    w = relu(V(|original - negative|) - V(|original - positive|)) / max, with V the local variance of the
    channel-mean absolute difference. Elsewhere (w = 0) the negative term has no effect.
    """
    to_negative = (original - negative).abs().mean(1, keepdim=True)
    to_positive = (original - positive).abs().mean(1, keepdim=True)
    weight = (local_variance(to_negative, window) - local_variance(to_positive, window)).clamp_min(0)
    peak = weight.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return weight / peak


class NegativeGTLoss(torch.nn.Module):
    """HGGT's negative-GT term: a masked L1 to the Negative GT, subtracted, so SR is pushed away from it.

    loss = -loss_weight * mean(w * |SR - negative|), w from ``negative_weight_map``; samples without a
    Negative GT contribute zero.
    """

    def __init__(self, loss_weight: float = 0.1, window_size: int = 7) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.window_size = window_size

    def forward(self, sr: torch.Tensor, original: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                has_negative: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            weight = negative_weight_map(original, positive, negative, self.window_size)
            weight = weight * has_negative.view(-1, 1, 1, 1).to(weight.dtype)
        return -self.loss_weight * (weight * (sr - negative).abs()).mean()


PIXEL_LOSS_TYPES = {"L1Loss": L1Loss, "MSELoss": MSELoss, "CharbonnierLoss": CharbonnierLoss}
NEGATIVE_LOSS_TYPES = {"NegativeGTLoss": NegativeGTLoss}
GAN_LOSS_TYPES = {"GANLoss": GANLoss}  # gan_type: vanilla, lsgan, wgan, hinge


def build_pixel_loss(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, PIXEL_LOSS_TYPES)


def build_negative_loss(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, NEGATIVE_LOSS_TYPES)


def build_gan_loss(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, GAN_LOSS_TYPES)
