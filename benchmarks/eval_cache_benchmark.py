"""Evaluation benchmark, CPU: one `eval` of the cpu experiment preset's held-out set, its GTs scored by the
evaluation itself (before `eval --cache`) against read from a score cache that holds them (every evaluation of
the experiment after its first), side by side in one run.

The held-out set is the cpu preset's (3 photos, 6 crops of 192 px each, 5 GTs per group), the method its
stage-1 network (a 2-block RRDB of 64 features; random weights: the time, not the scores, matters here), the
metrics its own (psnr, ssim, niqe, piqe; vgg_dist when VGG19 is installed).

    python benchmarks/eval_cache_benchmark.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from measurement import Measurement, print_rows

from sr_iqa.data.check import discover_splits
from sr_iqa.data.demo_set import DemoSetSpec, build_demo_set
from sr_iqa.evaluate.run_eval import run_eval, upscaler_method
from sr_iqa.models.generators import build_generator

CPU_PRESET_TEST = DemoSetSpec(crop_size=128, train_crops_per_photo=1, test_crop_size=192, test_crops_per_photo=6,
                              train_photos=("astronaut",), test_photos=("chelsea", "motorcycle", "grace_hopper"))
STAGE1_NETWORK = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 2,
                  "num_grow_ch": 32}
METRICS = ["psnr", "ssim", "niqe", "piqe", "vgg_dist"]


def measure(rounds: int = 3) -> list[Measurement]:
    """Two metric sets: the cpu preset's (vgg_dist, a VGG19 per SR and Positive GT, dominates) and its cheap part
    alone (PSNR and the two NR metrics, where the GTs' scores weigh most). Who goes first alternates per round;
    each ratio is the median of the per-round ratios (cached / plain)."""
    root = Path(tempfile.gettempdir()) / "sr_iqa_bench_eval_cache"
    paths = build_demo_set(root, CPU_PRESET_TEST)
    groups = [group for name, index in discover_splits(paths.root).items() if name.startswith("Test/")
              for group in index.groups]
    torch.manual_seed(0)
    network = build_generator(STAGE1_NETWORK, 4).eval()
    method = upscaler_method("stage 1", network, torch.device("cpu"), scale=4)
    return [_measure_one(groups, method, metrics, rounds) for metrics in (METRICS, ["psnr", "niqe", "piqe"])]


def _measure_one(groups: list, method: object, metrics: list[str], rounds: int) -> Measurement:
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "scores.db"
        run_eval([method], groups, metrics, Path(folder) / "warm", 4, score_cache=cache)  # the first evaluation

        def plain() -> None:
            run_eval([method], groups, metrics, Path(folder) / "plain", 4)

        def cached() -> None:
            run_eval([method], groups, metrics, Path(folder) / "cached", 4, score_cache=cache)

        seconds: dict[str, list[float]] = {"plain": [], "cached": []}
        for round_index in range(rounds):
            order = [("plain", plain), ("cached", cached)]
            for name, run in order if round_index % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - started)
    ratios = [c / p for p, c in zip(seconds["plain"], seconds["cached"], strict=True)]
    plain_s, cached_s = statistics.median(seconds["plain"]), statistics.median(seconds["cached"])
    return Measurement(
        f"eval of the cpu experiment's held-out set ({', '.join(metrics)}), GT scores from the cache: time "
        "relative to scoring them", f"GTs scored by eval: {plain_s:.1f} s", f"read from the cache: {cached_s:.1f} s",
        statistics.median(ratios), None,
        f"{len(groups)} groups x {len(groups[0].gts)} GTs of 192 px, 1 method, {rounds} rounds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    print_rows(measure(parser.parse_args().rounds))
