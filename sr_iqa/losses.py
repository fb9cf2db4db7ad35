"""Loss builders. Pixel losses are basicsr's own classes (they carry ``loss_weight``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from basicsr.losses.basic_loss import CharbonnierLoss, L1Loss, MSELoss, PerceptualLoss
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


class VGGPerceptualLoss(torch.nn.Module):
    """basicsr's PerceptualLoss (VGG features; HGGT: VGG19, conv1_2 0.1, conv2_2 0.1, conv3_4/4_4/5_4 1),
    returning one number: the perceptual term plus the style term when ``style_weight`` > 0."""

    def __init__(self, layer_weights: dict[str, float], vgg_type: str = "vgg19", use_input_norm: bool = True,
                 range_norm: bool = False, perceptual_weight: float = 1.0, style_weight: float = 0.0,
                 criterion: str = "l1") -> None:
        super().__init__()
        self.loss = PerceptualLoss(dict(layer_weights), vgg_type, use_input_norm, range_norm, perceptual_weight,
                                   style_weight, criterion)
        self.loss.requires_grad_(False)

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        return super().train(False)  # a fixed feature extractor

    def forward(self, sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        perceptual, style = self.loss(sr, target)
        terms = [t for t in (perceptual, style) if t is not None]
        return sum(terms) if terms else sr.new_zeros(())


class LPIPSLoss(torch.nn.Module):
    """The lpips package's LPIPS as a loss (inputs in [0, 1]); ``net``: alex, vgg or squeeze."""

    def __init__(self, net: str = "alex", loss_weight: float = 1.0) -> None:
        super().__init__()
        import lpips

        self.lpips = lpips.LPIPS(net=net, verbose=False)
        self.lpips.requires_grad_(False)
        self.loss_weight = loss_weight

    def train(self, mode: bool = True) -> LPIPSLoss:
        return super().train(False)

    def forward(self, sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * self.lpips(sr * 2 - 1, target * 2 - 1).mean()


PIXEL_LOSS_TYPES = {"L1Loss": L1Loss, "MSELoss": MSELoss, "CharbonnierLoss": CharbonnierLoss}
PERCEPTUAL_LOSS_TYPES = {"PerceptualLoss": VGGPerceptualLoss, "LPIPS": LPIPSLoss}
NEGATIVE_LOSS_TYPES = {"NegativeGTLoss": NegativeGTLoss}
GAN_LOSS_TYPES = {"GANLoss": GANLoss}


def transformed_view(image: torch.Tensor, flip: bool, dy: int, dx: int, factor: float,
                     max_shift: int) -> torch.Tensor:
    """``image`` (NxCxHxW) flipped left-right, moved by (dy, dx) pixels with reflected borders, upscaled."""
    if flip:
        image = image.flip(-1)
    if dy or dx:
        height, width = image.shape[-2:]
        padded = F.pad(image, (max_shift, max_shift, max_shift, max_shift), mode="reflect")
        image = padded[..., max_shift - dy: max_shift - dy + height, max_shift - dx: max_shift - dx + width]
    if factor > 1:
        image = F.interpolate(image, scale_factor=factor, mode="bilinear", align_corners=False)
    return image


def random_view(image: torch.Tensor, max_shift: int = 4, max_upscale: float = 1.25) -> torch.Tensor:
    """A random flip, shift and upscale of the batch, drawn from torch's RNG (saved with the training state).

    Used on SR before Q (``train.iqa_opt.augment``): noise tuned to one pixel grid and one scale stops paying
    off when the metric sees a random resampling of the image. Upscaling only, so NIQE's 96-pixel minimum holds.
    """
    flip, shift_y, shift_x, upscale = torch.rand(4).tolist()
    return transformed_view(image, flip < 0.5, round(shift_y * 2 * max_shift) - max_shift,
                            round(shift_x * 2 * max_shift) - max_shift, 1 + upscale * (max_upscale - 1), max_shift)


class IqaObjective(torch.nn.Module):
    """Stage 2's direct term: ``-loss_weight * Q(SR)`` for a higher-better Q, ``+loss_weight * Q(SR)`` for a
    lower-better one, so that minimising the loss always improves Q.

    Q is the metric factory's loss form (frozen, eval mode, kept out of DDP) and runs in fp32 with
    autocast off: pyiqa's statistics (NIQE's covariances, MUSIQ's softmax) are not bf16-safe. Images
    a metric cannot score (NIQE on a flat crop has no finite features) are left out of the mean
    instead of stopping the run; ``skipped`` counts them.
    """

    def __init__(self, metric: torch.nn.Module, loss_weight: float, augment: bool = False) -> None:
        super().__init__()
        self.metric = metric
        self.loss_weight = loss_weight
        self.augment = augment
        self.sign = 1.0 if bool(metric.lower_better) else -1.0
        self.skipped = 0

    def _scores(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image Q of the batch, without the images the metric cannot score (counted in ``skipped``)."""
        from sr_iqa.iqa.metrics import score_each

        scores, _ = score_each(self.metric, images)
        finite = torch.isfinite(scores)
        self.skipped += int((~finite).sum())
        return scores[finite]

    def forward(self, sr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss term, mean Q detached) for a batch of SR images in [0, 1]; (0, nan) if no image can be scored."""
        with torch.autocast(device_type=sr.device.type, enabled=False):
            image = sr.float().clamp(0, 1)
            if self.augment:
                image = random_view(image)
            scores = self._scores(image)
        if len(scores) == 0:
            return sr.sum() * 0.0, sr.new_tensor(float("nan")).float()
        q = scores.mean()
        return self.sign * self.loss_weight * q, q.detach()


def build_pixel_loss(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, PIXEL_LOSS_TYPES)


def build_perceptual_loss(block: Mapping[str, Any], weights_dir: Path | None = None) -> torch.nn.Module:
    """Backbone weights (VGG, AlexNet) go through the same lookup as metric weights: one clear message if missing."""
    from sr_iqa.iqa.weights import weight_lookup

    with weight_lookup("train.perceptual_opt", weights_dir):
        return build_from_block(block, PERCEPTUAL_LOSS_TYPES)


def build_negative_loss(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, NEGATIVE_LOSS_TYPES)


def build_gan_loss(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, GAN_LOSS_TYPES)
