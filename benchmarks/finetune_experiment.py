"""Stage 2's claim, measured at demo scale: full fine-tuning vs LoRA vs LoRA with augmented Q.

From the same stage-1 demo model (``experiments/demo``; ``sr-iqa demo --no-finetune`` makes it),
with NIQE as Q, PIQE held out, the same steps and learning rate, each variant runs as a real
``sr-iqa train`` of ``options/demo/finetune_rrdb_demo.yml``. Prints a Markdown table for
``benchmarks/RESULTS.md``.

    python benchmarks/finetune_experiment.py [--steps 150] [--lr 3e-4] [--loss-weight 0.02]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPTIONS = REPO / "options" / "demo" / "finetune_rrdb_demo.yml"
VARIANTS = {
    "full fine-tuning": ["lora.enabled=false"],
    "LoRA rank 4": ["lora.rank=4", "lora.alpha=4"],
    "LoRA rank 4 + augment": ["lora.rank=4", "lora.alpha=4", "train.iqa_opt.augment=true"],
}


def _stage1_ready(experiments: Path) -> bool:
    return any((experiments / "demo" / "models").glob("net_g_ema_*.safetensors"))


def _run(name: str, extra: list[str], args: argparse.Namespace, experiments: Path) -> dict:
    shutil.rmtree(experiments / name, ignore_errors=True)
    command = [sys.executable, "-m", "sr_iqa", "train", "-opt", str(OPTIONS), f"name={name}",
               f"path.experiments_root={experiments}", f"path.pretrain_network_g={experiments / 'demo'}",
               f"train.total_iter={args.steps}", f"train.optim_g.lr={args.lr}",
               f"train.iqa_opt.loss_weight={args.loss_weight}", "val.val_freq=0", "logger.use_tb_logger=false",
               f"logger.save_checkpoint_freq={args.steps}", *extra]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((experiments / name / "logs" / "validation.jsonl").read_text().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--loss-weight", type=float, default=0.02)
    parser.add_argument("--experiments", type=Path, default=REPO / "experiments")
    args = parser.parse_args()
    if not _stage1_ready(args.experiments):
        subprocess.run([sys.executable, "-m", "sr_iqa", "demo", "--no-finetune"], cwd=REPO, check=True)
    rows = []
    for label, extra in VARIANTS.items():
        record = _run("experiment_ft_" + label.split()[0].lower() + ("_aug" if "augment" in label else ""),
                      extra, args, args.experiments)
        results, stage1 = record["results"], record["stage1"]
        rows.append(f"| {label} | {stage1['niqe']:.3f} → {results['niqe']:.3f} | {results['change/niqe']:+.2f}% | "
                    f"{results['change/piqe']:+.2f}% | {results['gaming_gap']:+.2f} | "
                    f"{results['structured_noise']:.3f} | {results['psnr'] - stage1['psnr']:+.2f} dB |")
    print(f"Stage 2 from the stage-1 demo RRDB: {args.steps} steps, Adam lr {args.lr:g}, lambda_Q "
          f"{args.loss_weight:g}, NIQE as Q, PIQE held out; {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}\n")
    print("| Variant | NIQE (stage 1 → 2) | optimised-Q gain | held-out PIQE change | gaming gap | "
          "structured noise (grey levels) | PSNR change |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
