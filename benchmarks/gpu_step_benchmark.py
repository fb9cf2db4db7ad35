"""Stage-1 GAN step on a GPU: the recipe's SwinIR-M (batch 8) and RRDB (batch 12), 256x256 GT, with
sr_iqa's speed options against the same step in fp32 eager without channels-last (BasicSR's way),
side by side in one run; plus online AMO with a randomly initialised MUSIQ against UPos.

Accelerate fixes the precision once per process, so each configuration lives in its own worker
process holding a real Trainer built from ``options/train/<arch>_upos_x4.yml``; the parent
alternates "run N steps" between the workers, so both see the same machine state. A worker
reports its time per step (CUDA-synchronised), its peak memory, and (counted once with torch's
FlopCounterMode) the FLOPs of one step. No network: the data are 512x512 crops of
scikit-image photos, the VGG19 of the perceptual loss and MUSIQ are randomly initialised (the
step costs the same).

    python benchmarks/gpu_step_benchmark.py [--steps 10] [--rounds 5] [--arch RRDB --arch SwinIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from measurement import Measurement, Target, print_rows

REPO = Path(__file__).resolve().parent.parent
BASELINE = ["train.mixed_precision=no", "train.channels_last=false", "train.compile=false", "train.tf32=false",
            "datasets.train.prefetch_to_device=false"]  # cuDNN autotuning stays on, as BasicSR's train.py sets it
BEST = ["train.mixed_precision=bf16", "train.channels_last=true", "train.compile=true",
        "train.optim_g.fused=true", "train.optim_d.fused=true", "datasets.train.prefetch_to_device=true"]
# Each option alone on top of a plain reference (fp32 eager, no TF32, no cuDNN autotuning): its own effect.
PLAIN = [*BASELINE, "train.cudnn_benchmark=false"]
EACH_OPTION = {
    "TF32": (["train.tf32=true"], "gpu"),
    "cuDNN benchmark": (["train.cudnn_benchmark=true"], "gpu"),
    "bf16 autocast": (["train.mixed_precision=bf16"], "any"),
    "channels-last": (["train.channels_last=true"], "any"),
    "foreach Adam": (["train.optim_g.foreach=true", "train.optim_d.foreach=true"], "any"),
    "fused Adam": (["train.optim_g.fused=true", "train.optim_d.fused=true"], "any"),
    "torch.compile": (["train.compile=true"], "any"),
    "device prefetch (side stream)": (["datasets.train.prefetch_to_device=true"], "gpu"),
}
# On the CPU: a small RRDB GAN step without the VGG term, so that G and D dominate.
CPU_SIZE = ["network_g.num_block=2", "network_g.num_feat=32", "network_g.num_grow_ch=16", "network_d.num_feat=32",
            "datasets.train.gt_size=64", "datasets.train.batch_size_per_gpu=4", "datasets.train.num_worker_per_gpu=0",
            "train.perceptual_opt=null"]
ONLINE_AMO = ["sampler={type: amo, mode: online, metric: musiq}", "iqa.metric_options.musiq.pretrained=false"]
BF16_DENSE_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}


def bf16_peak_tflops() -> float | None:
    name = torch.cuda.get_device_name(0)
    for key, peak in BF16_DENSE_PEAK_TFLOPS.items():  # most specific first
        if key in name:
            return peak
    return None


# ----- the worker ---------------------------------------------------------------------------------

def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def _worker(spec: dict) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from sr_iqa.config import load_options
    from sr_iqa.train.trainer import Trainer

    replies, sys.stdout = sys.stdout, sys.stderr  # whatever else prints must not mix with the replies
    options = load_options(Path(spec["option_file"]), spec["overrides"])
    trainer = Trainer(options, source=spec["option_file"])
    batches = trainer.training_batches()
    for _ in range(3):  # warm-up: compilation, cuDNN autotuning, allocator
        trainer.run_iteration(batches)
    _synchronize()
    flops = 0
    if spec["count_flops"]:
        with FlopCounterMode(display=False) as counter:
            trainer.run_iteration(batches)
        flops = counter.get_total_flops()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    print(json.dumps({"ready": True, "flops": flops}), file=replies, flush=True)
    for line in sys.stdin:
        steps = int(line)
        _synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            trainer.run_iteration(batches)
        _synchronize()
        print(json.dumps({"seconds": time.perf_counter() - started, "peak_gib": _peak_gib()}), file=replies,
              flush=True)


class Worker:
    def __init__(self, option_file: Path, overrides: list[str], count_flops: bool) -> None:
        spec = {"option_file": str(option_file), "overrides": overrides, "count_flops": count_flops}
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], cwd=REPO,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.flops = self._read()["flops"]
        self.seconds, self.steps, self.peak_gib = 0.0, 0, 0.0

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with {self.process.wait()}")
        return json.loads(line)

    def run(self, steps: int) -> None:
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()
        reply = self._read()
        self.seconds += reply["seconds"]
        self.steps += steps
        self.peak_gib = max(self.peak_gib, reply["peak_gib"])

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.seconds / self.steps

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


# ----- the parent ---------------------------------------------------------------------------------

def _common_overrides(data: Path, weights: Path, experiments: Path, name: str) -> list[str]:
    return [f"name={name}", f"datasets.train.dataroot_gt={data}", "datasets.train.dataroot_label=null",
            "datasets.val=null", "datasets.train.num_worker_per_gpu=4", "path.pretrain_network_g=null",
            f"path.experiments_root={experiments}", f"iqa.weights_dir={weights}", "logger.use_tb_logger=false"]


def _random_vgg19(weights: Path) -> None:
    """The perceptual loss's VGG19 with random weights, under the file name basicsr asks for (no network here)."""
    import torchvision

    weights.mkdir(parents=True, exist_ok=True)
    target = weights / "vgg19-dcbb9e9d.pth"
    if not target.is_file():
        torch.save(torchvision.models.vgg19().state_dict(), target)


