"""Loader benchmark on the demo set: HGGT-style loading against sr_iqa's, side by side in one run.

Baseline (what HGGT's dataset does per sample): decode all five GTs of the group and read its
three label files, then pick one GT and crop. sr_iqa: labels come from the index built once,
the GT is chosen first, and only the original and the chosen GT are decoded.
Both pick a Positive GT uniformly (UPos) and crop the same box size.

    python benchmarks/loader_benchmark.py [--samples 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from measurement import Measurement, benchmark_demo_set, print_rows

from sr_iqa.config.schema import SamplerType
from sr_iqa.data.datasets import MultiGTCropDataset
from sr_iqa.data.groups import aggregate_votes, index_hggt
from sr_iqa.data.image_io import array_to_tensor, read_rgb_array
from sr_iqa.sampling.choosers import CachedScoreSampler


class AllGTsLoader:
    """Reads every GT and every label file of the group for each sample, as HGGT's loader does."""

    def __init__(self, images: Path, labels: Path, gt_size: int) -> None:
        self.originals = sorted((images / "original").glob("*.png"))
        self.images, self.labels, self.gt_size = images, labels, gt_size

    def load(self, position: int, rng: np.random.Generator) -> dict:
        original = self.originals[position]
        slots = ["01", "02", "03", "04"]
        arrays = [read_rgb_array(original)] + [read_rgb_array(self.images / s / f"{original.stem}_{s}.png")
                                               for s in slots]
        votes = [json.loads((self.labels / a / f"{original.stem}.json").read_text()) for a in ("A", "B", "C")]
        labels = [aggregate_votes([v[f"Picture_{i + 2}"]["Label"] for v in votes]) for i in range(4)]
        positives = [i + 1 for i, label in enumerate(labels) if label == "Positive"]
        chosen = int(rng.choice(positives)) if positives else 0
        height, width = arrays[0].shape[:2]
        top, left = int(rng.integers(0, height - self.gt_size + 1)), int(rng.integers(0, width - self.gt_size + 1))
        crop = lambda a: array_to_tensor(a[top:top + self.gt_size, left:left + self.gt_size])  # noqa: E731
        return {"original": crop(arrays[0]), "gt": crop(arrays[chosen])}


def measure(samples: int = 400, rounds: int = 5, gt_size: int = 96) -> list[Measurement]:
    paths = benchmark_demo_set()
    baseline = AllGTsLoader(paths.train_images, paths.train_labels, gt_size)
    ours = MultiGTCropDataset(index_hggt(paths.train_images, paths.train_labels), gt_size, seed=0,
                              use_hflip=False, use_rot=False, choose_gt=CachedScoreSampler(SamplerType.upos))
    count = len(ours)
    timings = {"baseline": 0.0, "sr_iqa": 0.0}
    for round_number in range(rounds):  # interleaved, so both see the same machine load
        rng = np.random.default_rng(round_number)
        started = time.perf_counter()
        for i in range(samples):
            baseline.load(i % count, rng)
        timings["baseline"] += time.perf_counter() - started
        started = time.perf_counter()
        for i in range(samples):
            ours[(round_number, i % count)]
        timings["sr_iqa"] += time.perf_counter() - started
    rates = {name: samples * rounds / seconds for name, seconds in timings.items()}
    return [Measurement("Loader, CPU: HGGT-style reading (demo set)",
                        f"all 5 GTs + 3 label files {rates['baseline']:.0f} samples/s",
                        f"original + chosen GT {rates['sr_iqa']:.0f} samples/s", rates["sr_iqa"] / rates["baseline"],
                        None, f"{gt_size}-px crops of 128x128 PNGs, UPos, {rounds} rounds of {samples}")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gt-size", type=int, default=96)
    args = parser.parse_args()
    print_rows(measure(args.samples, args.rounds, args.gt_size))


if __name__ == "__main__":
    main()
