"""LR synthesis from the original GT: HGGT's one-stage and Real-ESRGAN's two-stage degradations.

Built from basicsr's own functions (``random_mixed_kernels``, ``circular_lowpass_kernel``,
``filter2D``, the ``_pt`` noise functions, ``DiffJPEG``). As in Real-ESRGAN, blur kernels are
drawn per sample in the dataset (CPU, from the sample's own RNG, so they are reproducible and
independent of workers) and everything else runs batched on the device, drawing from the
torch RNG, which ``set_seed`` seeds and Accelerate's checkpoints save.

The option keys mirror HGGT's and Real-ESRGAN's YAML; ``*2`` keys belong to the second stage.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from basicsr.data.degradations import (
    circular_lowpass_kernel,
    random_add_gaussian_noise_pt,
    random_add_poisson_noise_pt,
    random_mixed_kernels,
)
from basicsr.utils.diffjpeg import DiffJPEG
from basicsr.utils.img_process_util import filter2D

Kernels = dict[str, torch.Tensor]
RESIZE_MODES = ("area", "bilinear", "bicubic")


def bicubic_downsample(gt: torch.Tensor, scale: int) -> torch.Tensor:
    """Nx3xHxW in [0, 1] -> Nx3x(H/scale)x(W/scale), antialiased, clamped to [0, 1]."""
    height, width = gt.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"GT size {height}x{width} is not a multiple of scale {scale}")
    lr = F.interpolate(gt, size=(height // scale, width // scale), mode="bicubic", antialias=True,
                       align_corners=False)
    return lr.clamp_(0, 1)


def matlab_bicubic_downsample(gt: torch.Tensor, scale: int) -> torch.Tensor:
    """3xHxW in [0, 1] -> 3x(H/scale)x(W/scale) by MATLAB's ``imresize`` (bicubic, antialiased) as basicsr writes
    it: the convention SR papers make their bicubic test LR with. Clamped to [0, 1] (bicubic overshoots)."""
    from basicsr.utils.matlab_functions import imresize

    height, width = gt.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"GT size {height}x{width} is not a multiple of scale {scale}")
    return imresize(gt, 1 / scale).clamp_(0, 1)


@contextlib.contextmanager
def _global_rngs_from(rng: np.random.Generator) -> Iterator[None]:
    """basicsr's kernel functions draw from ``np.random`` and ``random``; seed both from ``rng``, then restore them."""
    saved_numpy, saved_python = np.random.get_state(), random.getstate()
    seed = int(rng.integers(2**32))
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved_numpy)
        random.setstate(saved_python)


def _draw(values: list[float] | tuple[float, ...]) -> float:
    low, high = values
    return float(torch.empty(()).uniform_(low, high))


def _choice(options: tuple[str, ...], probabilities: list[float] | None = None) -> str:
    weights = torch.tensor(probabilities if probabilities is not None else [1.0] * len(options))
    return options[int(torch.multinomial(weights, 1))]


def _blur_kernel(rng: np.random.Generator, sizes: list[int], pad_to: int, kernel_list: list[str],
                 kernel_prob: list[float], sinc_prob: float, blur_sigma: list[float], betag_range: list[float],
                 betap_range: list[float]) -> np.ndarray:
    """One kernel as Real-ESRGAN's dataset draws it, zero-padded to ``pad_to``."""
    kernel_size = int(rng.choice(sizes))
    with _global_rngs_from(rng):
        if rng.random() < sinc_prob:
            omega_c = rng.uniform(np.pi / 3, np.pi) if kernel_size < 13 else rng.uniform(np.pi / 5, np.pi)
            kernel = circular_lowpass_kernel(omega_c, kernel_size, pad_to=False)
        else:
            kernel = random_mixed_kernels(kernel_list, kernel_prob, kernel_size, blur_sigma, blur_sigma,
                                          [-math.pi, math.pi], betag_range, betap_range, noise_range=None)
    pad = (pad_to - kernel_size) // 2
    return np.pad(kernel, ((pad, pad), (pad, pad)))


