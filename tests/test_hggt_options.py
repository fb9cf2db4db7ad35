"""HGGT's own option files run as they are, but for paths: their keys are mapped with HGGT's units, keys without
meaning here are named in one warning line, every problem of a file comes in one error, and the RRDB Pos file
(sizes shrunk for the CPU) trains with UPos on the Positives, validates on the paired Set5 folders and its
model is evaluated on Test-100 with the release's fixed LR."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.metrics import calculate_psnr, calculate_ssim
from hggt_option_files import hggt_option_file, hggt_test_option_file
from hggt_tree import SET5, write_hggt_release

from sr_iqa.checked_options import load_options
from sr_iqa.cli import main
from sr_iqa.errors import OptionsError
from sr_iqa.models.generators import build_generator

IGNORED = ("model_type", "num_gpu", "pre_pad", "tile_size", "tile_pad", "tile_process", "dist_params",
           "datasets.train.dataset_enlarge_ratio", "datasets.train.prefetch_mode",
           "datasets.val.io_backend")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hggt_release(tmp_path_factory.mktemp("release") / "HGGT", size=48)


def _with_paths(options: dict, release: Path, experiments: Path) -> dict:
    """Only the paths changed, as a user with the release in another place would."""
    train, val = options["datasets"]["train"], options["datasets"]["val"]
    train["dataroot_all_gt"] = str(release / "Train" / "images" / "0-100")
    train["dataroot_all_json"] = str(release / "Train" / "labels" / "0-100")
    val["dataroot_gt"] = str(release / "Test" / "GT" / "Set5")
    val["dataroot_lq"] = str(release / "Test" / "Blind_Degradation_Benchmark_LQ" / "Set5")
    options["path"]["pretrain_network_g"] = None  # HGGT's released PSNR model is not on this machine
    options["path"]["experiments_root"] = str(experiments)
    return options


@pytest.mark.parametrize(("arch", "variant"), [("RRDB", "Pos"), ("RRDB", "Pos+Neg"), ("SwinIR", "Pos"),
                                               ("SwinIR", "Pos+Neg")])
def test_hggts_option_files_load_with_their_meaning(release: Path, tmp_path: Path, arch: str, variant: str,
                                                    caplog: pytest.LogCaptureFixture):
    path = tmp_path / f"train_{arch}GAN_PosNegGT_Blind_{variant}_x4.yml"
    path.write_text(yaml.safe_dump(_with_paths(hggt_option_file(arch, variant), release, tmp_path)))
    with caplog.at_level(logging.INFO, logger="sr_iqa"):
        options = load_options(path)
    train = options.datasets.train
    assert (train.dataroot_gt, train.dataroot_label) == (str(release / "Train" / "images" / "0-100"),
                                                         str(release / "Train" / "labels" / "0-100"))
    assert options.sampler.type.value == "upos"
    assert (train.positive_only, train.effective_only) == ((True, False) if variant == "Pos" else (False, True))
    assert (train.gt_size, train.use_rot, train.batch_size_per_gpu) == (256, False, 12 if arch == "RRDB" else 8)
    assert train.queue_size == (160 if (arch, variant) == ("SwinIR", "Pos") else 144)
    # The degradation keys of the model (top level) and of the dataset, with HGGT's units (half-widths).
    assert options.degradation == {
        "type": "hggt", "resize_prob": [0.1, 0.85, 0.05], "resize_range": [0.8, 1.2], "gaussian_noise_prob": 0.5,
        "noise_range": [1, 12], "poisson_scale_range": [0.05, 0.8], "gray_noise_prob": 0.2, "jpeg_range": [75, 95],
        "blur_kernel_size_min": 1, "blur_kernel_size_max": 4, "kernel_list": ["iso", "aniso"],
        "kernel_prob": [0.7, 0.3], "sinc_prob": 0.01, "blur_sigma": [0.1, 1.0], "betag_range": [0.1, 2.0],
        "betap_range": [0.1, 1.0]}
    assert options.network_g["type"] == ("RRDBPSNet" if arch == "RRDB" else "SwinIR")
    assert options.val.metrics == ["hggt_psnr", "hggt_ssim"] and options.val.val_freq == 50000
    assert options.datasets.val.type.value == "hggt"
    assert options.train.neg_opt == (None if variant == "Pos" else {"type": "NegativeGTLoss", "loss_weight": 300.0})
    assert options.train.warmup_iter == -1 and options.logger.wandb.project is None  # BasicSR's keys, honoured
    assert options.train.mixed_precision.value == "auto"  # sr_iqa's, said in one line (HGGT trained in fp32)
    assert any("BasicSR and HGGT train in fp32" in r.getMessage() and "train.mixed_precision: no" in r.getMessage()
               for r in caplog.records)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    ignored_line = next(line for line in warnings if "ignored, no meaning in sr_iqa" in line)
    assert all(key in ignored_line for key in IGNORED)
    assert not any("labels are loaded" in line or "filters groups" in line for line in warnings)


def test_a_second_paired_validation_set_is_mapped_as_the_first(release: Path, tmp_path: Path):
    """Issue 37 item 9: BasicSR's datasets.val_2 block, PairedImageDataset as val's, was refused while val's is
    mapped; both become flat-folder sets with their LR folder."""
    options = _with_paths(hggt_option_file("RRDB", "Pos"), release, tmp_path)
    options["datasets"]["val_2"] = {**options["datasets"]["val"], "name": "Set5_again"}
    assert options["datasets"]["val_2"]["type"] == "PairedImageDataset"
    path = tmp_path / "two_val.yml"
    path.write_text(yaml.safe_dump(options))
    loaded = load_options(path)
    second = loaded.datasets.extra_val["val_2"]
    assert second.type.value == "hggt" and second.dataroot_lq == options["datasets"]["val"]["dataroot_lq"]
    assert loaded.datasets.val.type.value == "hggt"


def test_every_problem_of_a_file_comes_in_one_error(tmp_path: Path):
    options = hggt_option_file("RRDB", "Pos")
    options["path"]["strict_load_d"] = False  # a loose discriminator load would change the run: refused
    options["datasets"]["train"]["gt_szie"] = 128
    options["logger"]["print_frq"] = 10
    options["val"]["metrics"]["lpips"] = {"type": "calculate_lpips"}
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(options))
    with pytest.raises(OptionsError) as raised:
        load_options(path)
    message = str(raised.value)
    assert message.startswith("4 problems in the options:")
    assert "'path.strict_load_d: False' cannot be honoured" in message
    assert "unknown key 'datasets.train.gt_szie'; did you mean 'gt_size'?" in message
    assert "unknown key 'logger.print_frq'; did you mean 'print_freq'?" in message
    assert "'val.metrics.lpips'" in message


def test_hggts_rrdb_pos_file_trains_on_positives_validates_on_set5_and_evaluates_on_test100(
        release: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    options = _with_paths(hggt_option_file("RRDB", "Pos"), release, tmp_path / "experiments")
    # Sizes shrunk for the CPU; the VGG19 term needs weights this machine cannot download.
    options["network_g"] |= {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
    options["network_d"]["num_feat"] = 8
    options["gt_size"] = options["datasets"]["train"]["gt_size"] = 32
    options["queue_size"] = 4
    options["datasets"]["train"] |= {"batch_size_per_gpu": 2, "num_worker_per_gpu": 0}
    options["train"]["total_iter"] = 4
    options["train"].pop("perceptual_opt")
    options["logger"] |= {"print_freq": 4, "save_checkpoint_freq": 4, "use_tb_logger": False}
    path = tmp_path / "train_RRDBGAN_PosNegGT_Blind_Pos_x4.yml"
    path.write_text(yaml.safe_dump(options))
    assert main(["train", "-opt", str(path)]) == 0
    printed = capsys.readouterr().err
    assert "PosNegGTPosDataset" in printed and "sampler.type: upos" in printed
    assert "labels Positive 100%" in printed  # UPos on the Positives of the positive-only groups
    run = tmp_path / "experiments" / "RRDBGAN_PosNegGT_Blind_Pos_x4"
    record = json.loads((run / "logs" / "validation.jsonl").read_text().splitlines()[-1])
    assert set(record["results"]) == {"hggt_psnr", "hggt_ssim"}
    assert sorted(p.name for p in (run / "visualization").iterdir()) == sorted(SET5)  # the paired Set5 folders
    assert "model_type" in (run / "logs" / "train.log").read_text()  # the ignored keys are in the run's log too

    out = tmp_path / "eval"
    assert main(["eval", "--dataset", str(release / "Test" / "GT" / "Test-100"), "--checkpoint", str(run),
                 "--metrics", "hggt_psnr", "hggt_ssim", "--out", str(out)]) == 0
    assert "no fixed LR" not in capsys.readouterr().err
    per_image = (out / "per_image.csv").read_text().splitlines()
    assert len(per_image) == 1 + 3  # Test-100's three groups (this copy's)


def test_a_key_given_in_two_places_must_agree(tmp_path: Path):
    options = hggt_option_file("RRDB", "Pos")
    options["datasets"]["train"]["gt_size"] = 128  # the model's gt_size (top level) says 256
    options["degradation"] = {"type": "hggt", "noise_range": [1, 30]}  # the top-level noise_range says [1, 12]
    path = tmp_path / "twice.yml"
    path.write_text(yaml.safe_dump(options))
    with pytest.raises(OptionsError) as raised:
        load_options(path)
    assert "'gt_size' (256) and 'datasets.train.gt_size' (128) disagree" in str(raised.value)
    assert "'noise_range' ([1, 12]) and 'degradation.noise_range' ([1, 30]) disagree" in str(raised.value)


def test_hggts_test_file_evaluates_the_checkpoint_it_names_and_infer_needs_only_network_g(release: Path,
                                                                                        tmp_path: Path, capsys):
    options = hggt_test_option_file()
    options["network_g"] |= {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}  # shrunk for the CPU
    test = options["datasets"]["test_1"]
    test["dataroot_gt"] = str(release / "Test" / "GT" / "Test-100" / "images" / "original")
    test["dataroot_lq"] = str(release / "Test" / "Blind_Degradation_Benchmark_LQ" / "Test-100" / "Blind_LR")
    checkpoint = tmp_path / "RRDB_PosNegGT_Pos_GAN_x4.pth"
    torch.manual_seed(0)
    network = build_generator(options["network_g"], 4)
    torch.save({"params": {k: torch.zeros_like(v) for k, v in network.state_dict().items()},
                "params_ema": network.state_dict()}, checkpoint)  # BasicSR keeps both; HGGT reads params_ema
    options["path"]["pretrain_network_g"] = str(checkpoint)
    path = tmp_path / "test_RRDBGAN_PosNegGT_Blind_Pos_x4.yml"
    path.write_text(yaml.safe_dump(options))
    out = tmp_path / "eval"
    assert main(["eval", "-opt", str(path), "--metrics", "hggt_psnr", "hggt_ssim", "--out", str(out),
                 "--save-sr", str(tmp_path / "sr_saved"), "--sr-suffix", "RRDB"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"][checkpoint.stem]["hggt_psnr"] < 80  # params_ema's network, not the zeroed params
    # HGGT's protocol, by hand as its calculate_multigt_labeled_psnr_ssim.py does it on the saved SR images:
    # basicsr's PSNR / SSIM (crop 4) against each Positive GT (majority of A, B, C; hggt_tree.VOTES: img1 01 and
    # 02, img2 04), averaged per image. img3 has no Positive (HGGT's script would divide by zero): the original.
    test_images = release / "Test" / "GT" / "Test-100" / "images"
    positives = {"img1-0-0": ["01", "02"], "img2-0-0": ["04"], "img3-0-0": ["original"]}
    rows = {row["image"]: row for row in csv.DictReader((out / "per_image.csv").open())}
    # --sr-suffix: named <group>_<suffix>.png, the group found as HGGT's script finds it (the last _ part dropped)
    saved = sorted(p.name for p in (tmp_path / "sr_saved" / checkpoint.stem).iterdir())
    assert ['_'.join(name.split('_')[:-1]) for name in saved] == sorted(positives)
    by_hand = {}
    for image, slots in positives.items():
        sr = cv2.imread(str(tmp_path / "sr_saved" / checkpoint.stem / f"{image}_RRDB.png")).astype(np.float32) / 255
        gts = [cv2.imread(str(test_images / slot / (f"{image}.png" if slot == "original" else f"{image}_{slot}.png")))
               .astype(np.float32) / 255 for slot in slots]
        by_hand[image] = [sum(f(gt * 255, sr * 255, crop_border=4, input_order="HWC") for gt in gts) / len(gts)
                          for f in (calculate_psnr, calculate_ssim)]
        assert int(rows[image]["positive_gts"]) == (0 if slots == ["original"] else len(slots))
        assert float(rows[image]["hggt_psnr"]) == pytest.approx(by_hand[image][0], abs=1e-4)
        assert float(rows[image]["hggt_ssim"]) == pytest.approx(by_hand[image][1], abs=1e-4)
    for column, metric in enumerate(("hggt_psnr", "hggt_ssim")):
        expected = sum(values[column] for values in by_hand.values()) / len(by_hand)
        assert summary["rows"][checkpoint.stem][metric] == pytest.approx(expected, abs=1e-4)

    minimal = tmp_path / "network.yml"
    minimal.write_text(yaml.safe_dump({"scale": 4, "network_g": options["network_g"]}))
    assert main(["infer", "--checkpoint", str(checkpoint), "-opt", str(minimal), "path.param_key_g=params_ema",
                 "--input", test["dataroot_lq"], "--output", str(tmp_path / "sr")]) == 0
    assert len(list((tmp_path / "sr").glob("*.png"))) == 3
    capsys.readouterr()
    assert main(["infer", "--checkpoint", str(checkpoint), "-opt", str(minimal), "--input", test["dataroot_lq"],
                 "--output", str(tmp_path / "sr_params")]) == 0
    said = capsys.readouterr().err  # BasicSR's default key, and the line that says which was loaded
    assert f"{checkpoint}: loaded its 'params' (it also holds 'params_ema'; path.param_key_g=params_ema" in said
    # The test file names its checkpoint (and params_ema): infer needs no --checkpoint, as eval does not.
    assert main(["infer", "-opt", str(path), "--input", test["dataroot_lq"], "--output", str(tmp_path / "sr_opt")]) == 0
    assert f"{checkpoint}: loaded its 'params_ema'" in capsys.readouterr().err
    assert {p.name for p in (tmp_path / "sr_opt").iterdir()} == {p.name for p in (tmp_path / "sr").iterdir()}
    assert main(["infer", "-opt", str(minimal), "--input", test["dataroot_lq"], "--output", str(tmp_path / "x")]) == 2
    assert "no generator: pass --checkpoint FILE, or give" in capsys.readouterr().err
