"""Discriminators from basicsr.archs, chosen by ``network_d.type``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from basicsr.archs.discriminator_arch import UNetDiscriminatorSN, VGGStyleDiscriminator

from sr_iqa.config.call_options import build_from_block

DISCRIMINATOR_TYPES = {"UNetDiscriminatorSN": UNetDiscriminatorSN, "VGGStyleDiscriminator": VGGStyleDiscriminator}


def build_discriminator(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, DISCRIMINATOR_TYPES)
