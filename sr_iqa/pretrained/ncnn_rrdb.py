"""Read an ncnn RRDB model (Real-ESRGAN's ``.param`` + ``.bin``) into basicsr's ``RRDBNet`` state dict.

An ncnn ``.param`` file lists layers one per line; the ``.bin`` file holds, layer after layer in
that order, each convolution's weights (a 4-byte storage tag, then the values: fp16 after tag
0x01306B47, fp32 after tag 0) and its fp32 bias. Real-ESRGAN's export lists its convolutions in
the order of ``RRDBNet``'s modules (``conv_first``, ``body.<i>.rdb<1-3>.conv<1-5>``, ``conv_body``,
``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``); the residual scales (0.2) and the nearest
2x upsamplings are separate layers without weights, as in basicsr. The shapes are checked one by
one against the network, so a model of another layout fails here rather than loading wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sr_iqa.errors import DataError

FP16_TAG = 0x01306B47
FP32_TAG = 0


@dataclass(frozen=True)
class NcnnConvolution:
    name: str
    out_channels: int
    kernel: int
    has_bias: bool
    weight_count: int


def parse_convolutions(param_text: str, source: str) -> list[NcnnConvolution]:
    """The Convolution layers of an ncnn ``.param`` text, in file order."""
    lines = param_text.splitlines()
    if not lines or lines[0].strip() != "7767517":
        raise DataError(f"{source}: not an ncnn .param file (its first line is not the magic 7767517)")
    convolutions = []
    for line in lines[2:]:
        fields = line.split()
        if not fields or fields[0] != "Convolution":
            continue
        inputs, outputs = int(fields[2]), int(fields[3])
        params = dict(item.split("=", 1) for item in fields[4 + inputs + outputs:])
        convolutions.append(NcnnConvolution(fields[1], int(params["0"]), int(params.get("1", "1")),
                                            params.get("5", "0") == "1", int(params["6"])))
    return convolutions


def _read_weights(blob: bytes, offset: int, count: int, source: str, layer: str) -> tuple[np.ndarray, int]:
    tag = int(np.frombuffer(blob, "<u4", 1, offset)[0])
    offset += 4
    if tag == FP16_TAG:
        values = np.frombuffer(blob, "<f2", count, offset).astype(np.float32)
        return values, offset + (count * 2 + 3) // 4 * 4  # fp16 data is padded to 4 bytes
    if tag == FP32_TAG:
        return np.frombuffer(blob, "<f4", count, offset).copy(), offset + count * 4
    raise DataError(f"{source}: layer {layer} stores its weights in a format this reader does not know "
                    f"(tag {tag:#x}; fp16 and fp32 are read)")


def rrdbnet_state_from_ncnn(param_text: str, weights: bytes, network: torch.nn.Module,
                            source: str) -> dict[str, torch.Tensor]:
    """The state dict of ``network`` (an ``RRDBNet``) read from an ncnn model; every tensor checked for shape."""
    convolutions = parse_convolutions(param_text, source)
    layers = [name.removesuffix(".weight") for name in network.state_dict() if name.endswith(".weight")]
    if len(layers) != len(convolutions):
        raise DataError(f"{source}: {len(convolutions)} convolutions, but the network has {len(layers)}; "
                        "this is not the RRDBNet it was taken for")
    own = network.state_dict()
    state: dict[str, torch.Tensor] = {}
    offset = 0
    for layer, conv in zip(layers, convolutions, strict=True):
        weight_shape = own[f"{layer}.weight"].shape
        if conv.out_channels != weight_shape[0] or conv.weight_count != weight_shape.numel() or not conv.has_bias:
            raise DataError(f"{source}: convolution {conv.name} ({conv.out_channels} outputs, {conv.weight_count} "
                            f"weights) does not match {layer} {tuple(weight_shape)}")
        values, offset = _read_weights(weights, offset, conv.weight_count, source, conv.name)
        state[f"{layer}.weight"] = torch.from_numpy(values.reshape(tuple(weight_shape)))
        state[f"{layer}.bias"] = torch.from_numpy(np.frombuffer(weights, "<f4", conv.out_channels, offset).copy())
        offset += conv.out_channels * 4
    if offset != len(weights):
        raise DataError(f"{source}: {len(weights) - offset} bytes left after the last convolution; the .bin does "
                        "not belong to this .param")
    return state
