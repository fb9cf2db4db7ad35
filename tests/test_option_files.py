"""Every shipped option file validates; the HGGT AMO recipe trains on the CPU with demo data and NIQE."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli
from safetensors.torch import load_file

from sr_iqa.checked_options import load_options

# Not option files: ablation grids, experiment presets and `data build`'s enhancer lists (their own loaders and tests).
OPTION_FILES = sorted(path for path in (REPO / "options").rglob("*.yml")
                      if path.parent.name not in ("ablation", "experiment", "data_build"))


def test_the_recipe_files_are_all_there():
    names = {path.name for path in OPTION_FILES}
    for arch in ("RRDB", "SwinIR"):
        assert f"{arch}_PSNR_x4.yml" in names
        assert {f"{arch}_{s}_x4.yml" for s in ("rand", "upos", "sma", "smp", "amo")} <= names


# HGGT's values, read from its files (ChrisDud0257/HGGT at commit 0877113, PosNegGTSR/options/train/PosNegGTSR/;
# SwinIR's rechecked on 2026-11-27): the GAN stage
# (train_{RRDB,SwinIR}GAN_PosNegGT_Blind_Pos_x4.yml) and the PSNR stage (train_{RRDB,SwinIR}_DF2K_OST_Blind_x4.yml).
HGGT_GAN_MILESTONES = {"RRDB": [200_000], "SwinIR": [200_000, 250_000, 275_000, 287_500]}
HGGT_PSNR = {"RRDB": (1e-4, [200_000]), "SwinIR": (2e-4, [150_000, 240_000, 270_000, 285_000])}
HGGT_QUEUE = {"RRDB": 144, "SwinIR": 160}


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: p.name)
def test_option_file_validates(path: Path):
    options = load_options(path)
    assert options.name == path.stem or path.parent.name in ("demo", "templates") or \
        path.parent.parent.name == "experiment"  # templates: stage 2 names stage 1's run folder
    if path.parent.name != "train" or path.stem.startswith("RealESRGAN"):  # RealESRGAN: the test below
        return
    arch = path.stem.split("_")[0]
    train = options.datasets.train
    assert options.train.total_iter == 300_000 and options.train.ema_decay == 0.999
    assert (train.gt_size, train.use_hflip, train.use_rot) == (256, True, False)
    assert (train.batch_size_per_gpu, train.queue_size) == (12 if arch == "RRDB" else 8, HGGT_QUEUE[arch])
    assert options.network_g["type"] == ("RRDBPSNet" if arch == "RRDB" else "SwinIR")
    assert options.degradation == {"type": "hggt"}  # the preset's defaults are HGGT's values
    if "PSNR" in path.stem:
        lr, milestones = HGGT_PSNR[arch]
        assert options.train.optim_g["lr"] == lr and options.train.scheduler["milestones"] == milestones
        assert options.path.param_key_g == "params_ema" and options.network_d is None
        return
    assert options.train.optim_g == {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0}
    assert options.train.scheduler == {"type": "MultiStepLR", "milestones": HGGT_GAN_MILESTONES[arch], "gamma": 0.5}
    assert options.train.gan_opt["loss_weight"] == 0.1 and options.network_d["type"] == "UNetDiscriminatorSN"
    assert options.train.perceptual_opt["layer_weights"] == {
        "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}
    assert options.sampler.type.value == path.stem.split("_")[1]
    assert options.path.pretrain_network_g == f"experiments/{arch}_PSNR_x4"


@pytest.fixture(scope="module")
def niqe_cache(tmp_path_factory: pytest.TempPathFactory, demo_set) -> Path:
    cache = tmp_path_factory.mktemp("cache") / "niqe.db"
    scored = run_cli("score", "--dataset", str(demo_set.root), "--metric", "niqe", "--grid", "96:32", "--cache",
                     str(cache), "--num-workers", "0")
    assert scored.returncode == 0, scored.stderr[-2000:]
    return cache


def test_rrdb_amo_trains_on_the_cpu_with_demo_data_and_niqe(tmp_path: Path, demo_set, niqe_cache: Path,
                                                            pretrained: Path):
    """HGGT's GAN recipe as written (L1 + VGG19 perceptual + GAN), with the installed original VGG19."""
    cache = niqe_cache
    overrides = [
        f"datasets.train.dataroot_gt={demo_set.train_images}", f"datasets.train.dataroot_label={demo_set.train_labels}",
        "datasets.val=null", "datasets.train.gt_size=96", "datasets.train.batch_size_per_gpu=2",
        "datasets.train.num_worker_per_gpu=0", "datasets.train.queue_size=4",
        "sampler.metric=niqe", f"sampler.cache={cache}", "sampler.grid_stride=32",
        # small enough for a CPU test; torchvision's VGG19 cannot be downloaded here, the installed one is used
        "network_g={type: RRDBPSNet, num_in_ch: 3, num_out_ch: 3, num_feat: 8, num_block: 1, num_grow_ch: 4}",
        "network_d.num_feat=8", "train.perceptual_opt.vgg_weights=pretrained:vgg19-caffe",
        "path.pretrain_network_g=null",
        f"path.experiments_root={tmp_path / 'experiments'}", "train.total_iter=3", "logger.print_freq=1",
        "logger.use_tb_logger=false",
    ]
    result = run_cli("train", "-opt", str(REPO / "options" / "train" / "RRDB_amo_x4.yml"), *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "experiments" / "RRDB_amo_x4" / "logs" / "train.log").read_text()
    assert "l_d" in log and "Q chosen" in log and "(Q: niqe oriented so that higher is better)" in log
    terms = dict(re.findall(r"(l_g_percep|l_g_gan|l_g_pix) ([0-9.]+)", log))
    assert set(terms) == {"l_g_pix", "l_g_percep", "l_g_gan"} and all(float(v) > 0 for v in terms.values())
    assert (tmp_path / "experiments" / "RRDB_amo_x4" / "models" / "net_d_3.safetensors").is_file()


