"""Build the demo multi-GT set from the colour photos scikit-image ships, in the HGGT release layout.

Each group is a 128x128 crop of a photo (the original GT) plus four classical enhancements
of it at increasing strength. Labels are synthetic: three simulated annotators judge each
enhancement by how much it raises the mean gradient magnitude (see ``LABEL_RULE``).
The fixed LR images of the test split come from HGGT's one-stage degradation, seeded.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

from sr_iqa.data.degradations import HGGTDegradation
from sr_iqa.data.enhancements import local_contrast, unsharp
from sr_iqa.data.groups import hggt_label_file
from sr_iqa.data.image_io import read_rgb_tensor, write_rgb
from sr_iqa.errors import OptionsError

log = logging.getLogger("sr_iqa.data")

TRAIN_PHOTOS = ("astronaut", "coffee", "immunohistochemistry", "retina", "hubble_deep_field")
TEST_PHOTOS = ("chelsea", "rocket", "motorcycle")
# Every photo a set can name: scikit-image's bundled images (grey ones repeated into three channels) and the one
# photograph matplotlib ships. The numbers are fixed (they name the groups: img<number>-<left>-<top>).
PHOTO_NUMBERS = {name: number for number, name in enumerate(
    ("astronaut", "coffee", "immunohistochemistry", "retina", "hubble_deep_field", "chelsea", "rocket", "motorcycle",
     "camera", "brick", "grass", "gravel", "coins", "moon", "grace_hopper"), start=1)}
SLOTS = ("original", "01", "02", "03", "04")
ANNOTATORS = ("A", "B", "C")
TRAIN_SET = "demo"
TEST_SET = "Test-demo"

# Annotator -> (Positive when gain >= this, Negative when gain > this); anything else is Similar.
LABEL_RULE = {"A": (1.05, 1.40), "B": (1.10, 2.00), "C": (1.60, 2.60)}


# Each takes and returns an HxWx3 uint8 array.
ENHANCEMENTS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "01": ("unsharp mask, radius 1, 60 %", unsharp(1.0, 60)),
    "02": ("unsharp mask, radius 2, 120 %", unsharp(2.0, 120)),
    "03": ("CLAHE (local contrast), clip limit 0.01", local_contrast(0.01)),
    "04": ("unsharp mask, radius 3, 300 %", unsharp(3.0, 300)),
}


@dataclass(frozen=True)
class DemoSetSpec:
    crop_size: int = 128  # of the training groups
    scale: int = 4
    train_crops_per_photo: int = 6
    test_crops_per_photo: int = 2
    # Held-out groups are larger: on 128-px images NIQE ranks bicubic above the originals; at 256 px the
    # no-reference metrics rank the originals first, so "better than bicubic" means something.
    test_crop_size: int = 256
    seed: int = 0  # of the test split's LR degradation
    train_photos: tuple[str, ...] = TRAIN_PHOTOS  # names of PHOTO_NUMBERS
    test_photos: tuple[str, ...] = TEST_PHOTOS  # held out: never trained on


@dataclass(frozen=True)
class DemoSetPaths:
    """Where the builder puts each part, relative to the demo root."""

    root: Path

    @property
    def train_images(self) -> Path:
        return self.root / "Train" / "images" / TRAIN_SET

    @property
    def train_labels(self) -> Path:
        return self.root / "Train" / "labels" / TRAIN_SET

    @property
    def test_images(self) -> Path:
        return self.root / "Test" / "GT" / TEST_SET / "images"

    @property
    def test_labels(self) -> Path:
        return self.root / "Test" / "GT" / TEST_SET / "labels"

    @property
    def test_lr(self) -> Path:
        return self.root / "Test" / "Blind_Degradation_Benchmark_LQ" / TEST_SET / "Blind_LR"

    @property
    def score_cache(self) -> Path:
        """Where the experiment scores the set (the samplers' cache, and the evaluations' GT scores)."""
        return self.root / "scores.db"

    @property
    def marker(self) -> Path:
        return self.root / ".complete.json"

    def option_overrides(self) -> list[str]:
        """Option overrides that point a training at this set (train and held-out split, the score cache), resuming
        a run that was stopped."""
        return [
            f"datasets.train.dataroot_gt={self.train_images}",
            f"datasets.train.dataroot_label={self.train_labels}",
            f"datasets.val.dataroot_gt={self.test_images}",
            f"datasets.val.dataroot_label={self.test_labels}",
            f"datasets.val.dataroot_lq={self.test_lr}",
            f"sampler.cache={self.score_cache}",
            "path.resume_state=auto",
        ]


def load_photo(name: str) -> np.ndarray:
    """An HxWx3 uint8 photo by its name in PHOTO_NUMBERS."""
    if name not in PHOTO_NUMBERS:
        raise ValueError(f"no photo '{name}'; photos: {', '.join(PHOTO_NUMBERS)}")
    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
            return np.array(Image.open(file).convert("RGB"))
    photo = getattr(skimage.data, name)()
    return np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo[..., :3]


def textured_crops(photo: np.ndarray, size: int, count: int) -> list[tuple[int, int, np.ndarray]]:
    """The ``count`` crops with most detail on a non-overlapping grid (flat sky makes a poor SR sample)."""
    height, width = photo.shape[:2]
    candidates = []
    for top in range(0, height - size + 1, size):
        for left in range(0, width - size + 1, size):
            crop = photo[top:top + size, left:left + size]
            candidates.append((mean_gradient(crop), top, left, crop))
    candidates.sort(key=lambda c: -c[0])
    return sorted(((top, left, crop) for _, top, left, crop in candidates[:count]), key=lambda c: c[:2])


def mean_gradient(image: np.ndarray) -> float:
    """Mean gradient magnitude (central differences) of the BT.601 luma."""
    rgb = image.astype(np.float64)
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    grad_y, grad_x = np.gradient(luma)
    return float(np.hypot(grad_x, grad_y).mean())


def sharpness_gain(enhanced: np.ndarray, original: np.ndarray) -> float:
    """How much an enhancement raises the mean gradient magnitude: the demo's label signal."""
    return mean_gradient(enhanced) / max(mean_gradient(original), 1e-8)


