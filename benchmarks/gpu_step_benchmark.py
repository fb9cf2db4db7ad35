"""Stage-1 GAN step on a GPU: the recipe's SwinIR-M (batch 8) and RRDB (batch 12), 256x256 GT, with
sr_iqa's speed options against the same step in fp32 eager without channels-last (BasicSR's way),
side by side in one run; then UPos against cached AMO (NIQE crop scores from the cache) and online AMO
(a randomly initialised MUSIQ on every GT crop), all with the best options.

Accelerate fixes the precision once per process, so each configuration lives in its own worker
process holding a real Trainer built from ``options/train/<arch>_upos_x4.yml``; the parent
alternates "run N steps" between the workers, so all see the same machine state. A worker
reports its time per step (CUDA-synchronised), its peak memory, and (counted once with torch's
FlopCounterMode) the FLOPs of one step. No network: the data are 512x512 crops of scikit-image
photos with four unsharp-mask GTs, all labelled Positive (so UPos and AMO both read two images per
sample); the VGG19 of the perceptual loss and MUSIQ are randomly initialised (the step costs the same).

    python benchmarks/gpu_step_benchmark.py [--steps 10] [--rounds 5] [--arch RRDB --arch SwinIR]
    python benchmarks/gpu_step_benchmark.py --smoke --arch RRDB --steps 1 --rounds 1   # the code path, any device
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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

    from sr_iqa.checked_options import load_options
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
    """One configuration in its own process. Construction starts it; ``wait_ready`` waits for its warm-up
    (compilation included), so that several workers can warm up at the same time."""

    def __init__(self, option_file: Path, overrides: list[str], count_flops: bool) -> None:
        spec = {"option_file": str(option_file), "overrides": overrides, "count_flops": count_flops}
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], cwd=REPO,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.flops = 0
        self.seconds, self.steps, self.peak_gib = 0.0, 0, 0.0
        self.ready = False

    def wait_ready(self) -> Worker:
        if not self.ready:  # the warm-up's one reply; a second call finds the worker ready
            self.flops = self._read()["flops"]
            self.ready = True
        return self

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

    def restart_clock(self) -> None:
        self.seconds, self.steps = 0.0, 0

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.seconds / self.steps

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def _ready(*workers: Worker) -> None:
    for worker in workers:
        worker.wait_ready()


# ----- the parent ---------------------------------------------------------------------------------

GRID_STRIDE = 64  # cached AMO: the 256-pixel crop boxes lie on a 64-pixel grid (25 boxes per 512x512 GT)


def _common_overrides(data: PreparedData, experiments: Path, name: str) -> list[str]:
    return [f"name={name}", f"datasets.train.dataroot_gt={data.images}",
            f"datasets.train.dataroot_label={data.labels}", "datasets.val=null",
            "datasets.train.num_worker_per_gpu=4", "path.pretrain_network_g=null",
            f"path.experiments_root={experiments}", f"iqa.weights_dir={data.weights}", "logger.use_tb_logger=false",
            f"train.perceptual_opt.vgg_weights={data.weights / RANDOM_VGG19}"]


def _cached_amo(data: PreparedData) -> list[str]:
    return [f"sampler={{type: amo, metric: niqe, cache: {data.scores}, grid_stride: {GRID_STRIDE}}}"]


RANDOM_VGG19 = "vgg19-random-features.pth"


def _random_vgg19(weights: Path) -> None:
    """The perceptual loss's VGG19 features with random weights, given as ``vgg_weights``: torchvision's
    ImageNet file is not on the GPU image, and its download has no network there (it hangs, it does not fail)."""
    import torchvision

    weights.mkdir(parents=True, exist_ok=True)
    target = weights / RANDOM_VGG19
    if not target.is_file():
        torch.save(torchvision.models.vgg19(weights=None).features.state_dict(), target)


def _write_labels(images: Path, labels: Path) -> None:
    """HGGT label files for the benchmark set: every enhanced GT Positive for all three annotators, so that
    UPos reads the original and one enhanced GT per sample, as cached AMO does."""
    for original in sorted((images / "original").glob("*.png")):
        entries: dict = {"Picture_1": {"Name": "original", "File": f"original/{original.name}", "Label": None}}
        for number, slot in enumerate(("01", "02", "03", "04"), start=2):
            entries[f"Picture_{number}"] = {"Name": slot, "File": f"{slot}/{original.stem}_{slot}.png",
                                            "Label": "Positive"}
        for annotator in "ABC":
            path = labels / annotator / f"{original.stem}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(entries))


@dataclass(frozen=True)
class PreparedData:
    images: Path  # the folder holding original/ and 01..04
    labels: Path
    weights: Path  # a random VGG19's features (RANDOM_VGG19)
    scores: Path  # NIQE of every GT on the 256:64 grid, for cached AMO


def _prepared_data() -> PreparedData:
    from packed_loader_benchmark import build_set

    root = Path(tempfile.gettempdir()) / "sr_iqa_bench_512"
    data = PreparedData(build_set(root), root / "labels", root / "weights", root / "scores.db")
    _random_vgg19(data.weights)
    if not (data.labels / "C").is_dir():
        _write_labels(data.images, data.labels)
    # `sr-iqa score` as a user runs it, in its own process; a second run finds every score and does nothing.
    subprocess.run([sys.executable, "-m", "sr_iqa", "score", "--dataset", str(data.images), "--metric", "niqe",
                    "--grid", f"256:{GRID_STRIDE}", "--cache", str(data.scores)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    return data


def _side_by_side(workers: dict[str, Worker], steps: int, rounds: int) -> None:
    for round_number in range(rounds):
        order = list(workers) if round_number % 2 == 0 else list(reversed(workers))
        for name in order:
            workers[name].run(steps)


def option_effects(steps: int = 5, rounds: int = 3) -> list[Measurement]:
    """Each speed option alone against the plain reference, RRDB's GAN step: the recipe's size on a GPU,
    a small one (CPU_SIZE) on the CPU. Options that act only on CUDA are left out on the CPU."""
    kind = "gpu" if torch.cuda.is_available() else "cpu"
    data = _prepared_data()
    option_file = REPO / "options" / "train" / "RRDB_upos_x4.yml"
    rows = []
    with tempfile.TemporaryDirectory() as experiments:
        common = _common_overrides(data, Path(experiments), "RRDB") + (CPU_SIZE if kind == "cpu" else [])
        reference = Worker(option_file, [*common, *PLAIN, "name=plain"], False).wait_ready()
        for name, (overrides, where) in EACH_OPTION.items():
            if where == "gpu" and kind == "cpu":
                continue
            option = Worker(option_file, [*common, *PLAIN, *overrides, f"name=option{len(rows)}"], False).wait_ready()
            reference.restart_clock()
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


def measure(archs: list[str], steps: int = 10, rounds: int = 5, smoke: bool = False,
            what: tuple[str, ...] = ("step", "samplers")) -> list[Measurement]:
    """Per arch: ``step``, the GAN step with the best options against fp32 eager; ``samplers``, UPos against
    cached and online AMO (all with the best options). Workers that are compared warm up together; the AMO
    workers start after the best-options worker has compiled, so that their identical G and D graphs come from
    inductor's cache. A GPU check short of time asks for the step alone first: its figure comes soonest."""
    data = _prepared_data()
    peak = bf16_peak_tflops() if torch.cuda.is_available() else None
    rows = []
    with tempfile.TemporaryDirectory() as experiments:
        for arch in archs:
            option_file = REPO / "options" / "train" / f"{arch}_upos_x4.yml"
            common = _common_overrides(data, Path(experiments), arch)
            if smoke:  # the code path on a CPU (RRDB only): tiny networks, graph capture without code generation
                common += ["network_g.num_block=1", "network_g.num_feat=8", "network_g.num_grow_ch=4",
                           "network_d.num_feat=8", "datasets.train.batch_size_per_gpu=2",
                           "datasets.train.num_worker_per_gpu=0", "train.compile_backend=aot_eager"]
            best = Worker(option_file, [*common, *BEST, f"name={arch}_best"], False)
            if "step" in what:
                rows.append(_step_row(arch, option_file, common, best, steps, rounds, peak))
            if "samplers" in what:
                rows += _sampler_rows(arch, option_file, common, best, data, steps, rounds)
            best.close()
    return rows


