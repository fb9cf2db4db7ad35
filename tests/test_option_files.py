"""Every shipped option file validates; the HGGT AMO recipe trains on the CPU with demo data and NIQE."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, run_cli

from sr_iqa.config import load_options

OPTION_FILES = sorted((REPO / "options").rglob("*.yml"))


def test_the_recipe_files_are_all_there():
    names = {path.name for path in OPTION_FILES}
    for arch in ("RRDB", "SwinIR"):
        assert f"{arch}_PSNR_x4.yml" in names
        assert {f"{arch}_{s}_x4.yml" for s in ("rand", "upos", "sma", "smp", "amo")} <= names


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: p.name)
def test_option_file_validates(path: Path):
    options = load_options(path)
    assert options.name == path.stem or path.parent.name == "demo"
    if "_x4" in path.stem and "PSNR" not in path.stem:  # the HGGT recipe values (DESIGN section 5)
        assert options.train.total_iter == 300_000 and options.train.ema_decay == 0.999
        assert options.train.optim_g == {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0}
        assert options.train.scheduler == {"type": "MultiStepLR", "milestones": [200_000], "gamma": 0.5}
        assert options.train.gan_opt["loss_weight"] == 0.1 and options.network_d["type"] == "UNetDiscriminatorSN"
        assert options.train.perceptual_opt["layer_weights"] == {
            "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}
        assert options.datasets.train.gt_size == 256
        assert options.datasets.train.batch_size_per_gpu == (12 if path.stem.startswith("RRDB") else 8)
        assert options.sampler.type.value == path.stem.split("_")[1]


def test_rrdb_amo_trains_on_the_cpu_with_demo_data_and_niqe(tmp_path: Path, demo_set):
    cache = tmp_path / "niqe.db"
    scored = run_cli("score", "--dataset", str(demo_set.root), "--metric", "niqe", "--grid", "96:32", "--cache",
                     str(cache), "--num-workers", "0")
    assert scored.returncode == 0, scored.stderr[-2000:]
    overrides = [
        f"datasets.train.dataroot_gt={demo_set.train_images}", f"datasets.train.dataroot_label={demo_set.train_labels}",
        "datasets.val=null", "datasets.train.gt_size=96", "datasets.train.batch_size_per_gpu=2",
        "datasets.train.num_worker_per_gpu=0", "datasets.train.queue_size=4",
        "sampler.metric=niqe", f"sampler.cache={cache}", "sampler.grid_stride=32",
        # small enough for a CPU test; VGG19 weights cannot be had offline, so no perceptual term here
        "network_g={type: RRDBNet, num_in_ch: 3, num_out_ch: 3, num_feat: 8, num_block: 1, num_grow_ch: 4}",
        "network_d.num_feat=8", "train.perceptual_opt=null", "path.pretrain_network_g=null",
        f"path.experiments_root={tmp_path / 'experiments'}", "train.total_iter=3", "logger.print_freq=1",
        "logger.use_tb_logger=false",
    ]
    result = run_cli("train", "-opt", str(REPO / "options" / "train" / "RRDB_amo_x4.yml"), *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "experiments" / "RRDB_amo_x4" / "logs" / "train.log").read_text()
    assert "l_d" in log and "Q chosen" in log
    assert (tmp_path / "experiments" / "RRDB_amo_x4" / "models" / "net_d_3.safetensors").is_file()
