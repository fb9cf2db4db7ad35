"""PSNR and SSIM as HGGT's scripts compute them (RGB, 4-pixel border crop, 8-bit), checked on cases worked out
by hand; and `sr-iqa eval` on SR files named as BasicSR saves them, averaged over the Positive GTs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hggt_tree import VOTES, write_hggt_split
from PIL import Image

from sr_iqa.cli import main
from sr_iqa.iqa.metrics import create_metric

C1 = (0.01 * 255) ** 2  # SSIM's stabiliser for 8-bit values


def _image(value: int, border: int | None = None, size: int = 32) -> torch.Tensor:
    array = np.full((size, size, 3), value, dtype=np.uint8)
    if border is not None:  # a 4-pixel frame of another value, which the crop removes
        array[:4], array[-4:], array[:, :4], array[:, -4:] = border, border, border, border
    return torch.from_numpy(array).permute(2, 0, 1).float()[None] / 255


def test_hggt_psnr_crops_four_pixels_and_works_on_8_bit_values():
    metric = create_metric("hggt_psnr")
    sr, gt = _image(110, border=250), _image(100, border=0)
    # Inside the crop every value differs by 10: PSNR = 10 log10(255^2 / 10^2); the frame (250 vs 0) is cut off.
    assert metric(sr, gt).item() == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)
    assert create_metric("psnr")(sr, gt).item() < 20  # pyiqa's psnr sees the frame
    assert metric(gt, gt).item() == 80.0  # identical: the cap, not inf


def test_hggt_ssim_of_two_flat_images_is_the_luminance_term():
    # Flat images have no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) in every channel.
    value = create_metric("hggt_ssim")(_image(110, border=0), _image(100, border=255)).item()
    assert value == pytest.approx((2 * 110 * 100 + C1) / (110**2 + 100**2 + C1), abs=1e-9)


def test_eval_averages_hggt_psnr_over_the_positive_gts_and_reads_basicsr_file_names(tmp_path: Path):
    images, labels = tmp_path / "Test" / "GT" / "mini" / "images", tmp_path / "Test" / "GT" / "mini" / "labels"
    write_hggt_split(images, labels, VOTES, size=48)
    sr_dir = tmp_path / "results" / "visualization" / "mini"
    sr_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for original in sorted((images / "original").glob("*.png")):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(
            sr_dir / f"{original.stem}_RRDBGAN_Pos.png")  # BasicSR's <name>_<suffix>.png
    out = tmp_path / "out"
    assert main(["eval", "--dataset", str(images), "--sr-dir", f"HGGT={sr_dir}", "--metrics", "hggt_psnr",
                 "hggt_ssim", "--out", str(out)]) == 0
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert set(rows) == {"HGGT", "Gold Standard"} and set(rows["HGGT"]) == {"hggt_psnr", "hggt_ssim"}
    per_image = (out / "per_image.csv").read_text().splitlines()
    header = per_image[0].split(",")
    # img1-0-0: Positives 01 and 02 (HGGT's majority rule on its votes); PSNR by the formula on the cropped RGB.
    line = next(line.split(",") for line in per_image if ",img1-0-0," in line)
    sr = np.asarray(Image.open(sr_dir / "img1-0-0_RRDBGAN_Pos.png"), dtype=np.float64)[4:-4, 4:-4]
    expected = []
    for slot in ("01", "02"):
        gt = np.asarray(Image.open(images / slot / f"img1-0-0_{slot}.png"), dtype=np.float64)[4:-4, 4:-4]
        expected.append(10 * math.log10(255**2 / np.mean((sr - gt) ** 2)))
    assert float(line[header.index("hggt_psnr")]) == pytest.approx(sum(expected) / 2, abs=1e-6)


def _colour(rgb: tuple[int, int, int], size: int = 24) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, size, size) / 255


def test_basicsr_y_channel_psnr_uses_bgr_order_as_basicsr_reads_images():
    """BasicSR's Y (ITU-R BT.601 on [16, 235]): Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255. By hand for
    flat colours: SR pure red, GT black -> Y differs by 65.481 (a BGR/RGB mix-up would give 24.966)."""
    sr, gt = _colour((255, 0, 0)), _colour((0, 0, 0))
    psnr = create_metric("bsr_psnr_y_crop4")(sr, gt).item()
    assert psnr == pytest.approx(10 * math.log10(255**2 / 65.481**2), abs=1e-3)
    rgb = create_metric("bsr_psnr_rgb_crop0")(sr, gt).item()  # mean squared error over 3 channels: 255^2 / 3
    assert rgb == pytest.approx(10 * math.log10(3), abs=1e-9)


@pytest.mark.parametrize(("block", "name"), [
    ({"type": "calculate_psnr", "crop_border": 4, "test_y_channel": False}, "hggt_psnr"),
    ({"type": "calculate_psnr", "crop_border": 4, "test_y_channel": True}, "bsr_psnr_y_crop4"),
    ({"type": "calculate_ssim", "crop_border": 0, "test_y_channel": True}, "bsr_ssim_y_crop0"),
    ({"type": "calculate_psnr"}, "bsr_psnr_rgb_crop0"),  # BasicSR's defaults: no crop, RGB
])
def test_basicsr_val_metric_blocks_keep_their_crop_and_channel(block: dict, name: str):
    from omegaconf import OmegaConf

    from sr_iqa.config.basicsr_keys import translate

    result = translate(OmegaConf.create({"val": {"metrics": {"m": block}}}))
    assert not result.problems and list(result.config.val.metrics) == [name]
    create_metric(name)  # a name the metric factory builds


def test_a_basicsr_metric_block_sr_iqa_cannot_read_is_one_problem_naming_what_is_read():
    from omegaconf import OmegaConf

    from sr_iqa.config.basicsr_keys import translate

    result = translate(OmegaConf.create({"val": {"metrics": {"niqe": {"type": "calculate_niqe", "crop_border": 4}}}}))
    assert result.problems == ["'val.metrics.niqe': {'type': 'calculate_niqe', 'crop_border': 4} has no sr_iqa "
                               "counterpart (BasicSR's calculate_psnr and calculate_ssim with crop_border and "
                               "test_y_channel are read); list pyiqa metric names instead"]