def _side_by_side(workers: dict[str, Worker], steps: int, rounds: int) -> None:
    for round_number in range(rounds):
        order = list(workers) if round_number % 2 == 0 else list(reversed(workers))
        for name in order:
            workers[name].run(steps)


def _prepared_data() -> tuple[Path, Path]:
    from packed_loader_benchmark import build_set

    root = Path(tempfile.gettempdir()) / "sr_iqa_bench_512"
    data = build_set(root)
    weights = root / "weights"
    _random_vgg19(weights)
    return data, weights


def option_effects(steps: int = 5, rounds: int = 3) -> list[Measurement]:
    """Each speed option alone against the plain reference, RRDB's GAN step: the recipe's size on a GPU,
    a small one (CPU_SIZE) on the CPU. Options that act only on CUDA are left out on the CPU."""
    kind = "gpu" if torch.cuda.is_available() else "cpu"
    data, weights = _prepared_data()
    option_file = REPO / "options" / "train" / "RRDB_upos_x4.yml"
    rows = []
    with tempfile.TemporaryDirectory() as experiments:
        common = _common_overrides(data, weights, Path(experiments), "RRDB") + (CPU_SIZE if kind == "cpu" else [])
        reference = Worker(option_file, [*common, *PLAIN, "name=plain"], False)
        for name, (overrides, where) in EACH_OPTION.items():
            if where == "gpu" and kind == "cpu":
                continue
            option = Worker(option_file, [*common, *PLAIN, *overrides, f"name=option{len(rows)}"], False)
            reference.seconds, reference.steps = 0.0, 0
            _side_by_side({"reference": reference, name: option}, steps, rounds)
            rows.append(Measurement(
                f"Speed option alone, {kind.upper()}: {name}", f"fp32 eager {reference.ms_per_step:.1f} ms/step",
                f"{name} {option.ms_per_step:.1f} ms/step", reference.ms_per_step / option.ms_per_step, None,
                ("RRDB recipe, batch 12, 256-px GT, with VGG19 perceptual" if kind == "gpu" else
                 "RRDB 32 feat, 2 blocks, UNet D 32 feat, batch 4, 64-px GT, no VGG term") +
                f"; speed-up, {rounds} alternating rounds of {steps} steps"))
            option.close()
        reference.close()
    return rows