@pytest.mark.parametrize(("realesrgan", "rrdb"), [("train/RealESRGAN_amo_x4.yml", "train/RRDB_amo_x4.yml"),
                                                  ("finetune/RealESRGAN_amo_FT_x4.yml", "finetune/RRDB_amo_FT_x4.yml")])
def test_realesrgan_files_differ_from_the_rrdb_recipe_only_where_they_say(realesrgan: str, rrdb: str):
    def flat(options: object, prefix: str = "") -> dict:
        if dataclasses.is_dataclass(options):
            options = dataclasses.asdict(options)
        if not isinstance(options, dict):
            return {prefix: options}
        return {k: v for key, value in options.items() for k, v in flat(value, f"{prefix}{key}.").items()}

    ours, theirs = (flat(load_options(REPO / "options" / name)) for name in (realesrgan, rrdb))
    changed = {key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key)}
    assert changed == {"name.", "network_g.type.", "path.pretrain_network_g.", "train.perceptual_opt.vgg_weights."}
    assert (ours["network_g.type."], ours["path.pretrain_network_g."]) == ("RRDBNet", "pretrained:realesrgan-x4plus")
    assert ours["train.perceptual_opt.vgg_weights."] == "pretrained:vgg19-caffe"


FINETUNE_VARIANTS = ("FT", "FT_HP", "FT_IG", "FT_full")


@pytest.mark.parametrize("arch", ["RRDB", "SwinIR"])
def test_finetune_variants_differ_only_where_the_paper_says(arch: str):
    variants = {v: load_options(REPO / "options" / "finetune" / f"{arch}_amo_{v}_x4.yml") for v in FINETUNE_VARIANTS}
    stage1 = load_options(REPO / "options" / "train" / f"{arch}_amo_x4.yml")
    for options in variants.values():
        assert options.network_g == stage1.network_g and options.sampler == stage1.sampler
        assert options.path.pretrain_network_g == f"experiments/{arch}_amo_x4"
        assert options.train.iqa_opt.metric == "musiq" and options.val.monitor_metrics == ["nima", "topiq_nr"]
        assert options.train.iqa_opt.metric not in options.val.monitor_metrics  # held out means not optimised
    ft, hp, ig, full = (variants[v] for v in FINETUNE_VARIANTS)
    assert ft.lora.enabled and ft.lora.rank == 4
    assert ft.lora.target_modules == (["qkv", "proj", "fc1", "fc2"] if arch == "SwinIR"
                                      else ["conv1", "conv2", "conv3", "conv4", "conv5"])
    assert ft.network_d is None and ft.train.gan_opt is None  # FT: GAN off
    assert hp.train.perceptual_opt["perceptual_weight"] > ft.train.perceptual_opt["perceptual_weight"]
    assert ig.network_d is not None and ig.train.gan_opt is not None and ig.path.pretrain_network_d
    assert full.lora is not None and not full.lora.enabled  # every weight trains
    for options in (hp, ig, full):  # the rest is FT's
        assert options.train.iqa_opt == ft.train.iqa_opt and options.train.optim_g == ft.train.optim_g
        assert options.train.total_iter == ft.train.total_iter


