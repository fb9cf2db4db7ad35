"""Generators from basicsr.archs, chosen by ``network_g.type``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.swinir_arch import SwinIR

from sr_iqa.config.call_options import build_from_block, check_call_block
from sr_iqa.errors import OptionsError

GENERATOR_TYPES = {"RRDBNet": RRDBNet, "SwinIR": SwinIR}
# The kwarg through which each arch receives the upscaling factor.
SCALE_KWARG = {"RRDBNet": "scale", "SwinIR": "upscale"}


def generator_block(block: Mapping[str, Any], scale: int, source: str) -> dict[str, Any]:
    """Check ``network_g`` and return it with the arch's scale kwarg set to the top-level ``scale``."""
    check_call_block(block, GENERATOR_TYPES, "network_g", source)
    scale_kwarg = SCALE_KWARG[block["type"]]
    given = block.get(scale_kwarg, scale)
    if given != scale:
        raise OptionsError(
            f"{source}: 'network_g.{scale_kwarg}' is {given} but 'scale' is {scale}; make them equal"
        )
    return {**block, scale_kwarg: scale}


def generator_scale(block: Mapping[str, Any], default: int = 4) -> int:
    """The upscaling factor a ``network_g`` block names (under its arch's own kwarg)."""
    return int(block.get(SCALE_KWARG.get(block.get("type"), "scale"), default))


def build_generator(block: Mapping[str, Any], scale: int, source: str = "options") -> torch.nn.Module:
    return build_from_block(generator_block(block, scale, source), GENERATOR_TYPES)