def measure(archs: list[str], steps: int = 10, rounds: int = 5, smoke: bool = False) -> list[Measurement]:
    data, weights = _prepared_data()
    peak = bf16_peak_tflops() if torch.cuda.is_available() else None
    rows = []
    with tempfile.TemporaryDirectory() as experiments:
        for arch in archs:
            option_file = REPO / "options" / "train" / f"{arch}_upos_x4.yml"
            common = _common_overrides(data, weights, Path(experiments), arch)
            if smoke:  # the code path on a CPU: a tiny RRDB, graph capture without code generation
                common += ["network_g.num_block=1", "network_g.num_feat=8", "network_g.num_grow_ch=4",
                           "datasets.train.gt_size=64", "datasets.train.batch_size_per_gpu=2",
                           "datasets.train.num_worker_per_gpu=0", "train.compile_backend=aot_eager"]
            workers = {
                "fp32 eager": Worker(option_file, [*common, *BASELINE, "name=" + arch + "_fp32"], True),
                "best": Worker(option_file, [*common, *BEST, "name=" + arch + "_best"], False),
            }
            _side_by_side(workers, steps, rounds)
            baseline, best = workers["fp32 eager"], workers["best"]
            tflops = baseline.flops / (best.ms_per_step / 1000) / 1e12
            utilisation = f", {100 * tflops / peak:.1f} % of the {peak:g} TFLOP/s bf16 peak" if peak else ""
            rows.append(Measurement(
                f"Stage-1 GAN step, GPU: {arch} (batch {'8' if arch == 'SwinIR' else '12'}, 256x256 GT)",
                f"fp32 eager {baseline.ms_per_step:.1f} ms/step, peak {baseline.peak_gib:.1f} GiB",
                f"bf16 + channels-last + compile + fused Adam {best.ms_per_step:.1f} ms/step, "
                f"peak {best.peak_gib:.1f} GiB", baseline.ms_per_step / best.ms_per_step, Target("gpu", at_least=2),
                f"{tflops:.1f} TFLOP/s achieved ({baseline.flops / 1e12:.2f} TFLOP per step){utilisation}; "
                f"G + VGG19 perceptual + UNet D, {rounds} alternating rounds of {steps} steps"))
            for worker in workers.values():
                worker.close()
            amo = {"UPos": Worker(option_file, [*common, *BEST, "name=" + arch + "_upos"], False),
                   "online AMO": Worker(option_file, [*common, *BEST, *ONLINE_AMO, "name=" + arch + "_amo"], False)}
            _side_by_side(amo, steps, rounds)
            rows.append(Measurement(
                f"Online-AMO overhead, GPU: {arch}, random MUSIQ on 5 GT crops per sample",
                f"UPos {amo['UPos'].ms_per_step:.1f} ms/step",
                f"online AMO {amo['online AMO'].ms_per_step:.1f} ms/step, peak {amo['online AMO'].peak_gib:.1f} GiB",
                amo["online AMO"].seconds / amo["UPos"].seconds, None, "both with the best speed options"))
            for worker in amo.values():
                worker.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--arch", action="append", choices=["RRDB", "SwinIR"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny RRDB on any device: checks the code path only")
    parser.add_argument("--each-option", action="store_true", help="each speed option alone (GPU or CPU)")
    args = parser.parse_args()
    if args.worker:
        _worker(json.loads(args.worker))
    elif args.each_option:
        print_rows(option_effects(args.steps, args.rounds))
    else:
        print_rows(measure(args.arch or ["SwinIR", "RRDB"], args.steps, args.rounds, args.smoke))


if __name__ == "__main__":
    main()