def test_rrdb_ft_trains_on_the_cpu_under_bf16_and_writes_fp32_adapters(tmp_path: Path, demo_set, niqe_cache: Path):
    from sr_iqa.models.generators import build_generator
    from sr_iqa.models.weight_files import generator_metadata
    from sr_iqa.tensor_files import save_weights

    tiny = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
    stage1 = tmp_path / "stage1" / "models" / "net_g_ema_5.safetensors"
    stage1.parent.mkdir(parents=True)
    torch.manual_seed(1)  # an untrained net whose output is not flat, so NIQE has something to score
    save_weights(build_generator(tiny, 4), stage1, generator_metadata({**tiny, "scale": 4}))
    overrides = [
        f"datasets.train.dataroot_gt={demo_set.train_images}", f"datasets.train.dataroot_label={demo_set.train_labels}",
        f"datasets.val.dataroot_gt={demo_set.test_images}", f"datasets.val.dataroot_label={demo_set.test_labels}",
        f"datasets.val.dataroot_lq={demo_set.test_lr}", "datasets.train.gt_size=96",
        "datasets.train.batch_size_per_gpu=2", "datasets.train.num_worker_per_gpu=0",
        "sampler.metric=niqe", f"sampler.cache={niqe_cache}", "sampler.grid_stride=32",
        "network_g={type: RRDBNet, num_in_ch: 3, num_out_ch: 3, num_feat: 8, num_block: 1, num_grow_ch: 4}",
        f"path.pretrain_network_g={tmp_path / 'stage1'}", "train.perceptual_opt=null",
        # MUSIQ, NIMA and TOPIQ weights cannot be had offline: NIQE as Q, PIQE held out
        "train.iqa_opt.metric=niqe", "val.metrics=[psnr]", "val.monitor_metrics=[piqe]",
        "train.mixed_precision=bf16", f"path.experiments_root={tmp_path / 'experiments'}", "train.total_iter=2",
        "logger.print_freq=1", "logger.use_tb_logger=false",
    ]
    result = run_cli("train", "-opt", str(REPO / "options" / "finetune" / "RRDB_amo_FT_x4.yml"), *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "experiments" / "RRDB_amo_FT_x4"
    assert sorted(p.name for p in (run / "models").iterdir()) == ["lora_2.safetensors", "lora_ema_2.safetensors"]
    adapter = load_file(str(run / "models" / "lora_2.safetensors"))
    assert adapter and all(tensor.dtype == torch.float32 for tensor in adapter.values())
    log = (run / "logs" / "train.log").read_text()
    assert "LoRA rank 4 on conv1, conv2, conv3, conv4, conv5" in log and "q_niqe" in log
    assert "gaming_gap" in log and "structured_noise" in log


def test_every_amo_recipe_says_which_gts_are_candidates():
    """Issue 37 item 12: stage 2's AMO could pick Negatives without the file saying so. Each AMO recipe names
    sampler.exclude_labels; the paper's AMO (every GT a candidate) is what they mean."""
    import yaml

    recipes = [p for p in OPTION_FILES if p.parent.name in ("train", "finetune") and "_amo_" in p.name]
    assert len(recipes) >= 12
    for path in recipes:
        sampler = yaml.safe_load(path.read_text())["sampler"]
        assert sampler["type"] == "amo" and sampler.get("exclude_labels") == [], path.name
