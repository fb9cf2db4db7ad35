"""Step time of UPos, cached AMO and online AMO (NIQE as Q), tiny RRDB on the demo set, CPU, in one run.

Each configuration is a real Trainer; rounds of ``--steps`` training steps alternate between them,
so all three see the same machine load. Cached AMO reads its choice from the score cache
(``sr-iqa score --grid 96:32``); online AMO loads all five GT crops and runs NIQE on them every step.

    python benchmarks/sampler_step_benchmark.py [--steps 20] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from measurement import Measurement, Target, benchmark_demo_set, print_rows

from sr_iqa.checked_options import load_options
from sr_iqa.data.check import discover_splits
from sr_iqa.iqa.scorer import Grid, gt_entries, run_scoring
from sr_iqa.train.trainer import Trainer


def trainer_for(sampler: dict, paths, folder: Path, name: str) -> Trainer:
    options = {
        "name": name, "scale": 4, "manual_seed": 0,
        "network_g": {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 2,
                      "num_grow_ch": 8},
        "datasets": {"train": {"dataroot_gt": str(paths.train_images), "dataroot_label": str(paths.train_labels),
                               "gt_size": 96, "batch_size_per_gpu": 4, "num_worker_per_gpu": 0}},
        "path": {"experiments_root": str(folder / "experiments")},
        "train": {"total_iter": 1_000_000},
        "logger": {"print_freq": 1_000_000, "save_checkpoint_freq": 1_000_000, "use_tb_logger": False},
        "sampler": sampler,
    }
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(options))
    return Trainer(load_options(path))


def measure(steps: int = 20, rounds: int = 7) -> list[Measurement]:
    paths = benchmark_demo_set()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cache = folder / "scores.db"
        groups = [g for index in discover_splits(paths.root).values() for g in index.groups]
        run_scoring(gt_entries(groups), ["niqe"], cache, Grid(96, 32), 16, 2, "cpu", None)
        trainers = {
            "upos": trainer_for({"type": "upos"}, paths, folder, "upos"),
            "cached amo": trainer_for({"type": "amo", "metric": "niqe", "cache": str(cache), "grid_stride": 32},
                                      paths, folder, "cached_amo"),
            "online amo": trainer_for({"type": "amo", "mode": "online", "metric": "niqe"}, paths, folder,
                                      "online_amo"),
        }
        batches = {name: iter(trainer.loader) for name, trainer in trainers.items()}
        seconds = dict.fromkeys(trainers, 0.0)
        ratios: dict[str, list[float]] = {name: [] for name in trainers}
        for name, trainer in trainers.items():  # warm-up
            trainer.train_step(next(batches[name]))
        for round_number in range(rounds):
            this_round = {}
            for name in (list(trainers) if round_number % 2 == 0 else list(reversed(trainers))):
                started = time.perf_counter()
                for _ in range(steps):
                    trainers[name].train_step(next(batches[name]))
                this_round[name] = time.perf_counter() - started
                seconds[name] += this_round[name]
            for name in trainers:
                ratios[name].append(this_round[name] / this_round["upos"])
    ms = {name: 1000 * total / (steps * rounds) for name, total in seconds.items()}
    settings = (f"tiny RRDB (16 feat, 2 blocks), batch 4, 96-px crops, HGGT degradation, loading in the step, "
                f"{rounds} rounds of {steps} steps, order alternating, median of per-round ratios")
    upos = f"UPos {ms['upos']:.1f} ms/step"
    return [Measurement("Cached-AMO step time, CPU", upos, f"cached AMO {ms['cached amo']:.1f} ms/step",
                        statistics.median(ratios["cached amo"]), Target("cpu", at_most=1.05), settings),
            Measurement("Online-AMO step time, CPU (NIQE on 5 GT crops per sample)", upos,
                        f"online AMO {ms['online amo']:.1f} ms/step", statistics.median(ratios["online amo"]),
                        None, settings)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print_rows(measure(args.steps, args.rounds))


if __name__ == "__main__":
    main()
