"""Generators from basicsr.archs (and HGGT's RRDBPSNet, built from basicsr's blocks), chosen by
``network_g.type``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.swinir_arch import SwinIR

from sr_iqa.config.call_options import build_from_block, check_call_block, check_sizes
from sr_iqa.errors import OptionsError
from sr_iqa.models.meta_trial import run_on_meta
from sr_iqa.models.rrdbps_arch import RRDBPSNet

GENERATOR_TYPES = {"RRDBNet": RRDBNet, "RRDBPSNet": RRDBPSNet, "SwinIR": SwinIR}
# The kwarg through which each arch receives the upscaling factor.
SCALE_KWARG = {"RRDBNet": "scale", "RRDBPSNet": "scale", "SwinIR": "upscale"}
ONLY_SCALES = {"RRDBPSNet": (4,)}  # HGGT's RRDBPSNet upscales correctly at x4 only


def generator_block(block: Mapping[str, Any], scale: int, source: str) -> dict[str, Any]:
    """Check ``network_g`` and return it with the arch's scale kwarg set to the top-level ``scale``."""
    check_call_block(block, GENERATOR_TYPES, "network_g", source)
    scale_kwarg = SCALE_KWARG[block["type"]]
    given = block.get(scale_kwarg, scale)
    if given != scale:
        raise OptionsError(
            f"{source}: 'network_g.{scale_kwarg}' is {given} but 'scale' is {scale}; make them equal"
        )
    if scale not in ONLY_SCALES.get(block["type"], (scale,)):
        raise OptionsError(f"{source}: {block['type']} works at x{ONLY_SCALES[block['type']][0]} only (HGGT's "
                           f"models), but 'scale' is {scale}; use RRDBNet for other scales")
    return {**block, scale_kwarg: scale}


def generator_scale(block: Mapping[str, Any], default: int = 4) -> int:
    """The upscaling factor a ``network_g`` block names (under its arch's own kwarg)."""
    return int(block.get(SCALE_KWARG.get(block.get("type"), "scale"), default))


def build_generator(block: Mapping[str, Any], scale: int, source: str = "options") -> torch.nn.Module:
    return build_from_block(generator_block(block, scale, source), GENERATOR_TYPES)


TRIAL_SIZE = 16  # the side of the trial input: a multiple of SwinIR's window and of RRDBNet's unshuffle factors


def check_generator_builds(block: Mapping[str, Any], scale: int, source: str) -> None:
    """Build the generator on the meta device (no memory, no arithmetic) and run it once: channel counts of zero,
    and a network that upsamples by another factor than ``scale`` (RRDBNet always by 4 at ``scale: 3``), are one
    line now instead of a traceback at the first validation or step."""
    check_sizes(block, "network_g", source)
    shape = run_on_meta(block, GENERATOR_TYPES, TRIAL_SIZE, "network_g", source)
    factor = shape[-1] / TRIAL_SIZE if shape is not None else scale
    if factor != scale:
        raise OptionsError(f"{source}: 'network_g' ({block['type']}) upsamples by {factor:g}, but 'scale' is {scale}; "
                           f"{block['type']} upsamples as asked at scale {', '.join(map(str, _true_scales(block)))}")


CANDIDATE_SCALES = (1, 2, 3, 4, 8)


def _true_scales(block: Mapping[str, Any]) -> list[int]:
    """The scales at which ``block``'s arch upsamples by the scale it is given, tried on the meta device (an
    error path: each try is cached, and costs under a second)."""
    scale_kwarg = SCALE_KWARG[block["type"]]
    found = []
    for candidate in CANDIDATE_SCALES:
        try:
            shape = run_on_meta({**block, scale_kwarg: candidate}, GENERATOR_TYPES, TRIAL_SIZE, "network_g", "")
        except OptionsError:
            continue
        if shape is None or shape[-1] == TRIAL_SIZE * candidate:
            found.append(candidate)
    return found
