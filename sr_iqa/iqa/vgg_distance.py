"""``vgg_dist``: the distance of an image to a reference in the features of the original VGG19.

The perceptual loss HGGT trains with (basicsr's PerceptualLoss: L1 of conv1_2, conv2_2, conv3_4,
conv4_4 and conv5_4 features before ReLU, weights 0.1, 0.1, 1, 1, 1), per image, with the Caffe
VGG19 that ``sr-iqa weights install vgg19-caffe`` puts on disk, so it runs offline. Lower is better.
It is a distortion measure beside PSNR and SSIM, not a no-reference quality score.

An evaluation compares each SR image with every Positive GT and with the original, and every method with the
same GTs: the features of an image are kept (by its content, within a memory budget) and computed once, which
makes the metric several times cheaper there than basicsr's loss, which extracts both images' features per call.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from basicsr.losses.basic_loss import PerceptualLoss

from sr_iqa.iqa.vgg_backbone import vgg_backbone

HGGT_LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
VGG_DISTANCE_BACKBONE = "pretrained:vgg19-caffe"
FEATURE_CACHE_BYTES = 512 * 2**20  # about 17 images of 256 px, 4 of 512 px

Features = dict[str, torch.Tensor]


class FeatureCache:
    """The features of recently seen images, keyed by their content; the least recently used go first."""

    def __init__(self, budget_bytes: int = FEATURE_CACHE_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self.entries: OrderedDict[bytes, Features] = OrderedDict()
        self.misses = 0

    @staticmethod
    def key(image: torch.Tensor) -> bytes:
        data = image.detach().float().contiguous().cpu().numpy()
        digest = hashlib.blake2b(str(data.shape).encode(), digest_size=16)
        digest.update(data.tobytes())
        return digest.digest()

    def features(self, image: torch.Tensor, extract: torch.nn.Module) -> Features:
        """``extract(image[None])``, computed once for equal images."""
        key = self.key(image)
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        self.misses += 1
        features = extract(image[None].float())
        self.entries[key] = features
        while len(self.entries) > 1 and self._bytes() > self.budget_bytes:
            self.entries.popitem(last=False)
        return features

    def _bytes(self) -> int:
        return sum(t.numel() * t.element_size() for features in self.entries.values() for t in features.values())


class VGGFeatureDistance(torch.nn.Module):
    """pyiqa's metric shape: ``metric(images, references)`` -> one value per image; FR, lower is better."""

    metric_mode = "FR"
    lower_better = True

    def __init__(self, cache_bytes: int = FEATURE_CACHE_BYTES) -> None:
        super().__init__()
        with vgg_backbone("vgg19", VGG_DISTANCE_BACKBONE):
            self.loss = PerceptualLoss(HGGT_LAYER_WEIGHTS, "vgg19", style_weight=0.0, criterion="l1")
        self.loss.requires_grad_(False).eval()
        self.cache = FeatureCache(cache_bytes)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._distance(self.cache.features(image, self.loss.vgg),
                                           self.cache.features(reference, self.loss.vgg))
                            for image, reference in zip(images, references, strict=True)])

    def _distance(self, image: Features, reference: Features) -> torch.Tensor:
        """basicsr's PerceptualLoss.forward (criterion l1, no style term) on features already extracted."""
        total = sum(self.loss.criterion(image[name], reference[name]) * weight
                    for name, weight in self.loss.layer_weights.items())
        return total * self.loss.perceptual_weight
