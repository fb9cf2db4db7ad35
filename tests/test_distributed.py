"""A real 2-process Accelerate run on the CPU (gloo): both ranks train, only rank 0 writes files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import ACCELERATE_LAUNCH, REPO, tiny_options, write_options
from safetensors.torch import load_file


def _launch(options_file: Path | None, port: int, *command: str) -> subprocess.CompletedProcess:
    command = command or ("train", "-opt", str(options_file))
    return subprocess.run(
        [*ACCELERATE_LAUNCH, "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
         "-m", "sr_iqa", *command],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
    )


def test_two_cpu_processes_train_and_only_rank_zero_writes(tmp_path: Path, demo_set):
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["val"]["val_freq"] = 4
    # With a GAN: the discriminator is DDP-wrapped too, and the generator's adversarial term must not trip it.
    options["network_d"] = {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 8}
    options["train"] |= {"optim_d": {"type": "Adam", "lr": 1e-3},
                         "gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1}}
    options_file = write_options(tmp_path / "ddp.yml", options)
    result = _launch(options_file, 29517)
    assert result.returncode == 0, result.stderr[-3000:]
    # Each rank reports itself; a launcher that started two lone processes would print "of 1" twice.
    assert "process 0 of 2" in result.stderr and "process 1 of 2" in result.stderr

    run = tmp_path / "experiments" / "tiny"
    for iteration in (4, 8):
        state = run / "training_states" / str(iteration)
        assert (state / "random_states_0.pkl").is_file() and (state / "random_states_1.pkl").is_file()
    assert sorted(p.name for p in (run / "models").iterdir()) == [
        "net_d_4.safetensors", "net_d_8.safetensors", "net_g_4.safetensors", "net_g_8.safetensors",
        "net_g_ema_4.safetensors", "net_g_ema_8.safetensors"]
    assert not [p for p in (run / "training_states").iterdir() if p.name.startswith(".")]
    log = (run / "logs" / "train.log").read_text()
    assert log.count("saved checkpoint at iteration") == 2  # written once, by rank 0
    assert log.count("validation at iter") == 2
    assert "process 0 of 2" in log and "process 1 of 2" not in log

    weights = load_file(str(run / "models" / "net_g_8.safetensors"))
    initial = load_file(str(run / "models" / "net_g_4.safetensors"))
    assert not torch.equal(weights["conv_first.weight"], initial["conv_first.weight"])


def test_two_cpu_processes_finetune_lora_against_niqe(tmp_path: Path, demo_set):
    """Frozen backbone + IQA term under DDP: no unused-parameter errors, both ranks step the same adapters."""
    from sr_iqa.models.generators import build_generator
    from sr_iqa.models.weight_files import generator_metadata
    from sr_iqa.train.checkpoints import save_weights

    options = tiny_options(demo_set, tmp_path / "experiments")
    base = tmp_path / "base.safetensors"
    torch.manual_seed(1)  # an untrained net whose output is not flat, so NIQE has something to score
    save_weights(build_generator(options["network_g"], 4), base, generator_metadata(options["network_g"]))
    options["datasets"]["train"] |= {"gt_size": 96, "batch_size_per_gpu": 1}
    options["path"]["pretrain_network_g"] = str(base)
    options["lora"] = {"rank": 2, "alpha": 2}
    options["train"] |= {"total_iter": 4, "iqa_opt": {"metric": "niqe", "loss_weight": 0.05}}
    options["val"] |= {"monitor_metrics": ["piqe"]}
    result = _launch(write_options(tmp_path / "ft.yml", options), 29518)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process 1 of 2" in result.stderr and "find_unused_parameters" not in result.stderr
    run = tmp_path / "experiments" / "tiny"
    assert sorted(p.name for p in (run / "models").iterdir()) == [
        "lora_4.safetensors", "lora_ema_4.safetensors"]
    adapter = load_file(str(run / "models" / "lora_4.safetensors"))
    assert all(tensor.abs().sum() > 0 for name, tensor in adapter.items() if "lora_B" in name)
    assert "gaming_gap" in (run / "logs" / "train.log").read_text()


def test_two_cpu_processes_evaluate_the_same_as_one(tmp_path: Path, demo_set):
    import json
    import shutil

    from conftest import run_cli

    sr_dir = tmp_path / "sr"
    shutil.copytree(demo_set.test_images / "01", sr_dir)  # another method's outputs: the 01 GTs, renamed
    for path in sr_dir.iterdir():
        path.rename(sr_dir / path.name.replace("_01", ""))
    arguments = ("eval", "--dataset", str(demo_set.root), "--sr-dir", f"m={sr_dir}", "--metrics", "psnr", "niqe")
    single = run_cli(*arguments, "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr[-2000:]
    double = _launch(None, 29519, *arguments, "--out", str(tmp_path / "two"))
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("one", "two"))
    assert two["rows"].keys() == one["rows"].keys()
    for method, row in one["rows"].items():
        assert two["rows"][method] == pytest.approx(row)
    lines = (tmp_path / "two" / "per_image.csv").read_text().splitlines()
    assert len(lines) == 1 + len(list(sr_dir.iterdir()))  # every group once, gathered from both ranks
