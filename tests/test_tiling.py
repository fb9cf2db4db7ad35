"""Tiled inference agrees with whole-image inference away from the blended seams."""

from __future__ import annotations

import pytest
import torch

from sr_iqa.models.generators import build_generator
from sr_iqa.tiling import tile_count, tiled_upscale


def _shallow_net() -> torch.nn.Module:
    """Receptive field of 2 LR pixels each side: smaller than the overlap, so every output pixel is exact."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(12, 48, 3, padding=1), torch.nn.PixelShuffle(4)).eval()


@pytest.mark.parametrize(("height", "width"), [(40, 56), (37, 61)])
def test_tiles_give_the_whole_image_result(height: int, width: int):
    net = _shallow_net()
    lq = torch.rand(1, 3, height, width)
    with torch.no_grad():
        whole = net(lq)
        tiled = tiled_upscale(net, lq, scale=4, tile=24, overlap=8)
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_a_deep_generator_agrees_within_tolerance():
    torch.manual_seed(0)
    net = build_generator({"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1,
                           "num_grow_ch": 4}, 4).eval()
    lq = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        whole, tiled = net(lq), tiled_upscale(net, lq, scale=4, tile=32, overlap=16)
    psnr = 10 * torch.log10(1 / ((whole - tiled) ** 2).mean())
    assert psnr > 40  # the deep net sees past the overlap only near the seams
    with torch.no_grad():
        tile_only = tiled_upscale(net, lq, scale=4, tile=32, overlap=0)
    assert ((whole - tiled) ** 2).mean() < ((whole - tile_only) ** 2).mean()  # blending beats hard seams


def test_small_images_and_no_tile_run_whole():
    net = _shallow_net()
    lq = torch.rand(2, 3, 16, 20)
    with torch.no_grad():
        assert torch.equal(tiled_upscale(net, lq, 4, tile=0), net(lq))
        assert torch.equal(tiled_upscale(net, lq, 4, tile=32), net(lq))
    with pytest.raises(ValueError, match="overlap"):
        tiled_upscale(net, torch.rand(1, 3, 40, 40), 4, tile=16, overlap=16)


def test_the_tile_count_is_what_the_upscaler_is_called_for():
    """100 x 60 LR, tiles of 32 overlapping by 8 (step 24): rows start at 0, 24, 48, 68 and columns at 0, 24, 28,
    so 4 x 3 = 12 tiles, each reported once (infer's tile bar); one call for an image within one tile."""
    calls, reported = [], []

    def upscale(patch: torch.Tensor) -> torch.Tensor:
        calls.append(patch.shape[-2:])
        return torch.nn.functional.interpolate(patch, scale_factor=2, mode="nearest")

    assert tile_count(100, 60, 32, 8) == 12
    tiled_upscale(upscale, torch.rand(1, 3, 100, 60), 2, 32, 8, on_tile=lambda: reported.append(1))
    assert len(calls) == len(reported) == 12
    assert tile_count(30, 30, 32, 8) == tile_count(100, 60, 0) == 1


def test_infer_writes_any_size_and_tiled_matches_whole(tmp_path):
    from PIL import Image

    from sr_iqa.cli import main
    from sr_iqa.data.image_io import read_rgb_tensor
    from sr_iqa.models.weight_files import generator_metadata
    from sr_iqa.tensor_files import save_weights

    block = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 4,
             "scale": 4}
    torch.manual_seed(1)
    save_weights(build_generator(block, 4), tmp_path / "g.safetensors", generator_metadata(block))
    inputs = tmp_path / "lr"
    inputs.mkdir()
    Image.fromarray((torch.rand(45, 71, 3) * 255).byte().numpy()).save(inputs / "odd.png")
    for tile, folder in ((0, "whole"), (24, "tiled")):
        assert main(["infer", "--checkpoint", str(tmp_path / "g.safetensors"), "--input", str(inputs),
                     "--output", str(tmp_path / folder), "--tile", str(tile), "--tile-overlap", "12"]) == 0
    whole, tiled = (read_rgb_tensor(tmp_path / folder / "odd.png") for folder in ("whole", "tiled"))
    assert whole.shape == (3, 180, 284)
    assert 10 * torch.log10(1 / ((whole - tiled) ** 2).mean()) > 35
    # A small tile without --tile-overlap: a quarter of it overlaps (not the default 16, which no 16-pixel tile
    # could hold: "got 16" for a flag never passed).
    assert main(["infer", "--checkpoint", str(tmp_path / "g.safetensors"), "--input", str(inputs),
                 "--output", str(tmp_path / "small"), "--tile", "16"]) == 0
    small = read_rgb_tensor(tmp_path / "small" / "odd.png")
    assert small.shape == whole.shape and 10 * torch.log10(1 / ((whole - small) ** 2).mean()) > 30


def test_a_bad_tile_overlap_is_one_message(tmp_path, capsys):
    from sr_iqa.cli import main

    assert main(["infer", "--checkpoint", str(tmp_path / "g.safetensors"), "--input", str(tmp_path),
                 "--output", str(tmp_path / "out"), "--tile", "16", "--tile-overlap", "16"]) == 2
    assert "--tile-overlap must be at least 0 and below --tile (16), got 16" in capsys.readouterr().err
