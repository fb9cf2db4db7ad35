"""Training crops and evaluation images read through a group index.

A training sample is one crop box applied to every image the sample uses: the original
(LR synthesis starts from it), the chosen GT (picked by a ``GTChooser`` before anything is
read) and, when asked for, one Negative GT. Only those files are opened.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from sr_iqa.data import image_io
from sr_iqa.data.degradations import matlab_bicubic_downsample
from sr_iqa.data.groups import LABEL_VALUES, Group, GroupIndex

# Label codes in the ``labels`` tensor: -1 for the original (or unlabelled), else the position in LABEL_VALUES.
LABEL_CODES = {label: code for code, label in enumerate(LABEL_VALUES)}


@dataclass(frozen=True)
class CropBox:
    top: int
    left: int
    size: int


class GTChooser(Protocol):
    """The sampler hook: which GT of a group supervises a sample, decided before any image is read. The dataset
    declares what it calls; the samplers implement it (``sr_iqa.sampling``). Without one, the original."""

    box_stride: int  # crop boxes are drawn on this grid (cached AMO needs its score grid); 1 for any box

    def choose(self, position: int, group: Group, box: CropBox, rng: np.random.Generator) -> int:
        """Index into ``group.gts``; ``position`` is the group's position in the index."""

    def quality(self, position: int, group: Group, box: CropBox) -> np.ndarray | None:
        """The "higher is better" Q of every GT that the choice was based on, or None without scores."""


class ImageSource(Protocol):
    """Where training crops come from: the image files, or a packed store (``sr_iqa.data.packed_store``)."""

    def shape(self, path: Path) -> tuple[int, int]: ...

    def crop(self, path: Path, top: int, left: int, size: int) -> np.ndarray: ...


class ImageFiles:
    """Crops from the files themselves: every crop decodes the whole image (PNG has no random access)."""

    def shape(self, path: Path) -> tuple[int, int]:
        return image_io.read_size(path)

    def crop(self, path: Path, top: int, left: int, size: int) -> np.ndarray:
        return image_io.read_rgb_array(path)[top: top + size, left: left + size]


def label_codes(group: Group, width: int) -> torch.Tensor:
    """The group's label codes, padded with -1 to ``width`` so that groups of different sizes batch."""
    codes = [LABEL_CODES.get(gt.label, -1) if i else -1 for i, gt in enumerate(group.gts)]
    return torch.tensor(codes + [-1] * (width - len(codes)))


def augment(array: np.ndarray, flips: np.ndarray, hflip: bool, rotation: bool) -> np.ndarray:
    """BasicSR's augment (hflip, vflip, transpose; each with p = 0.5); ``flips`` are the three coin tosses."""
    if hflip and flips[0]:
        array = array[:, ::-1]
    if rotation and flips[1]:
        array = array[::-1, :]
    if rotation and flips[2]:
        array = array.transpose(1, 0, 2)
    return np.ascontiguousarray(array)


