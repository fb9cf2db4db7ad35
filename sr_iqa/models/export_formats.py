"""Generator files for the tools SR models are deployed with, beside sr_iqa's own safetensors.

- ``pth``: BasicSR's ``{"params_ema": state_dict}`` or ``{"params": ...}``, the key the weights were loaded
  from (EMA weights are not labelled otherwise); what BasicSR, HGGT's scripts and chaiNNer read.
- ``onnx``: ONNX Runtime, TensorRT and the like; dynamic batch, height and width.
- sr_iqa's safetensors and the ``pth`` are what spandrel (the loader of chaiNNer and ComfyUI) reads and
  auto-detects for RRDBNet and SwinIR; ``spandrel_problem`` says when it cannot (checked against spandrel 0.4).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sr_iqa.atomic_files import replaced_atomically
from sr_iqa.models.optional_packages import require_onnx_packages

log = logging.getLogger("sr_iqa.models")
ONNX_OPSET = 18


def size_multiple(block: Mapping[str, Any], scale: int) -> int:
    """The LR sides a generator takes: SwinIR's windows; RRDBNet pixel-unshuffles by 4 / scale below x4."""
    if block["type"] == "SwinIR":
        return int(block.get("window_size", 7))
    if block["type"] == "RRDBNet":
        return {1: 4, 2: 2}.get(scale, 1)
    return 1


class PaddedUpscaler(torch.nn.Module):
    """Reflect-pads the LR to the generator's size multiple and crops the SR back: any size in, as BasicSR's
    and KAIR's SwinIR test scripts pad before calling the network."""

    def __init__(self, network: torch.nn.Module, multiple: int, scale: int) -> None:
        super().__init__()
        self.network, self.multiple, self.scale = network, multiple, scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        height, width = lr.shape[-2:]
        pad_h = (self.multiple - height % self.multiple) % self.multiple
        pad_w = (self.multiple - width % self.multiple) % self.multiple
        padded = F.pad(lr, (0, pad_w, 0, pad_h), mode="reflect") if self.multiple > 1 else lr
        return self.network(padded)[..., : height * self.scale, : width * self.scale]


def write_pth(network: torch.nn.Module, out: Path, key: str = "params_ema") -> None:
    """BasicSR's file layout: the weights under ``key`` (``params_ema``: what a BasicSR test file loads by default,
    falling back to ``params``)."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
    with replaced_atomically(out) as partial:
        torch.save({key: state}, partial)


def write_onnx(network: torch.nn.Module, block: Mapping[str, Any], scale: int, out: Path) -> None:
    """``lr`` (N x 3 x H x W in [0, 1], any N, H, W) -> ``sr`` (N x 3 x sH x sW), through torch's exporter."""
    require_onnx_packages()  # before tracing
    multiple = size_multiple(block, scale)
    model = PaddedUpscaler(network.eval(), multiple, scale).eval()
    side = max(multiple, 4) * 5 + 1  # not a multiple: the padding is traced; not SwinIR's img_size either
    example = torch.rand(2, 3, side, side + multiple)  # batch 2: a batch of 1 would be specialised to 1
    dims = {0: torch.export.Dim("batch", max=1024), 2: torch.export.Dim("height", min=multiple + 1, max=65536),
            3: torch.export.Dim("width", min=multiple + 1, max=65536)}
    with replaced_atomically(out) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing chatter
        torch.onnx.export(model, (example,), str(partial), input_names=["lr"], output_names=["sr"], dynamo=True,
                          dynamic_shapes={"lr": dims}, opset_version=ONNX_OPSET, external_data=False,
                          verbose=False)


def spandrel_problem(block: Mapping[str, Any]) -> str | None:
    """Why spandrel would not load this generator as it is (None: it does). Checked with spandrel 0.4.2: its
    ESRGAN assumes 32 growth channels, and it takes HGGT's RRDBPSNet for an ESRGAN (wrong upsampler)."""
    if block["type"] == "RRDBNet" and int(block.get("num_grow_ch", 32)) != 32:
        return f"spandrel's ESRGAN assumes num_grow_ch 32, this RRDBNet has {block['num_grow_ch']}"
    if block["type"] == "RRDBPSNet":
        return "spandrel takes RRDBPSNet for an ESRGAN and upscales wrongly"
    return None
