"""PSNR and SSIM as HGGT's evaluation scripts compute them, so that numbers compare with HGGT's tables.

HGGT's ``calculate_multigt_labeled_psnr_ssim.py`` reads the SR PNG (8-bit) and each Positive GT and calls
basicsr's ``calculate_psnr`` / ``calculate_ssim`` on RGB values in 0..255 with a 4-pixel border crop; so do
these, through the same basicsr functions, after rounding SR to 8 bits as a saved PNG would be. pyiqa's
``psnr`` / ``ssim`` (sr_iqa's defaults) use no border crop, and pyiqa's ``ssim`` works on the Y channel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim

from sr_iqa.data.image_io import tensor_to_array

HGGT_CROP_BORDER = 4
PSNR_CAP = 80.0  # identical images: pyiqa's cap (basicsr returns inf, which no mean survives)


class BasicsrFullReference(torch.nn.Module):
    """A basicsr metric function in pyiqa's metric shape: ``metric(images, references)`` -> one value per image,
    ``metric_mode`` FR, ``lower_better`` False. No gradients: it scores 8-bit images."""

    metric_mode = "FR"
    lower_better = False

    def __init__(self, function: Callable[..., float], crop_border: int = HGGT_CROP_BORDER) -> None:
        super().__init__()
        self.function = function
        self.crop_border = crop_border

    @torch.no_grad()
    def forward(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        values = []
        for image, reference in zip(images, references, strict=True):
            value = self.function(tensor_to_array(image).astype(np.float64),
                                  tensor_to_array(reference).astype(np.float64), self.crop_border,
                                  input_order="HWC", test_y_channel=False)
            values.append(min(float(value), PSNR_CAP))
        return torch.tensor(values, dtype=torch.float64, device=images.device)


HGGT_METRICS = {"hggt_psnr": calculate_psnr, "hggt_ssim": calculate_ssim}


def create_hggt_metric(name: str) -> BasicsrFullReference:
    return BasicsrFullReference(HGGT_METRICS[name])
