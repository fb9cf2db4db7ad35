"""HGGT's other training files (ChrisDud0257/HGGT, PosNegGTSR/options/train/PosNegGTSR/): what each key means
there, checked against HGGT's model and dataset classes, and either honoured or refused naming what is missing.
Each file is its GAN Pos sibling (hggt_option_files) with the keys it changes transcribed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hggt_option_files import hggt_option_file

from sr_iqa.checked_options import load_options
from sr_iqa.config.call_options import build_from_block
from sr_iqa.data.degradations import DEGRADATION_TYPES
from sr_iqa.errors import OptionsError


def _write(tmp_path: Path, options: dict, name: str = "file.yml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(options))
    return path


def _paths_changed(options: dict, tmp_path: Path) -> dict:
    """Only the paths, as a user with the data elsewhere: folders that exist here."""
    train = options["datasets"]["train"]
    for key in ("dataroot_all_gt", "dataroot_all_json"):
        if key in train:
            (tmp_path / key).mkdir(exist_ok=True)
            train[key] = str(tmp_path / key)
    options["datasets"].pop("val")
    options["path"]["pretrain_network_g"] = None
    return options


def realesrgan_posneggt_pos() -> dict:
    """train_RealESRGAN_PosNegGT_Blind_Pos_x4.yml: RRDBNet, two degradation stages, its own degradation values."""
    options = hggt_option_file("RRDB", "Pos")
    options |= {"name": "RealESRGAN_PosNegGT_Blind_Pos_x4", "model_type": "RealESRGAN_PosGT_Model",
                "resize_range": [0.9, 1.1], "noise_range": [1, 8], "poisson_scale_range": [0.05, 0.5],
                "jpeg_range": [85, 95], "second_blur_prob": 0.8, "resize_prob2": [0.1, 0.85, 0.05],
                "resize_range2": [0.9, 1.1], "gaussian_noise_prob2": 0.5, "noise_range2": [0, 4],
                "poisson_scale_range2": [0, 0.3], "gray_noise_prob2": 0.2, "jpeg_range2": [87, 95],
                "queue_size": 180}
    options["network_g"] = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23,
                            "num_grow_ch": 32}
    options["datasets"]["train"] |= {
        "type": "TwoStageDegradation_PosNegGTPos_Dataset", "blur_kernel_size_max": 3, "blur_sigma": [0.1, 0.6],
        "blur_kernel_size_min2": 1, "blur_kernel_size_max2": 2, "kernel_list2": ["iso", "aniso"],
        "kernel_prob2": [0.7, 0.3], "sinc_prob2": 0.01, "blur_sigma2": [0.1, 0.4], "betag_range2": [0.1, 2.0],
        "betap_range2": [0.1, 1.0], "final_sinc_prob": 0.1}
    options["train"]["scheduler"]["milestones"] = [300000]
    return options


def test_realesrgan_posneggt_file_draws_hggts_second_stage_kernels(tmp_path: Path):
    options = load_options(_write(tmp_path, _paths_changed(realesrgan_posneggt_pos(), tmp_path)))
    assert options.sampler.type.value == "upos" and options.datasets.train.positive_only
    assert options.degradation["type"] == "realesrgan"
    degradation = build_from_block(options.degradation, DEGRADATION_TYPES)
    # HGGT's half-widths: first stage 1..3 (sizes 3, 5, 7), second blur and final sinc 1..2 (sizes 3, 5); Real-
    # ESRGAN's own range (7..21) nowhere.
    assert degradation.kernel_sizes == [3, 5, 7] and degradation.kernel_sizes2 == [3, 5]
    assert (degradation.blur_sigma2, degradation.noise_range2, degradation.jpeg_range2) == ([0.1, 0.4], [0, 4],
                                                                                            [87, 95])
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(20):  # the second kernel's support never exceeds 5 pixels (the rest of the 7x7 is padding)
        kernel2 = degradation.sample_kernels(rng)["kernel2"]
        assert kernel2.shape == (7, 7) and kernel2[0].abs().sum() == 0 and kernel2[:, 0].abs().sum() == 0


def df2k_psnr_file(arch: str) -> dict:
    """train_{RRDB,SwinIR}_DF2K_OST_Blind_x4.yml: Ours_Model without a discriminator, a folder of single GTs,
    pixel_opt_o as the loss; the SwinIR file adds gt_usm: True (which Ours_Model does not read)."""
    options = hggt_option_file(arch, "Pos")
    options |= {"name": f"{arch}_DF2K_OST_Blind_x4", "model_type": "Ours_Model", "queue_size": 160}
    if arch == "SwinIR":
        options["gt_usm"] = True
    train = options["datasets"]["train"]
    train |= {"name": "DF2K_OST", "type": "OneStageDegradation_DF2K_Dataset", "batch_size_per_gpu": 8,
              "dataroot_all_gt": "/data/DF2K_OST/subimages_512"}
    train.pop("dataroot_all_json")
    for key in ("network_d", ):
        options.pop(key)
    for key in ("optim_d", "gan_opt", "perceptual_opt", "net_d_iters", "net_d_init_iters", "pixel_opt"):
        options["train"].pop(key)
    options["train"]["pixel_opt_o"] = {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}
    return options


@pytest.mark.parametrize("arch", ["RRDB", "SwinIR"])
def test_df2k_psnr_files_train_on_single_gts_with_their_pixel_loss(tmp_path: Path, arch: str, caplog):
    with caplog.at_level("WARNING", logger="sr_iqa"):
        options = load_options(_write(tmp_path, _paths_changed(df2k_psnr_file(arch), tmp_path)))
    assert options.sampler.type.value == "original" and not options.datasets.train.positive_only
    assert options.datasets.train.dataroot_label is None and options.network_d is None
    assert options.train.pixel_opt == {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}
    if arch == "SwinIR":  # HGGT's Ours_Model reads Use_sharpen, never gt_usm: no sharpening there either
        assert "gt_usm (HGGT's Ours_Model does not read it)" in caplog.text


ADATARGET_TOP = {"k_size": 7, "s_size": 9, "load_mode_g": "my_pretrain", "load_mode_loc": "my_pretrain",
                 "network_loc": {"type": "LocNet"}, "path_loc": {"pretrain_network_loc": "LOC.pth"}}
ADATARGET_TRAIN = {"optim_loc": {"type": "Adam", "lr": 1e-4}, "adatarget_opt": {"type": "AdaTargetLoss",
                                                                                 "loss_weight": 1.0}}
MISSING = {  # model type -> its own keys in HGGT's file, and the words the refusal must hold
    "LDL_Model": ({"l1_gt_usm": True, "percep_gt_usm": True, "gan_gt_usm": False},
                  {"ldl_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}}, "artifact-map loss"),
    "LDL_PosGT_Model": ({}, {"ldl_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
                        "artifact-map loss"),
    "LDL_noGAN_Model": ({"gt_usm": True}, {}, "USM-sharpened GT (gt_usm)"),
    # AdaTarget's own keys as HGGT's train_AdaTarget*_x4.yml give them (commit 0877113): none is a typo of sr_iqa's
    "AdaTarget_Model": ({"l1_gt_usm": True, "percep_gt_usm": True, "gan_gt_usm": False, **ADATARGET_TOP},
                        ADATARGET_TRAIN, "network_loc"),
    "AdaTarget_PosGT_Model": (ADATARGET_TOP, ADATARGET_TRAIN, "network_loc"),
    "RealESRGAN_Model": ({"gt_usm": True, "l1_gt_usm": True, "percep_gt_usm": True, "gan_gt_usm": False}, {},
                         "USM-sharpened GT"),
    "RealESRNet_Model": ({"gt_usm": True}, {}, "USM-sharpened GT (gt_usm)"),
}


@pytest.mark.parametrize("model_type", sorted(MISSING))
def test_baselines_sr_iqa_cannot_train_are_refused_naming_what_is_missing(tmp_path: Path, model_type: str):
    top, train, words = MISSING[model_type]
    options = hggt_option_file("RRDB", "Pos") | {"model_type": model_type, **top}
    options["train"] |= train
    with pytest.raises(OptionsError) as refused:
        load_options(_write(tmp_path, _paths_changed(options, tmp_path)))
    message = str(refused.value)
    assert f"'model_type: {model_type}' is HGGT's {model_type}, which needs" in message and words in message
    assert "did you mean" not in message  # its own keys are not guessed at as typos of sr_iqa's


def test_a_baselines_test_file_evaluates_its_checkpoint_whatever_its_model_type(tmp_path: Path):
    """test_LDL_DF2K_OST_Blind_x4.yml: for evaluation only network_g, the test sets and the checkpoint matter."""
    from hggt_option_files import hggt_test_option_file

    from sr_iqa.checked_options import load_inference_options

    options = hggt_test_option_file() | {"name": "LDL_DF2K_OST_Blind_x4", "model_type": "LDL_Model"}
    options["network_g"] = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23,
                            "num_grow_ch": 32}
    options["path"]["pretrain_network_g"] = "experiments/pretrained_models/LDL/RRDB_DF2K_OST_GAN_x4.pth"
    loaded = load_inference_options(_write(tmp_path, options))
    assert loaded.network_g["type"] == "RRDBNet" and loaded.param_key == "params_ema"
    assert loaded.checkpoint.endswith("RRDB_DF2K_OST_GAN_x4.pth") and len(loaded.test_sets) == 1


@pytest.mark.parametrize("arch", ["RRDB", "SwinIR"])
def test_ori_files_train_every_group_on_its_original_with_pixel_opt_o(tmp_path: Path, arch: str):
    """train_{RRDBGAN,SwinIRGAN}_PosNegGT_Blind_Ori_x4.yml: Ours_Model, PosNegGTOriDataset, pixel_opt_o (HGGT's
    Ours_Model: L1 against the batch's GT, here the original)."""
    options = hggt_option_file(arch, "Pos") | {"name": f"{arch}GAN_PosNegGT_Blind_Ori_x4", "model_type": "Ours_Model"}
    options["datasets"]["train"]["type"] = "PosNegGTOriDataset"
    options["train"]["pixel_opt_o"] = options["train"].pop("pixel_opt")
    loaded = load_options(_write(tmp_path, _paths_changed(options, tmp_path)))
    assert loaded.sampler.type.value == "original" and loaded.train.pixel_opt["loss_weight"] == 1.0
    assert not loaded.datasets.train.positive_only and loaded.datasets.train.dataroot_label is None
    options["train"]["pixel_opt"] = {"type": "L1Loss", "loss_weight": 0.5}  # both, disagreeing: one problem
    with pytest.raises(OptionsError, match="'train.pixel_opt_o' .* and 'train.pixel_opt' .* disagree"):
        load_options(_write(tmp_path, options, "both.yml"))


def test_a_files_key_type_and_choice_problems_come_in_one_message(tmp_path: Path):
    """Before, a wrong dataset type showed only on the run after the key errors were fixed."""
    options = hggt_option_file("RRDB", "Pos")
    options["datasets"]["train"] |= {"type": "ThreeStageDegradation_Dataset", "gt_szie": 256}
    options["train"]["mixed_precision"] = "bf61"
    with pytest.raises(OptionsError) as raised:
        load_options(_write(tmp_path, _paths_changed(options, tmp_path)))
    lines = str(raised.value).splitlines()
    assert lines[0] == "3 problems in the options:"
    assert any("unknown key 'datasets.train.gt_szie'; did you mean 'gt_size'?" in line for line in lines)
    assert any("'datasets.train.type' is 'ThreeStageDegradation_Dataset', not one of hggt, manifest" in line
               for line in lines)
    assert any("'train.mixed_precision' is 'bf61', not one of auto, no, fp16, bf16; did you mean 'bf16'?" in line
               for line in lines)


def test_training_pointed_at_a_splits_original_folder_reads_the_split(tmp_path: Path):
    """Before: the original/ folder read as single images, and the Positive filter dropped every one of them
    ("the data set has no groups (the filters dropped 3)")."""
    from hggt_tree import write_hggt_release

    from sr_iqa.config.schema import TrainDatasetOptions
    from sr_iqa.data.sources import group_index

    release = write_hggt_release(tmp_path / "HGGT")
    train = TrainDatasetOptions(dataroot_gt=str(release / "Train" / "images" / "0-100" / "original"),
                                positive_only=True)
    index = group_index(train, 4)
    # hggt_tree.VOTES: img1 and img2 have an enhanced GT with more than one Positive vote, img3 none.
    assert sorted(group.name for group in index.groups) == ["img1-0-0", "img2-0-0"]
    assert all(len(group.gts) == 5 for group in index.groups)


RRDBNET = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23, "num_grow_ch": 32}
RRDBADANET = {"type": "RRDBAdaNet", "in_nc": 3, "out_nc": 3, "nf": 64, "nb": 23, "gc": 32}
# HGGT's test files (PosNegGTSR/options/test/PosNegGTSR/): each differs from test_RRDBGAN_PosNegGT_Blind_Pos_x4.yml
# (hggt_test_option_file) in its name, model type and network_g only; all load params_ema and evaluate Test-100.
HGGT_TEST_FILES = {
    "RRDBGAN_PosNegGT_Blind_Ori_x4": ("Ours_Model", "RRDB"),
    "RRDBGAN_PosNegGT_Blind_Pos+Neg_x4": ("Ours_PosNegGT_Model", "RRDB"),
    "RRDBGAN_PosNegGT_Blind_Pos_x4": ("Ours_PosGT_Model", "RRDB"),
    "RRDB_DF2K_OST_Blind_x4": ("Ours_Model", "RRDB"),
    "SwinIRGAN_PosNegGT_Blind_Ori_x4": ("Ours_Model", "SwinIR"),
    "SwinIRGAN_PosNegGT_Blind_Pos+Neg_x4": ("Ours_PosNegGT_Model", "SwinIR"),
    "SwinIRGAN_PosNegGT_Blind_Pos_x4": ("Ours_PosGT_Model", "SwinIR"),
    "SwinIR_DF2K_OST_Blind_x4": ("Ours_Model", "SwinIR"),
    "RealESRGAN_DF2K_OST_Blind_x4": ("RealESRGAN_Model", "RRDBNet"),
    "RealESRGAN_PosNegGT_Blind_Pos_x4": ("RealESRGAN_PosGT_Model", "RRDBNet"),
    "RealESRNet_DF2K_OST_Blind_x4": ("RealESRNet_Model", "RRDBNet"),
    "LDL_DF2K_OST_Blind_x4": ("LDL_Model", "RRDBNet"),
    "LDL_PosNegGT_Blind_Pos_x4": ("LDL_PosGT_Model", "RRDBNet"),
    "LDL_noGAN_DF2K_OST_Blind_x4": ("LDL_noGAN_Model", "RRDBNet"),
    "AdaTargetGAN_DF2K_OST_Blind_x4": ("AdaTarget_Model", "RRDBAdaNet"),
    "AdaTargetGAN_PosNegGT_Blind_Pos_x4": ("AdaTarget_PosGT_Model", "RRDBAdaNet"),
    "AdaTarget_DF2K_OST_Blind_x4": ("AdaTarget_Model", "RRDBAdaNet"),
}


