"""Packed store vs PNG files: 256-pixel training crops from 512x512 GTs, side by side in one run.

Both are sr_iqa's MultiGTCropDataset reading the original and one chosen GT per sample; the only
difference is where the pixels come from (PNG decode of the whole image vs a memory-mapped crop).
The set: five 512x512 crops of scikit-image photos, each with four enhanced GTs (unsharp masks).

    python benchmarks/packed_loader_benchmark.py [--samples 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gt-size", type=int, default=256)
    args = parser.parse_args()
    root = Path(tempfile.gettempdir()) / "sr_iqa_bench_512"
    images = build_set(root)
    index = index_hggt(images, None)
    pack = root / "pack"
    if not (pack / "index.json").is_file():
        pack_images([gt.path for group in index.groups for gt in group.gts], pack)
    common = dict(index=index, gt_size=args.gt_size, seed=0, use_hflip=False, use_rot=False,
                  choose_gt=FirstEnhancedGT())
    png, packed = MultiGTCropDataset(**common), MultiGTCropDataset(**common, images=PackedStore(pack))
    totals = {"png": 0.0, "packed": 0.0}
    for round_number in range(args.rounds):  # interleaved, so both see the same machine load
        totals["png"] += samples_per_second(png, args.samples, round_number)
        totals["packed"] += samples_per_second(packed, args.samples, round_number)
    png_rate, packed_rate = totals["png"] / args.rounds, totals["packed"] / args.rounds
    print(f"{len(index.groups)} groups of {SIZE}x{SIZE}, {args.gt_size}-pixel crops, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    print(f"PNG files: {png_rate:.1f} samples/s; packed store: {packed_rate:.1f} samples/s; "
          f"ratio {packed_rate / png_rate:.2f}x (target: at least 5x)")


if __name__ == "__main__":
    main()
