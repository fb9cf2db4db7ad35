"""HGGT's RRDBPSNet: HGGT's state-dict keys exactly (its released RRDB checkpoints load strictly), x4 output,
and a checkpoint of the other RRDB arch refused with the arch it holds, never loaded half."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sr_iqa.errors import OptionsError
from sr_iqa.models.generators import build_generator
from sr_iqa.models.weight_files import load_network_weights

BLOCK = {"type": "RRDBPSNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 2, "num_grow_ch": 4}


def hggt_rrdbps_keys(num_block: int) -> set[str]:
    """The layer names of HGGT's RRDBPSNet at x4 (PosNegGTSR/basicsr/archs/rrdbnet_arch.py), written out:
    conv_first, the RRDB trunk (three dense blocks of five convs each), conv_body, the pixel-shuffle upsampler
    (conv, shuffle, conv, shuffle: parameters at 0 and 2), conv_hr, conv_last."""
    layers = ["conv_first", "conv_body", "upsample.0", "upsample.2", "conv_hr", "conv_last"]
    layers += [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    return {f"{layer}.{kind}" for layer in layers for kind in ("weight", "bias")}


def test_rrdbpsnet_has_hggts_keys_and_upscales_by_four():
    net = build_generator(BLOCK, 4)
    assert set(net.state_dict()) == hggt_rrdbps_keys(2)
    assert net.state_dict()["upsample.0.weight"].shape == (4 * 8, 8, 3, 3)  # 4x the features, then a shuffle
    assert net(torch.rand(1, 3, 12, 10)).shape == (1, 3, 48, 40)


def test_a_basicsr_pth_of_hggts_arch_loads_strictly_and_the_wrong_arch_is_named(tmp_path: Path):
    torch.manual_seed(3)
    source = build_generator(BLOCK, 4)
    checkpoint = tmp_path / "RRDB_PosNegGT_x4.pth"
    torch.save({"params_ema": source.state_dict()}, checkpoint)  # BasicSR's layout, as HGGT releases it
    target = build_generator(BLOCK, 4)
    load_network_weights(target, checkpoint, strict=True, param_key="params_ema")
    image = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(target(image), source(image), atol=0, rtol=0)

    rrdbnet = build_generator({**BLOCK, "type": "RRDBNet"}, 4)
    with pytest.raises(OptionsError) as refused:
        load_network_weights(rrdbnet, checkpoint, strict=True, param_key="params_ema")
    message = str(refused.value)
    assert "holds a RRDBPSNet: set network_g.type: RRDBPSNet" in message
    assert "upsample.0.weight" in message and "strict_load_g: false" not in message


def test_rrdbpsnet_refuses_other_scales_with_one_line():
    with pytest.raises(OptionsError, match="RRDBPSNet works at x4 only"):
        build_generator(BLOCK, 2)
