"""HGGT's RRDB generator, ``RRDBPSNet``: ESRGAN's RRDB trunk with a pixel-shuffle upsampler.

Every HGGT RRDB option file and released RRDB checkpoint (PSNR and GAN) uses it instead of basicsr's
``RRDBNet``: the trunk is the same (basicsr's ``RRDB`` blocks), but the upsampler is basicsr's
``Upsample`` (per factor 2, a 3x3 conv to 4x the features and a pixel shuffle) followed by one
LeakyReLU, where RRDBNet interpolates (nearest) and has ``conv_up1/2``. The state-dict keys differ only
there: ``upsample.0`` and ``upsample.2`` instead of ``conv_up1`` and ``conv_up2``.

Only x4, the scale of HGGT's models: HGGT's own class, at x2 and x1, pixel-unshuffles the input and then
upsamples by the same factor, so its output would not be larger than its input.
"""

from __future__ import annotations

import torch
from basicsr.archs.arch_util import Upsample, make_layer
from basicsr.archs.rrdbnet_arch import RRDB
from torch import nn


class RRDBPSNet(nn.Module):
    """HGGT's ``RRDBPSNet(num_in_ch, num_out_ch, scale=4, num_feat, num_block, num_grow_ch)``, key for key."""

    def __init__(self, num_in_ch: int, num_out_ch: int, scale: int = 4, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale != 4:
            raise ValueError(f"RRDBPSNet is x4 only (HGGT's models); got scale {scale}; use RRDBNet for x{scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(RRDB, num_block, num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(scale, num_feat)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.upsample(feat))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
