"""Loss builders. Pixel losses are basicsr's own classes (they carry ``loss_weight``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from basicsr.losses.basic_loss import CharbonnierLoss, L1Loss, MSELoss, PerceptualLoss
from basicsr.losses.gan_loss import GANLoss

from sr_iqa.config.call_options import build_from_block
from sr_iqa.data.groups import LABEL_VALUES
from sr_iqa.iqa.metrics import score_each
from sr_iqa.iqa.vgg_backbone import TORCHVISION_VGG, vgg_backbone
from sr_iqa.score_rules import oriented


def local_variance(image: torch.Tensor, window: int) -> torch.Tensor:
    """Per-pixel unbiased variance over the ``window`` x ``window`` neighbourhood (Nx1xHxW), borders reflected:
    HGGT's local weight of a residual map."""
    pad = window // 2
    padded = F.pad(image, (pad, pad, pad, pad), mode="reflect")
    mean = F.avg_pool2d(padded, window, stride=1)
    mean_of_squares = F.avg_pool2d(padded * padded, window, stride=1)
    count = window * window
    return ((mean_of_squares - mean * mean) * count / (count - 1)).clamp_min(0)


def hggt_weight_maps(original: torch.Tensor, reference: torch.Tensor, negative: torch.Tensor,
                     reference_votes: torch.Tensor, negative_votes: torch.Tensor, window: int = 3,
                     power: float = 0.75) -> tuple[torch.Tensor, torch.Tensor]:
    """HGGT's maps (``get_overall_map``): for the reference (a Positive GT, or the original) and the Negative GT,
    the local variance of the channel-summed |original - GT|, to the power 3/4, times the GT's votes / 3."""
    def overall(gt: torch.Tensor, votes: torch.Tensor) -> torch.Tensor:
        residual = (original - gt).abs().sum(1, keepdim=True)
        return votes.view(-1, 1, 1, 1).to(residual.dtype) / 3 * local_variance(residual, window) ** power

    return overall(reference, reference_votes), overall(negative, negative_votes)


