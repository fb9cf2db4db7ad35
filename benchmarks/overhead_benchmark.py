"""Framework overhead, CPU: one training iteration of sr_iqa's Trainer against a bare PyTorch loop with the
same tiny RRDB, L1 loss, Adam and batches, side by side in one run.

The Trainer's iteration is ``Trainer.run_iteration``: Accelerate's wrapped model and backward, the
accumulation context, device copy and bicubic LR synthesis, sampling statistics, the scheduler step
and the counter (everything the loop does per iteration except logging, validation and
checkpoints). The bare loop does the same arithmetic and nothing else. Both read the same batches
from memory (loading is measured by the loader benchmarks) and run without EMA. Rounds alternate;
who goes first alternates; the ratio is the median of the per-round ratios. Rounds are short
(5 steps) and many, so that a burst of load from elsewhere on a shared machine spoils single
rounds, which the median discards, instead of one side's total.

    python benchmarks/overhead_benchmark.py [--steps 5] [--rounds 60]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from measurement import Measurement, Target, benchmark_demo_set, print_rows

from sr_iqa.checked_options import load_options
from sr_iqa.data.degradations import bicubic_downsample
from sr_iqa.models.generators import build_generator
from sr_iqa.train.trainer import Trainer

NETWORK = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 32, "num_block": 2, "num_grow_ch": 16}
BATCH, GT_SIZE, SCALE = 4, 64, 4


def build_trainer(folder: Path) -> Trainer:
    paths = benchmark_demo_set()
    options = {
        "name": "overhead", "scale": SCALE, "manual_seed": 0, "network_g": NETWORK,
        "datasets": {"train": {"dataroot_gt": str(paths.train_images), "dataroot_label": str(paths.train_labels),
                               "gt_size": GT_SIZE, "batch_size_per_gpu": BATCH, "num_worker_per_gpu": 0,
                               "use_hflip": False, "use_rot": False}},
        "degradation": {"type": "bicubic"},
        "path": {"experiments_root": str(folder / "experiments")},
        "train": {"total_iter": 1_000_000, "ema_decay": 0, "optim_g": {"type": "Adam", "lr": 1e-4}},
        "logger": {"print_freq": 1_000_000, "save_checkpoint_freq": 1_000_000, "use_tb_logger": False},
    }
    path = folder / "overhead.yml"
    path.write_text(yaml.safe_dump(options))
    return Trainer(load_options(path))


class BareLoop:
    """What a user would write by hand: the same model, loss and optimizer, nothing else."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.network = build_generator(dict(NETWORK), SCALE)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=1e-4, betas=(0.9, 0.99))

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            lq = bicubic_downsample(batch["original"], SCALE)
        loss = torch.nn.functional.l1_loss(self.network(lq), batch["gt"])
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def measure(steps: int = 5, rounds: int = 60) -> list[Measurement]:
    with tempfile.TemporaryDirectory() as folder:
        trainer = build_trainer(Path(folder))
        loader = iter(trainer.loader)
        batches = [next(loader) for _ in range(steps)]
        bare = BareLoop()
        ratios, seconds = [], {"sr_iqa": 0.0, "bare": 0.0}
        def run_sr_iqa() -> None:
            trainer_batches = iter(batches)
            for _ in range(steps):
                trainer.run_iteration(trainer_batches)

        def run_bare() -> None:
            for batch in batches:
                bare.step(batch)

        runs = {"sr_iqa": run_sr_iqa, "bare": run_bare}
        for round_number in range(rounds + 1):  # round 0 warms both up
            timing = {}
            order = list(runs) if round_number % 2 else list(reversed(runs))  # who goes first alternates
            for name in order:
                started = time.perf_counter()
                runs[name]()
                timing[name] = time.perf_counter() - started
            if round_number:
                ratios.append(timing["sr_iqa"] / timing["bare"])
                for name in seconds:
                    seconds[name] += timing[name]
        trainer.accelerator.end_training()
    per_step = {name: 1000 * total / (steps * rounds) for name, total in seconds.items()}
    return [Measurement(
        "Framework overhead, CPU: tiny RRDB step", f"bare PyTorch loop {per_step['bare']:.1f} ms/step",
        f"sr_iqa Trainer {per_step['sr_iqa']:.1f} ms/step", statistics.median(ratios), Target("cpu", at_most=1.05),
        f"RRDB {NETWORK['num_feat']} feat, {NETWORK['num_block']} blocks; batch {BATCH}, {GT_SIZE}-px GT; "
        f"L1 + Adam; {rounds} rounds of {steps} steps, median of per-round ratios")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    print_rows(measure(args.steps, args.rounds))


if __name__ == "__main__":
    main()
