"""Training crops and evaluation pairs read from a folder of original GTs.

The folder is the one that holds ``original/`` in the HGGT release layout
(``Train/images/<set>``, ``Test/GT/<set>/images``). The enhanced GTs beside it are not
used yet: for now the supervising GT is always the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from sr_iqa.data.degradations import bicubic_downsample
from sr_iqa.data.image_io import array_to_tensor, list_images, read_rgb_array, read_rgb_tensor
from sr_iqa.errors import DataError


def find_originals(gt_root: Path) -> list[Path]:
    folder = gt_root / "original"
    if not folder.is_dir():
        raise DataError(f"{folder}: folder is missing; 'dataroot_gt' must point at the folder that holds original/ "
                        "(the demo set is built by `sr-iqa demo`)")
    paths = list_images(folder)
    if not paths:
        raise DataError(f"{folder}: holds no images")
    return paths


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header alone; DataError when the file is not an image."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError as error:
        raise DataError(f"{path}: cannot read image ({error})") from None
    return height, width


def _raise_all(problems: list[str]) -> None:
    if problems:
        raise DataError(f"{len(problems)} problem(s) in the data:\n" + "\n".join(problems))


def augment(array: np.ndarray, rng: np.random.Generator, hflip: bool, rotation: bool) -> np.ndarray:
    """BasicSR's augment (hflip, vflip, transpose; each with p=0.5), driven by ``rng``."""
    flips = rng.random(3) < 0.5
    if hflip and flips[0]:
        array = array[:, ::-1]
    if rotation and flips[1]:
        array = array[::-1, :]
    if rotation and flips[2]:
        array = array.transpose(1, 0, 2)
    return array


class TrainCropDataset(Dataset):
    """Random ``gt_size`` crops of the originals. Item keys are ``(epoch, index)`` (see training_order)."""

    def __init__(self, gt_root: Path, gt_size: int, seed: int, use_hflip: bool = True,
                 use_rot: bool = True) -> None:
        self.paths = find_originals(gt_root)
        self.gt_size = gt_size
        self.seed = seed
        self.use_hflip = use_hflip
        self.use_rot = use_rot
        problems = []
        for path in self.paths:
            height, width = image_size(path)
            if min(height, width) < gt_size:
                problems.append(f"{path}: {height}x{width} is smaller than gt_size {gt_size}")
        _raise_all(problems)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        array = read_rgb_array(self.paths[index])
        height, width = array.shape[:2]
        top = int(rng.integers(0, height - self.gt_size + 1))
        left = int(rng.integers(0, width - self.gt_size + 1))
        crop = array[top:top + self.gt_size, left:left + self.gt_size]
        crop = augment(crop, rng, self.use_hflip, self.use_rot)
        return {"gt": array_to_tensor(crop), "key": torch.tensor([epoch, index])}


@dataclass
class EvalPair:
    name: str
    gt: torch.Tensor  # 3xHxW
    lq: torch.Tensor  # 3x(H/scale)x(W/scale)


class EvalPairDataset(Dataset):
    """(LR, original GT) per group: the fixed LR from ``lq_root`` or, without one, bicubic x1/scale."""

    def __init__(self, gt_root: Path, lq_root: Path | None, scale: int) -> None:
        self.gt_paths = find_originals(gt_root)
        self.lq_root = lq_root
        self.scale = scale
        problems = []
        for path in self.gt_paths:
            height, width = image_size(path)
            if lq_root is None:
                continue
            lq_path = lq_root / path.name
            if not lq_path.is_file():
                problems.append(f"{lq_path}: fixed LR image is missing (GT {path})")
                continue
            lq_height, lq_width = image_size(lq_path)
            if (lq_height * scale, lq_width * scale) != (height, width):
                problems.append(f"{lq_path}: LR is {lq_height}x{lq_width}, but GT {path.name} is "
                                f"{height}x{width} and scale is {scale}")
        _raise_all(problems)

    def __len__(self) -> int:
        return len(self.gt_paths)

    def __getitem__(self, index: int) -> EvalPair:
        path = self.gt_paths[index]
        gt = read_rgb_tensor(path)
        if self.lq_root is not None:
            return EvalPair(path.stem, gt, read_rgb_tensor(self.lq_root / path.name))
        height, width = gt.shape[-2:]
        gt = gt[:, : height - height % self.scale, : width - width % self.scale]
        return EvalPair(path.stem, gt, bicubic_downsample(gt[None], self.scale)[0])
