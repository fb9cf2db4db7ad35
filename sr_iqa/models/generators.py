"""Generators from basicsr.archs, chosen by ``network_g.type``, and pretrained-weight loading."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.swinir_arch import SwinIR
from safetensors.torch import load_file

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


def build_generator(block: Mapping[str, Any], scale: int, source: str = "options") -> torch.nn.Module:
    return build_from_block(generator_block(block, scale, source), GENERATOR_TYPES)


def load_generator_weights(net: torch.nn.Module, path: str | Path, strict: bool = True,
                           param_key: str = "params") -> None:
    """Load sr_iqa safetensors or a BasicSR ``.pth`` (``{'params': ..., 'params_ema': ...}``)."""
    path = Path(path)
    if not path.is_file():
        raise OptionsError(f"path.pretrain_network_g: no file at {path}")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if param_key in state:
            state = state[param_key]
        elif param_key == "params" and "params_ema" in state:
            state = state["params_ema"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = net.state_dict()
    wrong_shape = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    if strict and (missing or unexpected or wrong_shape):
        raise OptionsError(
            f"{path} does not fit network_g (missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"other shape {wrong_shape[:3]}); check network_g against the checkpoint, "
            "or set path.strict_load_g: false to load only the matching tensors"
        )
    net.load_state_dict({k: v for k, v in state.items() if k in own and k not in wrong_shape}, strict=False)
