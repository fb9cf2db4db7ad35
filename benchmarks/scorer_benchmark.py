"""Scorer benchmark, CPU, NIQE on the demo set: `sr-iqa score` against a naive loop, side by side in one run.

Naive: for each GT path, read the image and call the metric on it alone. sr_iqa: the scoring
function behind `sr-iqa score` (content hashing, DataLoader workers, batches of equal-sized
images, SQLite writes), into a fresh cache every round. Both score the full images; with
``--grid`` both also score every crop of that grid.

    python benchmarks/scorer_benchmark.py [--rounds 7] [--grid 96:32] [--batch-size N] [--num-workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from measurement import Measurement, Target, benchmark_demo_set, print_rows

from sr_iqa.data.check import discover_splits
from sr_iqa.data.image_io import read_rgb_tensor
from sr_iqa.iqa.metrics import create_metric
from sr_iqa.iqa.score_cache import grid_regions
from sr_iqa.iqa.scorer import DEFAULT_BATCH_SIZE, Grid, gt_entries, run_scoring


@torch.no_grad()
def naive(paths: list[Path], metric: torch.nn.Module, grid: Grid | None) -> int:
    count = 0
    for path in paths:
        image = read_rgb_tensor(path)
        metric(image[None])
        count += 1
        if grid is not None:
            for region in grid_regions(image.shape[2], image.shape[1], grid.size, grid.stride):
                metric(image[None, :, region.y:region.y + region.h, region.x:region.x + region.w])
                count += 1
    return count


def measure(rounds: int = 7, grid: str | None = None, batch_size: int | None = None,
            num_workers: int = 2) -> list[Measurement]:
    """Who goes first alternates per round; the ratio is the median of the per-round ratios."""
    grid_boxes = Grid.parse(grid) if grid else None
    paths = benchmark_demo_set()
    entries = gt_entries([g for index in discover_splits(paths.root).values() for g in index.groups])
    metric = create_metric("niqe", "cpu")
    scored = 0

    def run_naive() -> None:
        nonlocal scored
        scored = naive([e.path for e in entries], metric, grid_boxes)

    def run_sr_iqa() -> None:
        with tempfile.TemporaryDirectory() as folder:
            run_scoring(entries, ["niqe"], Path(folder) / "cache.db", grid_boxes, batch_size, num_workers, "cpu",
                        None)

    runs = {"naive": run_naive, "sr_iqa": run_sr_iqa}
    totals, ratios = dict.fromkeys(runs, 0.0), []
    for round_number in range(rounds):
        seconds = {}
        for name in (list(runs) if round_number % 2 == 0 else list(reversed(runs))):
            started = time.perf_counter()
            runs[name]()
            seconds[name] = time.perf_counter() - started
            totals[name] += seconds[name]
        ratios.append(seconds["naive"] / seconds["sr_iqa"])
    rates = {name: scored * rounds / total for name, total in totals.items()}
    regions = "full images" if grid is None else f"full images + {grid} grid"
    return [Measurement(f"Scorer throughput, CPU, NIQE ({regions})", f"naive loop {rates['naive']:.0f} regions/s",
                        f"sr-iqa score {rates['sr_iqa']:.0f} regions/s", statistics.median(ratios),
                        Target("cpu", at_least=3),
                        f"{len(entries)} GTs of 128x128, batch {batch_size or DEFAULT_BATCH_SIZE['cpu']}, "
                        f"{num_workers} workers, fresh cache; {rounds} rounds, median of per-round ratios")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--grid", default=None, help="SIZE:STRIDE")
    parser.add_argument("--batch-size", type=int, help="default: sr-iqa score's")
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args()
    print_rows(measure(args.rounds, args.grid, args.batch_size, args.num_workers))


if __name__ == "__main__":
    main()