def annotator_label(annotator: str, gain: float) -> str:
    positive_from, negative_above = LABEL_RULE[annotator]
    if gain > negative_above:
        return "Negative"
    if gain >= positive_from:
        return "Positive"
    return "Similar"


def write_label_files(labels_root: Path, group: str, labels: dict[str, dict[str, str]]) -> None:
    """``labels``: annotator -> slot -> label; one file per annotator, ``<labels_root>/<annotator>/<group>.json``."""
    for annotator, given in labels.items():
        path = labels_root / annotator / f"{group}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(hggt_label_file(group, SLOTS[1:], given), indent=1))


def _write_group(images: Path, labels: Path, group: str, original: np.ndarray) -> None:
    write_rgb(images / "original" / f"{group}.png", original)
    gains = {}
    for slot, (_, enhance) in ENHANCEMENTS.items():
        enhanced = enhance(original)
        write_rgb(images / slot / f"{group}_{slot}.png", enhanced)
        gains[slot] = sharpness_gain(enhanced, original)
    votes = {annotator: {slot: annotator_label(annotator, gain) for slot, gain in gains.items()}
             for annotator in ANNOTATORS}
    write_label_files(labels, group, votes)


def _readme(spec: DemoSetSpec) -> str:
    enhancements = "\n".join(f"- `{slot}`: {description}" for slot, (description, _) in ENHANCEMENTS.items())
    rule = "\n".join(f"| {a} | gain >= {p} | gain > {n} |" for a, (p, n) in LABEL_RULE.items())
    return f"""# sr_iqa demo set (generated; the labels are SYNTHETIC)

Built by `sr-iqa demo` from the colour photos that scikit-image ships. It follows the HGGT
release layout so that the same code reads it and the real HGGT data.

- Groups: crops (training {spec.crop_size}x{spec.crop_size}, held-out {spec.test_crop_size}x{spec.test_crop_size}),
  the cells of a grid with the highest mean gradient.
  Train photos: {", ".join(spec.train_photos)} ({spec.train_crops_per_photo} crops each).
  Test photos (held out): {", ".join(spec.test_photos)} ({spec.test_crops_per_photo} crops each).
- Enhanced GTs (classical enhancements at increasing strength):
{enhancements}
- Labels are **not human**. Each of three simulated annotators labels an enhanced GT by its
  sharpness gain, the mean gradient magnitude of the luma of the enhanced GT divided by that of the
  original:

| annotator | Positive when | Negative when |
|---|---|---|
{rule}

  Otherwise the label is Similar. The annotators disagree on purpose, so that the HGGT majority
  vote (and its "all three differ gives Similar" rule) is exercised.
- Test LR images (`Test/Blind_Degradation_Benchmark_LQ/{TEST_SET}/Blind_LR`) are the originals
  degraded once with HGGT's one-stage degradation at x1/{spec.scale} (seed {spec.seed}), as HGGT's
  blind test set is.
"""