def _resize_noise_jpeg(out: torch.Tensor, jpeger: DiffJPEG, resize_prob: list[float], resize_range: list[float],
                       gaussian_noise_prob: float, noise_range: list[float], poisson_scale_range: list[float],
                       gray_noise_prob: float, jpeg_range: list[float] | None,
                       size: tuple[int, int] | None = None) -> tuple[torch.Tensor, str]:
    """Random resize (to ``size`` times the drawn factor when given), noise, then JPEG when ``jpeg_range``;
    also returns the interpolation mode the resize drew (HGGT's final resize reuses it)."""
    direction = _choice(("up", "down", "keep"), resize_prob)
    factor = {"up": lambda: _draw((1, resize_range[1])), "down": lambda: _draw((resize_range[0], 1)),
              "keep": lambda: 1.0}[direction]()
    mode = _choice(RESIZE_MODES)
    if size is None:
        out = F.interpolate(out, scale_factor=factor, mode=mode)
    else:
        out = F.interpolate(out, size=(int(size[0] * factor), int(size[1] * factor)), mode=mode)
    if float(torch.rand(())) < gaussian_noise_prob:
        out = random_add_gaussian_noise_pt(out, sigma_range=noise_range, clip=True, rounds=False,
                                           gray_prob=gray_noise_prob)
    else:
        out = random_add_poisson_noise_pt(out, scale_range=poisson_scale_range, gray_prob=gray_noise_prob,
                                          clip=True, rounds=False)
    if jpeg_range is not None:
        quality = out.new_zeros(out.size(0)).uniform_(*jpeg_range)
        out = jpeger(out.clamp(0, 1), quality=quality)
    return out, mode


