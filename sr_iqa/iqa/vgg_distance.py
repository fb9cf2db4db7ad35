"""``vgg_dist``: the distance of an image to a reference in the features of the original VGG19.

The perceptual loss HGGT trains with (basicsr's PerceptualLoss: L1 of conv1_2, conv2_2, conv3_4,
conv4_4 and conv5_4 features before ReLU, weights 0.1, 0.1, 1, 1, 1), per image, with the Caffe
VGG19 that ``sr-iqa weights install vgg19-caffe`` puts on disk, so it runs offline. Lower is better.
It is a distortion measure beside PSNR and SSIM, not a no-reference quality score.
"""

from __future__ import annotations

import torch
from basicsr.losses.basic_loss import PerceptualLoss

from sr_iqa.iqa.vgg_backbone import vgg_backbone

HGGT_LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
VGG_DISTANCE_BACKBONE = "pretrained:vgg19-caffe"


class VGGFeatureDistance(torch.nn.Module):
    """pyiqa's metric shape: ``metric(images, references)`` -> one value per image; FR, lower is better."""

    metric_mode = "FR"
    lower_better = True

    def __init__(self) -> None:
        super().__init__()
        with vgg_backbone("vgg19", VGG_DISTANCE_BACKBONE):
            self.loss = PerceptualLoss(HGGT_LAYER_WEIGHTS, "vgg19", style_weight=0.0, criterion="l1")
        self.loss.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.loss(image[None].float(), reference[None].float())[0]
                            for image, reference in zip(images, references, strict=True)])
