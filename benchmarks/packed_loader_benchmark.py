"""Packed store vs PNG files: 256-pixel training crops from 512x512 GTs, side by side in one run.

Both are sr_iqa's MultiGTCropDataset reading the original and one chosen GT per sample; the only
difference is where the pixels come from (PNG decode of the whole image vs a memory-mapped crop).
The set: five 512x512 crops of scikit-image photos, each with four enhanced GTs (unsharp masks).

    python benchmarks/packed_loader_benchmark.py [--samples 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from measurement import Measurement, Target, print_rows
from PIL import Image, ImageFilter

from sr_iqa.data.datasets import MultiGTCropDataset
from sr_iqa.data.demo_set import TRAIN_PHOTOS, load_photo
from sr_iqa.data.groups import Group, index_hggt
from sr_iqa.data.packed_store import PackedStore, pack_images

SIZE = 512


class FirstEnhancedGT:
    """Always the 01 GT: every sample reads two images, as UPos does."""

    box_stride = 1

    def choose(self, position: int, group: Group, box: object, rng: np.random.Generator) -> int:
        return 1

    def quality(self, position: int, group: Group, box: object) -> None:
        return None


def build_set(root: Path) -> Path:
    images = root / "images"
    if (images / "04").is_dir():
        return images
    for photo_name in TRAIN_PHOTOS:
        photo = load_photo(photo_name)
        if photo.ndim != 3 or min(photo.shape[:2]) < SIZE:
            continue
        top, left = (photo.shape[0] - SIZE) // 2, (photo.shape[1] - SIZE) // 2
        original = Image.fromarray(photo[top:top + SIZE, left:left + SIZE, :3])
        name = f"{photo_name}-{left}-{top}"
        for slot, radius in (("original", 0), ("01", 1), ("02", 2), ("03", 3), ("04", 4)):
            folder = images / slot
            folder.mkdir(parents=True, exist_ok=True)
            image = original if radius == 0 else original.filter(ImageFilter.UnsharpMask(radius, 120, 2))
            image.save(folder / (f"{name}.png" if slot == "original" else f"{name}_{slot}.png"))
    return images


def samples_per_second(dataset: MultiGTCropDataset, samples: int, epoch: int) -> float:
    started = time.perf_counter()
    for i in range(samples):
        dataset[(epoch, i % len(dataset))]
    return samples / (time.perf_counter() - started)


def measure(samples: int = 200, rounds: int = 3, gt_size: int = 256) -> list[Measurement]:
    root = Path(tempfile.gettempdir()) / "sr_iqa_bench_512"
    images = build_set(root)
    index = index_hggt(images, None)
    pack = root / "pack"
    if not (pack / "index.json").is_file():
        pack_images([gt.path for group in index.groups for gt in group.gts], pack)
    common = dict(index=index, gt_size=gt_size, seed=0, use_hflip=False, use_rot=False,
                  choose_gt=FirstEnhancedGT())
    png, packed = MultiGTCropDataset(**common), MultiGTCropDataset(**common, images=PackedStore(pack))
    totals = {"png": 0.0, "packed": 0.0}
    for round_number in range(rounds):  # interleaved, so both see the same machine load
        totals["png"] += samples_per_second(png, samples, round_number)
        totals["packed"] += samples_per_second(packed, samples, round_number)
    png_rate, packed_rate = totals["png"] / rounds, totals["packed"] / rounds
    return [Measurement(f"Packed loader, CPU: {gt_size}x{gt_size} crops from {SIZE}x{SIZE} images",
                        f"PNG files {png_rate:.0f} samples/s", f"packed store {packed_rate:.0f} samples/s",
                        packed_rate / png_rate, Target("cpu", at_least=5),
                        f"{len(index.groups)} groups, original + one GT per sample, {rounds} rounds of {samples}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gt-size", type=int, default=256)
    args = parser.parse_args()
    print_rows(measure(args.samples, args.rounds, args.gt_size))


if __name__ == "__main__":
    main()
