"""The candidate GTs of `sr-iqa data build`: enhancers named in an option file, each a function from an HxWx3 uint8
patch to an enhanced patch of the same size.

Classical: unsharp masks (PIL's) and local contrast (scikit-image's CLAHE), the demo set's enhancements. Learned:
any generator sr_iqa loads (``pretrained:realesrgan-x4plus``, an sr_iqa run folder or weights file) run on a copy
downscaled by its scale, which gives the network's textures at the patch's own size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sr_iqa.data.enhancements import Enhance, local_contrast, unsharp
from sr_iqa.data.groups import HGGT_SLOTS
from sr_iqa.data.image_io import array_to_tensor, tensor_to_array
from sr_iqa.errors import OptionsError

MAX_ENHANCERS = len(HGGT_SLOTS) - 1  # HGGT's layout has the original and four candidate slots, 01..04

# type -> {key: (kind, low, high)}; every key is required except those with a default below.
ENHANCER_KEYS: dict[str, dict[str, tuple[type, float, float]]] = {
    "unsharp": {"radius": (float, 0.1, 50.0), "percent": (int, 1, 1000), "threshold": (int, 0, 255)},
    "local_contrast": {"clip_limit": (float, 1e-4, 1.0), "kernel_size": (int, 8, 1024)},
    "network": {"weights": (str, 0, 0), "tile": (int, 0, 4096)},
}
# None: scikit-image's default CLAHE kernel (1/8 of each side).
DEFAULTS: dict[str, dict[str, Any]] = {"unsharp": {"threshold": 0}, "local_contrast": {"kernel_size": None},
                                       "network": {"tile": 0}}


@dataclass(frozen=True)
class EnhancerSpec:
    """One enhancer as the option file gives it, with its defaults filled in: what is recorded beside its GTs."""

    type: str
    params: dict[str, Any]

    def record(self) -> dict[str, Any]:
        record = {"type": self.type, **self.params}
        if self.type == "network":  # which file, exactly: a run folder's newest weights change as it trains
            from sr_iqa.models.weight_files import resolve_weights_file

            path = resolve_weights_file(self.params["weights"])
            record |= {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        return record


def _checked_value(where: str, key: str, value: object, kind: type, low: float, high: float) -> object:
    if kind is str:
        if not isinstance(value, str) or not value:
            raise OptionsError(f"{where}.{key}: give a weights file, run folder or pretrained:<name>, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise OptionsError(f"{where}.{key}: must be {'an integer' if kind is int else 'a number'}, not {value!r}")
    if not low <= value <= high:
        raise OptionsError(f"{where}.{key}: must be from {low:g} to {high:g}, got {value!r}")
    return kind(value)


def parse_enhancers(entries: object, source: str) -> list[EnhancerSpec]:
    """The option file's ``enhancers`` list, checked: known types, known keys, values in range; one line each."""
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ENHANCERS:
        raise OptionsError(f"{source}: 'enhancers' must be a list of 1 to {MAX_ENHANCERS} enhancers (HGGT's slots "
                           "01..04), each {type: ..., ...}")
    specs = []
    for number, entry in enumerate(entries, start=1):
        where = f"{source}: enhancers[{number - 1}]"
        if not isinstance(entry, Mapping) or entry.get("type") not in ENHANCER_KEYS:
            raise OptionsError(f"{where}: needs a 'type', one of {', '.join(ENHANCER_KEYS)}")
        keys = ENHANCER_KEYS[entry["type"]]
        unknown = sorted(set(entry) - set(keys) - {"type"})
        if unknown:
            raise OptionsError(f"{where}: unknown key(s) {unknown} for type {entry['type']}; allowed: "
                               f"{', '.join(keys)}")
        params = dict(DEFAULTS.get(entry["type"], {}))
        for key, (kind, low, high) in keys.items():
            if key not in entry and key not in params:
                raise OptionsError(f"{where}: needs '{key}'")
            if key in entry:
                params[key] = _checked_value(where, key, entry[key], kind, low, high)
        specs.append(EnhancerSpec(entry["type"], params))
    return specs


def _network(params: Mapping[str, Any], device: torch.device) -> tuple[Enhance, int]:
    """The generator upscaling a copy of the patch downscaled by its scale (PIL's antialiased bicubic)."""
    from sr_iqa.models.generators import generator_scale
    from sr_iqa.models.weight_files import load_upscaler
    from sr_iqa.tiling import tiled_upscale

    network, block = load_upscaler(params["weights"])
    network = network.to(device).eval()
    scale = generator_scale(block)

    def enhance(patch: np.ndarray) -> np.ndarray:
        height, width = patch.shape[:2]
        small = np.array(Image.fromarray(patch).resize((width // scale, height // scale), Image.Resampling.BICUBIC))
        with torch.no_grad():
            sr = tiled_upscale(network, array_to_tensor(small)[None].to(device), scale, params["tile"])[0]
        return tensor_to_array(sr.clamp(0, 1))

    return enhance, scale


def build_enhancers(specs: list[EnhancerSpec], device: torch.device) -> tuple[list[Enhance], int]:
    """Each spec as a function, and the size patches must be a multiple of (the learned enhancers' scales)."""
    functions, multiple = [], 1
    for spec in specs:
        if spec.type == "network":
            enhance, scale = _network(spec.params, device)
            functions.append(enhance)
            multiple = np.lcm(multiple, scale)
        else:
            functions.append(unsharp(**spec.params) if spec.type == "unsharp" else local_contrast(**spec.params))
    return functions, int(multiple)


def read_enhancer_file(path: Path) -> list[EnhancerSpec]:
    """The ``enhancers`` of an option file (options/data_build/*.yml), checked."""
    from omegaconf import OmegaConf

    from sr_iqa.config.loader import read_yaml

    config = OmegaConf.to_container(read_yaml(path))
    unknown = sorted(set(config) - {"enhancers"})
    if unknown:
        raise OptionsError(f"{path}: unknown key(s) {unknown}; an enhancer file holds 'enhancers' alone")
    return parse_enhancers(config.get("enhancers"), str(path))