def augment_tensors(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """``augment`` on a batch of CxHxW tensors (on any device), each with its own three effective coin tosses
    (``flips``: Bx3 booleans, already masked by use_hflip / use_rot)."""
    out = []
    for image, (hflip, vflip, transpose) in zip(images, flips.tolist(), strict=True):
        image = image.flip(-1) if hflip else image
        image = image.flip(-2) if vflip else image
        out.append(image.transpose(-1, -2) if transpose else image)
    return torch.stack(out)


class MultiGTCropDataset(Dataset):
    """Item keys are ``(epoch, index)`` (see training_order); all randomness comes from ``(seed, epoch, index)``."""

    def __init__(self, index: GroupIndex, gt_size: int, seed: int, use_hflip: bool = True, use_rot: bool = True,
                 choose_gt: GTChooser | None = None, with_negative: bool = False, with_candidates: bool = False,
                 sample_kernels: Callable[[np.random.Generator], dict[str, torch.Tensor]] | None = None,
                 images: ImageSource | None = None, ranked_excluding: tuple[str, ...] | None = None) -> None:
        """``ranked_excluding``: also return every GT's crop (augmented as the chosen one) with its Q at the crop,
        for the ranked-GT loss; GTs with these labels get no Q (None: not asked)."""
        self.groups = index.groups
        self.images = images if images is not None else ImageFiles()
        self.max_gts = max((len(group.gts) for group in self.groups), default=1)
        self.gt_size = gt_size
        self.seed = seed
        self.use_hflip = use_hflip
        self.use_rot = use_rot
        self.choose_gt = choose_gt
        self.with_negative = with_negative
        self.with_candidates = with_candidates
        self.sample_kernels = sample_kernels
        self.ranked_excluding = ranked_excluding

    def __len__(self) -> int:
        return len(self.groups)

    def _crop(self, path: Path, box: CropBox, flips: np.ndarray) -> torch.Tensor:
        crop = self.images.crop(path, box.top, box.left, box.size)
        return image_io.array_to_tensor(augment(crop, flips, self.use_hflip, self.use_rot))

    def _negative_gt_fields(self, group: Group, box: CropBox, flips: np.ndarray, rng: np.random.Generator,
                            chosen: int, sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What HGGT's negative-GT term needs: a random Negative GT and, independently, a random Positive as its
        reference (the original when there is none), their crops at the same box and their vote counts. Crops
        already read are reused; a sample without a Negative reads nothing more."""
        negatives, positives = group.indices_labelled("Negative"), group.indices_labelled("Positive")
        negative = int(rng.choice(negatives)) if negatives else 0
        reference = int(rng.choice(positives)) if positives else 0

        def crop(index: int) -> torch.Tensor:
            if index == 0 or not negatives:
                return sample["original"]
            return sample["gt"] if index == chosen else self._crop(group.gts[index].path, box, flips)

        return {"has_negative": torch.tensor(bool(negatives)), "has_positive": torch.tensor(bool(positives)),
                "negative": crop(negative), "reference": crop(reference),
                "negative_votes": torch.tensor(group.gts[negative].label_votes),
                "reference_votes": torch.tensor(group.gts[reference].label_votes)}

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, position = key
        rng = np.random.default_rng([self.seed, epoch, position])
        group = self.groups[position]
        height, width = self.images.shape(group.original.path)
        stride = self.choose_gt.box_stride if self.choose_gt is not None else 1
        box = CropBox(stride * int(rng.integers(0, (height - self.gt_size) // stride + 1)),
                      stride * int(rng.integers(0, (width - self.gt_size) // stride + 1)), self.gt_size)
        flips = rng.random(3) < 0.5
        chosen = self.choose_gt.choose(position, group, box, rng) if self.choose_gt is not None else 0
        original_crop = self._crop(group.original.path, box, flips)
        sample = {
            "original": original_crop,
            "gt": original_crop if chosen == 0 else self._crop(group.gts[chosen].path, box, flips),
            "gt_index": torch.tensor(chosen),
            "labels": label_codes(group, self.max_gts),
            "box": torch.tensor([box.top, box.left, box.size]),
            "key": torch.tensor([epoch, position]),
        }
        quality = self.choose_gt.quality(position, group, box) if self.choose_gt is not None else None
        if quality is not None:  # for the training statistics: Q of the chosen GT and the best Q at this crop
            sample["chosen_q"] = torch.tensor(float(quality[chosen]))
            sample["best_q"] = torch.tensor(float(quality.max()))
        if self.with_negative:
            sample |= self._negative_gt_fields(group, box, flips, rng, chosen, sample)
        if self.with_candidates:  # online AMO scores every GT crop on the device, unaugmented (as the cache holds
            # regions of the files), and augments the one it chooses with these flips
            unaugmented = np.zeros(3, dtype=bool)
            crops = [self._crop(gt.path, box, unaugmented) for gt in group.gts]
            padding = self.max_gts - len(crops)
            sample["candidates"] = torch.stack(crops + [crops[0]] * padding)
            sample["candidate_mask"] = torch.tensor([True] * len(crops) + [False] * padding)
            sample["flips"] = torch.from_numpy(flips & np.array([self.use_hflip, self.use_rot, self.use_rot]))
        if self.ranked_excluding is not None:
            sample |= self._ranked_fields(group, box, flips, chosen, sample, quality)
        if self.sample_kernels is not None:
            sample.update(self.sample_kernels(rng))
        return sample

    def _ranked_fields(self, group: Group, box: CropBox, flips: np.ndarray, chosen: int,
                       sample: dict[str, torch.Tensor], quality: np.ndarray | None) -> dict[str, torch.Tensor]:
        """Every GT's crop (padded to the largest group) and its Q, -inf where a GT takes no part (an excluded
        label, padding); crops already read are reused."""
        crops = [sample["original"] if i == 0 else sample["gt"] if i == chosen else
                 self._crop(gt.path, box, flips) for i, gt in enumerate(group.gts)]
        q = [float(quality[i]) if i == 0 or gt.label not in self.ranked_excluding else -math.inf
             for i, gt in enumerate(group.gts)]
        padding = self.max_gts - len(crops)
        return {"ranked_gts": torch.stack(crops + [crops[0]] * padding),
                "ranked_q": torch.tensor(q + [-math.inf] * padding, dtype=torch.float32)}


@dataclass
class EvalGroup:
    name: str
    gt: torch.Tensor  # the original, 3xHxW
    lq: torch.Tensor  # 3x(H/scale)x(W/scale)
    group: Group  # all GTs and labels, for metrics that look at every GT


class EvalGroupDataset(Dataset):
    """Whole images: the original GT and the fixed LR (bicubic x1/scale of the original when the group has none)."""

    def __init__(self, index: GroupIndex, scale: int) -> None:
        self.groups = index.groups
        self.scale = scale

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, position: int) -> EvalGroup:
        group = self.groups[position]
        gt = image_io.read_rgb_tensor(group.original.path)
        if group.lr_path is not None:
            return EvalGroup(group.name, gt, image_io.read_rgb_tensor(group.lr_path), group)
        height, width = gt.shape[-2:]
        gt = gt[:, : height - height % self.scale, : width - width % self.scale]
        return EvalGroup(group.name, gt, matlab_bicubic_downsample(gt, self.scale), group)