def one_stage_lr(original: torch.Tensor, scale: int, seed: int, number: int) -> torch.Tensor:
    """The CHW original degraded once with HGGT's one-stage degradation, seeded by (seed, number): the held-out
    set's fixed LR images (and the experiment's gate, for training groups)."""
    degradation = HGGTDegradation()
    rng = np.random.default_rng([seed, number])
    kernels = {name: kernel[None] for name, kernel in degradation.sample_kernels(rng).items()}
    with torch.random.fork_rng():
        torch.manual_seed(seed * 1000 + number)
        return degradation.apply(original[None], kernels, scale)[0]


def group_name(photo: str, left: int, top: int) -> str:
    return f"img{PHOTO_NUMBERS[photo]}-{left}-{top}"


def photo_of(group: str) -> str:
    """The photo a group was cut from (its name's ``img<number>``)."""
    number = int(group.split("-")[0].removeprefix("img"))
    return next(name for name, n in PHOTO_NUMBERS.items() if n == number)


def _as_json(spec: DemoSetSpec) -> dict:
    """The spec as the marker stores it (tuples as lists, as JSON reads them back)."""
    return json.loads(json.dumps(asdict(spec)))


def _check_sizes(spec: DemoSetSpec) -> None:
    """Crop sizes the builder can cut and a network can train on: multiples of the scale, at least 8 LR pixels,
    at most the smallest photo's side (a larger one cut no group and failed in a file-system error)."""
    smallest = min(min(load_photo(name).shape[:2]) for name in (*spec.train_photos, *spec.test_photos))
    low, high = 8 * spec.scale, smallest // spec.scale * spec.scale
    for field, flag in (("crop_size", "--crop-size"), ("test_crop_size", "--test-crop-size")):
        size = getattr(spec, field)
        if size % spec.scale or not low <= size <= high:
            raise OptionsError(f"demo set: {field} ({flag}) must be a multiple of the scale {spec.scale} from {low} "
                               f"to {high} (the smallest photo's side), got {size}")


def build_demo_set(root: Path, spec: DemoSetSpec = DemoSetSpec()) -> DemoSetPaths:
    """Build (or reuse, when a complete set with the same spec exists) the demo set under ``root``."""
    paths = DemoSetPaths(root)
    if paths.marker.is_file() and json.loads(paths.marker.read_text()) == _as_json(spec):
        return paths
    shared = set(spec.train_photos) & set(spec.test_photos)
    if shared:
        raise ValueError(f"photos both trained on and held out: {', '.join(sorted(shared))}")
    _check_sizes(spec)
    staging = root.with_name(f".{root.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staged = DemoSetPaths(staging)
    for split_images, split_labels, photos, count, size in (
        (staged.train_images, staged.train_labels, spec.train_photos, spec.train_crops_per_photo, spec.crop_size),
        (staged.test_images, staged.test_labels, spec.test_photos, spec.test_crops_per_photo, spec.test_crop_size),
    ):
        for photo_name in photos:
            crops = textured_crops(load_photo(photo_name), size, count)
            if len(crops) < count:  # the presets' held-out chelsea holds 2 crops of 192 px: "at most", said
                log.info("demo set: %s holds %d crops of %d px on its grid, fewer than the %d asked; all %d cut",
                         photo_name, len(crops), size, count, len(crops))
            for top, left, crop in crops:
                _write_group(split_images, split_labels, group_name(photo_name, left, top), crop)
    for number, original in enumerate(sorted((staged.test_images / "original").iterdir())):
        write_rgb(staged.test_lr / original.name, one_stage_lr(read_rgb_tensor(original), spec.scale, spec.seed,
                                                               number))
    (staging / "README.md").write_text(_readme(spec))
    staged.marker.write_text(json.dumps(_as_json(spec)))
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return paths

