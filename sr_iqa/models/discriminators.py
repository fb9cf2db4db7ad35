"""Discriminators from basicsr.archs, chosen by ``network_d.type``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from basicsr.archs.discriminator_arch import UNetDiscriminatorSN, VGGStyleDiscriminator

from sr_iqa.config.call_options import build_from_block, check_sizes
from sr_iqa.models.meta_trial import run_on_meta

DISCRIMINATOR_TYPES = {"UNetDiscriminatorSN": UNetDiscriminatorSN, "VGGStyleDiscriminator": VGGStyleDiscriminator}


def build_discriminator(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, DISCRIMINATOR_TYPES)


def check_discriminator_builds(block: Mapping[str, Any], gt_size: int, source: str) -> None:
    """Build the discriminator on the meta device and run it on one ``gt_size`` crop (VGGStyleDiscriminator takes
    128 or 256 pixels only): a refused value is one line at load time."""
    check_sizes(block, "network_d", source)
    run_on_meta(block, DISCRIMINATOR_TYPES, gt_size, "network_d", source,
                f" on {gt_size}-pixel crops (datasets.train.gt_size)")
