"""``brisque_pkg``: BRISQUE as the ``brisque`` package (0.2.0, Apache-2.0) scores it, in torch, differentiable.

The package's default model (``models/svm.txt``, an epsilon-SVR on 36 natural-scene statistics, and
``models/normalize.pickle``, the features' training ranges) is converted once by ``sr-iqa weights install
brisque-svr``. Its features are computed as the package computes them (skimage's grey, MSCN with a zero-padded
7-px Gaussian of sigma 7/6, an asymmetric generalised Gaussian fitted by moment matching, then the same at half
scale through OpenCV's bicubic, which torch's bicubic reproduces), in float64, so scores agree with the package's
to rounding. It is a judge no sr_iqa run trains on unless asked: a separate model from pyiqa's ``brisque``.
Lower is better; roughly 0 (pristine) to 100. Torch alone: it sits in the data-and-models layer, so that the
install check (``pretrained.checks``) can score with it; ``iqa.metrics`` loads the installed file into it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MSCN_STABILISER = 1 / 255  # the package's C
GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray
ALPHA_BRACKET = (0.05, 20.0)  # the shape parameter's search interval (natural images: 0.2 to 4)


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    window = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma ** 2))
    return (window / window.sum())[None, None]


def mscn(grey: torch.Tensor) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of Nx1xHxW grey images (zero padding, as convolve2d
    'same'). The deviation's square root is floored at 1e-6 so that a flat patch has a finite gradient."""
    window = gaussian_window().to(grey)
    mean = F.conv2d(grey, window, padding=window.shape[-1] // 2)
    second = F.conv2d(grey * grey, window, padding=window.shape[-1] // 2)
    deviation = torch.sqrt((mean * mean - second).abs().clamp_min(1e-12))
    return (grey - mean) / (deviation + MSCN_STABILISER)


def pair_products(coefficients: torch.Tensor) -> list[torch.Tensor]:
    """The MSCN map and its horizontal, vertical, main- and secondary-diagonal neighbour products (cropped)."""
    m = coefficients
    return [m, m[..., :, :-1] * m[..., :, 1:], m[..., :-1, :] * m[..., 1:, :],
            m[..., :-1, :-1] * m[..., 1:, 1:], m[..., 1:, :-1] * m[..., :-1, 1:]]


def _log_phi(alpha: torch.Tensor) -> torch.Tensor:
    """log of Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), increasing in a."""
    return 2 * torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)


def _shape_parameter(target: torch.Tensor) -> torch.Tensor:
    """The a with phi(a) = target: bisection without a graph, then one Newton step with it, so that the value is
    the root and the gradient that of the implicit function (d a / d target = 1 / phi'(a))."""
    log_target = torch.log(target)
    with torch.no_grad():
        low = torch.full_like(target, math.log(ALPHA_BRACKET[0]))
        high = torch.full_like(target, math.log(ALPHA_BRACKET[1]))
        for _ in range(60):
            middle = (low + high) / 2
            below = _log_phi(middle.exp()) < log_target.detach()
            low, high = torch.where(below, middle, low), torch.where(below, high, middle)
        root = ((low + high) / 2).exp()
        u = 1 / root
        slope = (4 * torch.digamma(2 * u) - torch.digamma(u) - 3 * torch.digamma(3 * u)) * (-u * u)
    return root - (_log_phi(root) - log_target) / slope


def aggd_features(values: torch.Tensor, full: bool) -> list[torch.Tensor]:
    """The package's asymmetric generalised Gaussian fit of each row of N x P values: [shape, variance] for the
    MSCN map (``full`` False), [shape, mean, left variance, right variance] for a neighbour product."""
    negative, positive = values < 0, values >= 0
    left = (values.square() * negative).sum(1) / negative.sum(1)
    right = (values.square() * positive).sum(1) / positive.sum(1)
    ratio = values.abs().mean(1) ** 2 / values.square().mean(1)
    gamma = left.sqrt() / right.sqrt()
    target = ratio * (gamma ** 3 + 1) * (gamma + 1) / (gamma ** 2 + 1) ** 2
    alpha = _shape_parameter(target)
    if not full:
        return [alpha, (left + right) / 2]
    constant = torch.exp((torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)) / 2)
    mean = (right.sqrt() - left.sqrt()) * constant * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
    return [alpha, mean, left, right]


def scale_features(grey: torch.Tensor) -> torch.Tensor:
    """N x 18 features of one scale."""
    maps = pair_products(mscn(grey))
    return torch.stack([f for i, m in enumerate(maps) for f in aggd_features(m.flatten(1), i > 0)], dim=1)


def half_scale(grey: torch.Tensor) -> torch.Tensor:
    """cv2.resize(fx=fy=0.5, INTER_CUBIC): output size rounded half to even, bicubic a=-0.75, edges clamped."""
    height, width = grey.shape[-2:]
    padded = F.pad(grey, (0, 2, 0, 2), mode="replicate")  # clamped taps past the edge; positions unchanged
    halved = F.interpolate(padded, scale_factor=0.5, mode="bicubic", align_corners=False,
                           recompute_scale_factor=False)
    return halved[..., :round(height / 2), :round(width / 2)]


def brisque_features(images: torch.Tensor) -> torch.Tensor:
    """N x 36 features of Nx3xHxW RGB images in [0, 1] (Nx1xHxW: already grey)."""
    images = images.double()
    grey = sum(w * images[:, c:c + 1] for c, w in enumerate(GREY_WEIGHTS)) if images.shape[1] == 3 else images
    return torch.cat([scale_features(grey), scale_features(half_scale(grey))], dim=1)


class BrisqueSVR(torch.nn.Module):
    """pyiqa's metric shape: ``metric(images)`` -> one score per image; NR, lower is better."""

    metric_mode = "NR"
    lower_better = True

    def __init__(self, model: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for name in ("support_vectors", "coefficients", "feature_min", "feature_max", "rho", "gamma"):
            self.register_buffer(name, model[name].double())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = brisque_features(images)
        scaled = -1 + 2 * (features - self.feature_min) / (self.feature_max - self.feature_min)
        distances = (scaled[:, None] - self.support_vectors[None]).square().sum(-1)
        return (torch.exp(-self.gamma * distances) @ self.coefficients - self.rho).to(images.dtype)