@pytest.mark.parametrize("name", sorted(HGGT_TEST_FILES))
def test_every_hggt_test_file_evaluates_with_hggts_protocol_or_says_why_not(tmp_path: Path, name: str):
    from hggt_option_files import RRDB_G, SWINIR_G, hggt_test_option_file
    from hggt_tree import write_hggt_release

    from sr_iqa.checked_options import load_inference_options
    from sr_iqa.data.sources import group_index

    model_type, arch = HGGT_TEST_FILES[name]
    networks = {"RRDB": RRDB_G, "SwinIR": SWINIR_G, "RRDBNet": RRDBNET, "RRDBAdaNet": RRDBADANET}
    options = hggt_test_option_file() | {"name": name, "model_type": model_type, "network_g": networks[arch]}
    release = write_hggt_release(tmp_path / "HGGT")
    test = options["datasets"]["test_1"]  # only the paths changed
    test["dataroot_gt"] = str(release / "Test" / "GT" / "Test-100" / "images" / "original")
    test["dataroot_lq"] = str(release / "Test" / "Blind_Degradation_Benchmark_LQ" / "Test-100" / "Blind_LR")
    path = _write(tmp_path, options, f"test_{name}.yml")
    if arch == "RRDBAdaNet":
        refusal = "'network_g.type: RRDBAdaNet' is AdaTarget's generator .* eval --sr-dir"
        with pytest.raises(OptionsError, match=refusal):
            load_inference_options(path)
        return
    loaded = load_inference_options(path)
    assert loaded.network_g["type"] == networks[arch]["type"] and loaded.param_key == "params_ema"
    assert loaded.checkpoint == options["path"]["pretrain_network_g"]
    groups = group_index(loaded.test_sets[0], loaded.scale, with_lr=True).groups
    # HGGT's protocol needs the split's GTs and labels, not the original folder alone (hggt_tree.VOTES).
    assert [len(group.gts) for group in groups] == [5, 5, 5]
    assert [len(group.indices_labelled("Positive")) for group in groups] == [2, 1, 0]
