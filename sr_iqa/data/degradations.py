"""LR synthesis from the original GT, on whatever device the batch is on.

For now one preset: bicubic downsampling with antialiasing (MATLAB ``imresize``-like).
The HGGT and Real-ESRGAN presets built from basicsr's degradation functions plug in here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bicubic_downsample(gt: torch.Tensor, scale: int) -> torch.Tensor:
    """Nx3xHxW in [0, 1] -> Nx3x(H/scale)x(W/scale), clamped to [0, 1]."""
    height, width = gt.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"GT size {height}x{width} is not a multiple of scale {scale}")
    lr = F.interpolate(gt, size=(height // scale, width // scale), mode="bicubic", antialias=True,
                       align_corners=False)
    return lr.clamp_(0, 1)
