"""PSNR and SSIM as BasicSR's validation and HGGT's evaluation scripts compute them, so that numbers compare with
their tables.

HGGT's ``calculate_multigt_labeled_psnr_ssim.py`` reads the SR PNG (8-bit) and each Positive GT and calls
basicsr's ``calculate_psnr`` / ``calculate_ssim`` on RGB values in 0..255 with a 4-pixel border crop
(``hggt_psnr``, ``hggt_ssim``); BasicSR's ``val.metrics`` blocks choose the crop and the Y channel
(``bsr_psnr_y_crop4`` and the like). All go through the same basicsr functions, after rounding SR to 8 bits as
a saved PNG would be, on BGR arrays as BasicSR reads images with OpenCV (its Y channel expects BGR). pyiqa's
``psnr`` / ``ssim`` (sr_iqa's defaults) use no border crop, and pyiqa's ``ssim`` works on the Y channel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim

from sr_iqa.basicsr_metric_names import HGGT_CROP_BORDER, basicsr_setting
from sr_iqa.data.image_io import tensor_to_array

PSNR_CAP = 80.0  # identical images: pyiqa's cap (basicsr returns inf, which no mean survives)


class BasicsrFullReference(torch.nn.Module):
    """A basicsr metric function in pyiqa's metric shape: ``metric(images, references)`` -> one value per image,
    ``metric_mode`` FR, ``lower_better`` False. No gradients: it scores 8-bit images."""

    metric_mode = "FR"
    lower_better = False

    def __init__(self, function: Callable[..., float], crop_border: int = HGGT_CROP_BORDER,
                 test_y_channel: bool = False) -> None:
        super().__init__()
        self.function = function
        self.crop_border = crop_border
        self.test_y_channel = test_y_channel

    @torch.no_grad()
    def forward(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        values = []
        for image, reference in zip(images, references, strict=True):
            bgr_image, bgr_reference = (tensor_to_array(x)[..., ::-1].astype(np.float64) for x in (image, reference))
            value = self.function(bgr_image, bgr_reference, self.crop_border, input_order="HWC",
                                  test_y_channel=self.test_y_channel)
            values.append(min(float(value), PSNR_CAP))
        return torch.tensor(values, dtype=torch.float64, device=images.device)


FUNCTIONS = {"psnr": calculate_psnr, "ssim": calculate_ssim}


def create_basicsr_metric(name: str) -> BasicsrFullReference:
    """The metric of a name ``basicsr_metric_names`` reads (hggt_psnr, bsr_psnr_y_crop4, ...)."""
    kind, crop_border, test_y_channel = basicsr_setting(name)
    return BasicsrFullReference(FUNCTIONS[kind], crop_border, test_y_channel)
