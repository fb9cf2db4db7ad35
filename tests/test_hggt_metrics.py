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