class NegativeGTLoss(torch.nn.Module):
    """HGGT's negative-GT term (``Ours_PosNegGT_Model`` with ``neg_opt: {type: L1Loss, loss_weight: 300}``).

    For a sample whose group has a Negative GT: the map of a random Negative, zeroed where the map of a random
    Positive (the reference) is at least as large (not refined when the group has no Positive; the original
    is then the reference), weights an L1 distance between SR and that Negative, which is subtracted:

        loss = -loss_weight / B * sum over samples with a Negative of mean_{c,h,w} |m * (SR - negative)|

    so minimising it pushes SR away from the Negative GT where its changes are the textured ones. Samples
    without a Negative count in B and add nothing.
    """

    def __init__(self, loss_weight: float = 300.0, window_size: int = 3, power: float = 0.75) -> None:
        super().__init__()
        if not (isinstance(window_size, int) and window_size >= 3 and window_size % 2):
            raise ValueError(f"window_size must be an odd whole number >= 3 (a centred window with a variance), "
                             f"got {window_size!r}")
        self.loss_weight = loss_weight
        self.window_size = window_size
        self.power = power

    def forward(self, sr: torch.Tensor, original: torch.Tensor, reference: torch.Tensor, negative: torch.Tensor,
                reference_votes: torch.Tensor, negative_votes: torch.Tensor, has_positive: torch.Tensor,
                has_negative: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(sr.device.type, enabled=False):
            reference_map, negative_map = hggt_weight_maps(original.float(), reference.float(), negative.float(),
                                                           reference_votes, negative_votes, self.window_size,
                                                           self.power)
            refine = has_positive.view(-1, 1, 1, 1) & (reference_map >= negative_map)
            weight = negative_map.masked_fill(refine, 0.0)
        per_sample = (weight * (sr.float() - negative.float())).abs().mean(dim=(1, 2, 3))
        return -self.loss_weight * (per_sample * has_negative.to(per_sample.dtype)).mean()


class VGGPerceptualLoss(torch.nn.Module):
    """basicsr's PerceptualLoss (VGG features; HGGT: VGG19, conv1_2 0.1, conv2_2 0.1, conv3_4/4_4/5_4 1),
    returning one number: the perceptual term plus the style term when ``style_weight`` > 0.

    ``vgg_weights`` picks the backbone: ``torchvision`` (BasicSR's, downloaded into torch's hub cache), or a
    VGG19 ``features`` state dict, such as ``pretrained:vgg19-caffe`` (``sr-iqa weights install vgg19-caffe``,
    the original Caffe VGG19, which installs offline). Their features differ, so loss magnitudes differ too.
    """

    def __init__(self, layer_weights: dict[str, float], vgg_type: str = "vgg19", use_input_norm: bool = True,
                 range_norm: bool = False, perceptual_weight: float = 1.0, style_weight: float = 0.0,
                 criterion: str = "l1", vgg_weights: str = TORCHVISION_VGG) -> None:
        super().__init__()
        with vgg_backbone(vgg_type, vgg_weights):
            self.loss = PerceptualLoss(dict(layer_weights), vgg_type, use_input_norm, range_norm,
                                       perceptual_weight, style_weight, criterion)
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


class RankedGTLoss(torch.nn.Module):
    """A pairwise preference over the GTs of a sample, ranked by their cached Q (train.rank_opt): Q on the crop with
    cached AMO (the score grid's box), each GT's whole-image Q with SMA and SMP.

    With ``d_i = mean |SR - GT_i|`` and the valid GTs sorted by Q, best first, the ``n = min(pairs, K // 2)`` best
    (T) and the ``n`` worst (B) form ``n * n`` pairs, each costing ``t * softplus((d_top - d_bottom + margin) / t)``
    (a hinge ``max(0, d_top - d_bottom + margin)`` smoothed at temperature ``t``): the loss falls as SR moves
    towards the best-ranked GTs and away from the worst. Samples with fewer than two valid GTs add nothing; the
    loss is the mean over the other samples' pairs, times ``loss_weight``. ``exclude_labels``: GTs with these
    labels never take part (the samplers' option; the trainer's dataset applies this loss's checked tuple).
    """

    def __init__(self, loss_weight: float = 1.0, pairs: int = 1, margin: float = 0.0, temperature: float = 0.01,
                 exclude_labels: Sequence[str] = ()) -> None:
        super().__init__()
        if pairs < 1 or margin < 0 or temperature <= 0:
            raise ValueError(f"pairs must be at least 1, margin at least 0 and temperature above 0 (got pairs "
                             f"{pairs}, margin {margin}, temperature {temperature})")
        unknown = [label for label in exclude_labels if label not in LABEL_VALUES]
        if unknown:
            raise ValueError(f"exclude_labels holds {unknown}; labels are Positive, Similar and Negative")
        self.loss_weight, self.pairs, self.margin, self.temperature = loss_weight, pairs, margin, temperature
        self.exclude_labels = tuple(exclude_labels)

    def forward(self, sr: torch.Tensor, gts: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``sr`` B x 3 x H x W, ``gts`` B x K x 3 x H x W, ``q`` B x K (higher is better; -inf: not a candidate)."""
        distances = (sr[:, None].float() - gts.float()).abs().mean(dim=(2, 3, 4))
        order = torch.argsort(q, dim=1, descending=True)  # valid GTs first, best first
        ranked = torch.gather(distances, 1, order)
        valid = torch.isfinite(q).sum(dim=1, keepdim=True)
        count = torch.clamp(torch.minimum(valid // 2, torch.full_like(valid, self.pairs)), min=0)
        position = torch.arange(q.shape[1], device=q.device)[None]
        top = position < count
        bottom = (position >= valid - count) & (position < valid)
        pair_mask = (top[:, :, None] & bottom[:, None, :]).float()
        margins = ranked[:, :, None] - ranked[:, None, :] + self.margin
        costs = self.temperature * F.softplus(margins / self.temperature)
        pairs_per_sample = pair_mask.sum(dim=(1, 2))
        per_sample = (costs * pair_mask).sum(dim=(1, 2)) / pairs_per_sample.clamp(min=1)
        used = (pairs_per_sample > 0).float()
        return self.loss_weight * (per_sample * used).sum() / used.sum().clamp(min=1)


PIXEL_LOSS_TYPES = {"L1Loss": L1Loss, "MSELoss": MSELoss, "CharbonnierLoss": CharbonnierLoss}
RANK_LOSS_TYPES = {"RankedGTLoss": RankedGTLoss}
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
        self.sign = -oriented(1.0, bool(metric.lower_better))  # the loss falls as Q gets better
        self.skipped = 0

    def _scores(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image Q of the batch, without the images the metric cannot score (counted in ``skipped``)."""
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

    advice = ("or use the VGG19 that installs offline: `sr-iqa weights install vgg19-caffe`, then "
              "train.perceptual_opt.vgg_weights: pretrained:vgg19-caffe; or put the file in iqa.weights_dir")
    with weight_lookup("train.perceptual_opt", weights_dir, advice=advice):
        return build_from_block(block, PERCEPTUAL_LOSS_TYPES)


def build_negative_loss(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, NEGATIVE_LOSS_TYPES)


def build_gan_loss(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, GAN_LOSS_TYPES)


def build_rank_loss(block: Mapping[str, Any]) -> RankedGTLoss:
    return build_from_block(block, RANK_LOSS_TYPES)
