"""Bad data is refused at setup with messages that name the files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_cli, tiny_options, write_options
from PIL import Image

from sr_iqa.data.datasets import EvalPairDataset, TrainCropDataset
from sr_iqa.data.degradations import bicubic_downsample
from sr_iqa.data.image_io import read_rgb_tensor
from sr_iqa.errors import DataError


@pytest.fixture
def gt_root(tmp_path: Path, demo_set) -> Path:
    root = tmp_path / "gt"
    shutil.copytree(demo_set.test_images / "original", root / "original")
    return root


def test_missing_original_folder_is_named(tmp_path: Path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere" / "original")):
        TrainCropDataset(tmp_path / "nowhere", gt_size=32, seed=0)


def test_corrupt_image_is_named(gt_root: Path):
    broken = gt_root / "original" / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png"):
        TrainCropDataset(gt_root, gt_size=32, seed=0)


def test_truncated_image_is_named_when_read(gt_root: Path):
    image = sorted((gt_root / "original").iterdir())[0]
    image.write_bytes(image.read_bytes()[:200])
    with pytest.raises(DataError, match=image.name):
        read_rgb_tensor(image)


def test_every_too_small_image_is_listed(gt_root: Path):
    for name in ("tiny_a.png", "tiny_b.png"):
        Image.new("RGB", (20, 20)).save(gt_root / "original" / name)
    with pytest.raises(DataError) as caught:
        TrainCropDataset(gt_root, gt_size=32, seed=0)
    assert "tiny_a.png" in str(caught.value) and "tiny_b.png" in str(caught.value)


def test_fixed_lr_of_the_wrong_size_and_missing_lr_are_listed(tmp_path: Path, demo_set):
    lq_root = tmp_path / "lq"
    shutil.copytree(demo_set.test_lr, lq_root)
    names = sorted(p.name for p in lq_root.iterdir())
    Image.new("RGB", (10, 10)).save(lq_root / names[0])
    (lq_root / names[1]).unlink()
    with pytest.raises(DataError) as caught:
        EvalPairDataset(demo_set.test_images, lq_root, scale=4)
    message = str(caught.value)
    assert f"{lq_root / names[0]}: LR is 10x10" in message
    assert f"{lq_root / names[1]}: fixed LR image is missing" in message


def test_eval_pairs_synthesise_lr_when_no_fixed_lr(demo_set):
    pair = EvalPairDataset(demo_set.test_images, None, scale=4)[0]
    assert torch.equal(pair.lq, bicubic_downsample(pair.gt[None], 4)[0])
    assert pair.lq.shape[-1] * 4 == pair.gt.shape[-1]


def test_cli_refuses_a_missing_dataset_with_one_line(tmp_path: Path, demo_set):
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["datasets"]["train"]["dataroot_gt"] = str(tmp_path / "missing")
    result = run_cli("train", "-opt", str(write_options(tmp_path / "o.yml", options)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(tmp_path / "missing" / "original") in result.stderr
    assert not (tmp_path / "experiments" / "tiny").exists()