def _step_row(arch: str, option_file: Path, common: list[str], best: Worker, steps: int, rounds: int,
              peak: float | None) -> Measurement:
    baseline = Worker(option_file, [*common, *BASELINE, f"name={arch}_fp32"], True)
    _ready(baseline, best)
    _side_by_side({"fp32 eager": baseline, "best": best}, steps, rounds)
    baseline.close()
    tflops = baseline.flops / (best.ms_per_step / 1000) / 1e12
    utilisation = f", {100 * tflops / peak:.1f} % of the {peak:g} TFLOP/s bf16 peak" if peak else ""
    return Measurement(
        f"Stage-1 GAN step, GPU: {arch} (batch {'8' if arch == 'SwinIR' else '12'}, 256x256 GT)",
        f"fp32 eager {baseline.ms_per_step:.1f} ms/step, peak {baseline.peak_gib:.1f} GiB",
        f"bf16 + channels-last + compile + fused Adam {best.ms_per_step:.1f} ms/step, "
        f"peak {best.peak_gib:.1f} GiB", baseline.ms_per_step / best.ms_per_step, Target("gpu", at_least=2),
        f"{tflops:.1f} TFLOP/s achieved ({baseline.flops / 1e12:.2f} TFLOP per step){utilisation}; "
        f"G + VGG19 perceptual + UNet D, {rounds} alternating rounds of {steps} steps")


def _sampler_rows(arch: str, option_file: Path, common: list[str], best: Worker, data: PreparedData, steps: int,
                  rounds: int) -> list[Measurement]:
    best.wait_ready()
    cached = Worker(option_file, [*common, *BEST, *_cached_amo(data), f"name={arch}_cached_amo"], False)
    online = Worker(option_file, [*common, *BEST, *ONLINE_AMO, f"name={arch}_online_amo"], False)
    _ready(cached, online)
    best.restart_clock()
    _side_by_side({"UPos": best, "cached AMO": cached, "online AMO": online}, steps, rounds)
    for worker in (cached, online):
        worker.close()
    return [
        Measurement(f"Cached-AMO step time, GPU: {arch}", f"UPos {best.ms_per_step:.1f} ms/step",
                    f"cached AMO {cached.ms_per_step:.1f} ms/step", cached.seconds / best.seconds,
                    Target("gpu", at_most=1.05), f"both with the best options, NIQE scores on the "
                    f"256:{GRID_STRIDE} grid, {rounds} alternating rounds of {steps} steps"),
        Measurement(f"Online-AMO overhead, GPU: {arch}, random MUSIQ on 5 GT crops per sample",
                    f"UPos {best.ms_per_step:.1f} ms/step",
                    f"online AMO {online.ms_per_step:.1f} ms/step, peak {online.peak_gib:.1f} GiB",
                    online.seconds / best.seconds, None, "both with the best speed options")]


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