def _filter(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    return filter2D(image.contiguous(), kernels)  # filter2D views its input


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _quantize(lr: torch.Tensor) -> torch.Tensor:
    return torch.clamp((lr * 255.0).round(), 0, 255) / 255.0


@dataclass
class BicubicDegradation:
    """Antialiased bicubic downsampling; no randomness."""

    def sample_kernels(self, rng: np.random.Generator) -> Kernels:
        return {}

    def apply(self, gt: torch.Tensor, kernels: Kernels, scale: int) -> torch.Tensor:
        return bicubic_downsample(gt, scale)

    def smallest_gt_size(self, scale: int) -> int:
        return scale


@dataclass
class HGGTDegradation:
    """HGGT's one stage: blur, random resize, Gaussian or Poisson noise, JPEG, then resize to 1/scale with the
    interpolation the first resize drew. Defaults are the values of HGGT's option files."""

    # Half-widths, as in HGGT's option files: kernel sizes 2v+1 for v in [min, max] (1, 4: 3, 5, 7, 9);
    # every kernel is zero-padded to the largest.
    blur_kernel_size_min: int = 1
    blur_kernel_size_max: int = 4
    kernel_list: list[str] = field(default_factory=lambda: ["iso", "aniso"])
    kernel_prob: list[float] = field(default_factory=lambda: [0.7, 0.3])
    sinc_prob: float = 0.01
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 1.0])
    betag_range: list[float] = field(default_factory=lambda: [0.1, 2.0])
    betap_range: list[float] = field(default_factory=lambda: [0.1, 1.0])
    resize_prob: list[float] = field(default_factory=lambda: [0.1, 0.85, 0.05])  # up, down, keep
    resize_range: list[float] = field(default_factory=lambda: [0.8, 1.2])
    gaussian_noise_prob: float = 0.5
    noise_range: list[float] = field(default_factory=lambda: [1.0, 12.0])
    poisson_scale_range: list[float] = field(default_factory=lambda: [0.05, 0.8])
    gray_noise_prob: float = 0.2
    jpeg_range: list[float] = field(default_factory=lambda: [75.0, 95.0])

    def __post_init__(self) -> None:
        if not 0 <= self.blur_kernel_size_min <= self.blur_kernel_size_max:
            raise ValueError(f"blur_kernel_size_min ({self.blur_kernel_size_min}) and blur_kernel_size_max "
                             f"({self.blur_kernel_size_max}) are half-widths: 0 <= min <= max")
        self.kernel_sizes = [2 * v + 1 for v in range(self.blur_kernel_size_min, self.blur_kernel_size_max + 1)]
        self.largest_kernel = self.kernel_sizes[-1]
        self.jpeger = DiffJPEG(differentiable=False)

    def smallest_gt_size(self, scale: int) -> int:
        """The blur pads by half a kernel (reflect padding needs a larger image); it runs on the GT crop."""
        return _round_up(self.largest_kernel // 2 + 1, scale)

    def sample_kernels(self, rng: np.random.Generator) -> Kernels:
        kernel = _blur_kernel(rng, self.kernel_sizes, self.largest_kernel, self.kernel_list, self.kernel_prob,
                              self.sinc_prob, self.blur_sigma, self.betag_range, self.betap_range)
        return {"kernel1": torch.from_numpy(kernel).float()}

    def apply(self, gt: torch.Tensor, kernels: Kernels, scale: int) -> torch.Tensor:
        height, width = gt.shape[-2:]
        self.jpeger.to(gt.device)
        out = _filter(gt, kernels["kernel1"])
        out, mode = _resize_noise_jpeg(out, self.jpeger, self.resize_prob, self.resize_range,
                                       self.gaussian_noise_prob, self.noise_range, self.poisson_scale_range,
                                       self.gray_noise_prob, self.jpeg_range)
        out = F.interpolate(out, size=(height // scale, width // scale), mode=mode)  # HGGT: the same mode
        return _quantize(out)


_REALESRGAN_KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_REALESRGAN_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


@dataclass
class RealESRGANDegradation(HGGTDegradation):
    """Real-ESRGAN's two stages, with its defaults; the second stage ends with a sinc filter and JPEG."""

    blur_kernel_size_min: int = 3  # kernel sizes 7..21, as Real-ESRGAN's dataset draws them
    blur_kernel_size_max: int = 10
    kernel_list: list[str] = field(default_factory=lambda: list(_REALESRGAN_KERNELS))
    kernel_prob: list[float] = field(default_factory=lambda: list(_REALESRGAN_KERNEL_PROB))
    sinc_prob: float = 0.1
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])
    betag_range: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range: list[float] = field(default_factory=lambda: [1.0, 2.0])
    resize_prob: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])
    resize_range: list[float] = field(default_factory=lambda: [0.15, 1.5])
    noise_range: list[float] = field(default_factory=lambda: [1.0, 30.0])
    poisson_scale_range: list[float] = field(default_factory=lambda: [0.05, 3.0])
    gray_noise_prob: float = 0.4
    jpeg_range: list[float] = field(default_factory=lambda: [30.0, 95.0])
    second_blur_prob: float = 0.8
    kernel_list2: list[str] = field(default_factory=lambda: list(_REALESRGAN_KERNELS))
    kernel_prob2: list[float] = field(default_factory=lambda: list(_REALESRGAN_KERNEL_PROB))
    sinc_prob2: float = 0.1
    blur_sigma2: list[float] = field(default_factory=lambda: [0.2, 1.5])
    betag_range2: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range2: list[float] = field(default_factory=lambda: [1.0, 2.0])
    final_sinc_prob: float = 0.8
    resize_prob2: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.3])
    resize_range2: list[float] = field(default_factory=lambda: [0.3, 1.2])
    gaussian_noise_prob2: float = 0.5
    noise_range2: list[float] = field(default_factory=lambda: [1.0, 25.0])
    poisson_scale_range2: list[float] = field(default_factory=lambda: [0.05, 2.5])
    gray_noise_prob2: float = 0.4
    jpeg_range2: list[float] = field(default_factory=lambda: [30.0, 95.0])
    # HGGT's two-stage datasets draw the second blur and the final sinc filter from their own half-widths
    # (HGGT's files: 1, 2: sizes 3, 5); unset, both stages draw from the first range, as Real-ESRGAN's dataset does.
    blur_kernel_size_min2: int | None = None
    blur_kernel_size_max2: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        low = self.blur_kernel_size_min if self.blur_kernel_size_min2 is None else self.blur_kernel_size_min2
        high = self.blur_kernel_size_max if self.blur_kernel_size_max2 is None else self.blur_kernel_size_max2
        if not 0 <= low <= high:
            raise ValueError(f"blur_kernel_size_min2 ({low}) and blur_kernel_size_max2 ({high}) are half-widths: "
                             "0 <= min <= max")
        self.kernel_sizes2 = [2 * v + 1 for v in range(low, high + 1)]
        self.largest_kernel = max(self.largest_kernel, self.kernel_sizes2[-1])  # every kernel padded to it

    def smallest_gt_size(self, scale: int) -> int:
        """The second blur runs after the first down-resize, the sinc filter at LR size; both pad by half a kernel."""
        half = self.largest_kernel // 2 + 1
        return _round_up(max(math.ceil(half / self.resize_range[0]), scale * half), scale)

    def sample_kernels(self, rng: np.random.Generator) -> Kernels:
        kernels = super().sample_kernels(rng)
        kernel2 = _blur_kernel(rng, self.kernel_sizes2, self.largest_kernel, self.kernel_list2, self.kernel_prob2,
                               self.sinc_prob2, self.blur_sigma2, self.betag_range2, self.betap_range2)
        kernels["kernel2"] = torch.from_numpy(kernel2).float()
        if rng.random() < self.final_sinc_prob:
            with _global_rngs_from(rng):
                sinc = circular_lowpass_kernel(rng.uniform(np.pi / 3, np.pi), int(rng.choice(self.kernel_sizes2)),
                                               pad_to=self.largest_kernel)
        else:  # a pulse: no filtering
            sinc = np.zeros((self.largest_kernel, self.largest_kernel))
            sinc[self.largest_kernel // 2, self.largest_kernel // 2] = 1
        kernels["sinc_kernel"] = torch.from_numpy(sinc).float()
        return kernels

    def apply(self, gt: torch.Tensor, kernels: Kernels, scale: int) -> torch.Tensor:
        height, width = gt.shape[-2:]
        self.jpeger.to(gt.device)
        out = _filter(gt, kernels["kernel1"])
        out, _ = _resize_noise_jpeg(out, self.jpeger, self.resize_prob, self.resize_range,
                                    self.gaussian_noise_prob, self.noise_range, self.poisson_scale_range,
                                    self.gray_noise_prob, self.jpeg_range)
        if float(torch.rand(())) < self.second_blur_prob:
            out = _filter(out, kernels["kernel2"])
        out, _ = _resize_noise_jpeg(out, self.jpeger, self.resize_prob2, self.resize_range2,
                                    self.gaussian_noise_prob2, self.noise_range2, self.poisson_scale_range2,
                                    self.gray_noise_prob2, None, size=(height // scale, width // scale))
        quality = out.new_zeros(out.size(0)).uniform_(*self.jpeg_range2)
        final_size = (height // scale, width // scale)
        if float(torch.rand(())) < 0.5:  # [resize back + sinc] then JPEG, or the other order
            out = _filter(F.interpolate(out, size=final_size, mode=_choice(RESIZE_MODES)), kernels["sinc_kernel"])
            out = self.jpeger(out.clamp(0, 1), quality=quality)
        else:
            out = self.jpeger(out.clamp(0, 1), quality=quality)
            out = _filter(F.interpolate(out, size=final_size, mode=_choice(RESIZE_MODES)), kernels["sinc_kernel"])
        return _quantize(out)


DEGRADATION_TYPES = {"hggt": HGGTDegradation, "realesrgan": RealESRGANDegradation, "bicubic": BicubicDegradation}
