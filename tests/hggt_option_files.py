"""HGGT's training option files (ChrisDud0257/HGGT, PosNegGTSR/options/train/PosNegGTSR/
train_{RRDBGAN,SwinIRGAN}_PosNegGT_Blind_{Pos,Pos+Neg}_x4.yml), key for key and value for value, as dicts: the
tests load them with only their paths changed, as a user coming from HGGT would."""

from __future__ import annotations

import copy

RRDB_G = {"type": "RRDBPSNet", "scale": 4, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23,
          "num_grow_ch": 32}
SWINIR_G = {"type": "SwinIR", "upscale": 4, "in_chans": 3, "img_size": 64, "window_size": 8, "img_range": 1.0,
            "depths": [6, 6, 6, 6, 6, 6], "embed_dim": 180, "num_heads": [6, 6, 6, 6, 6, 6], "mlp_ratio": 2,
            "upsampler": "pixelshuffle", "resi_connection": "1conv"}


def _common(name: str, model_type: str, dataset_type: str, batch: int, queue: int, tile: tuple[int, int]) -> dict:
    adam = {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]}
    return {
        "name": name, "model_type": model_type, "scale": 4, "num_gpu": "auto", "manual_seed": 0,
        "resize_prob": [0.1, 0.85, 0.05], "resize_range": [0.8, 1.2], "gaussian_noise_prob": 0.5,
        "noise_range": [1, 12], "poisson_scale_range": [0.05, 0.8], "gray_noise_prob": 0.2, "jpeg_range": [75, 95],
        "pre_pad": 0, "tile_size": tile[0], "tile_pad": tile[1], "tile_process": False,
        "gt_size": 256, "queue_size": queue,
        "datasets": {
            "train": {"name": "PosNegGT0-20193", "type": dataset_type,
                      "dataroot_all_gt": "/data/HGGT/Train/images/0-20193",
                      "dataroot_all_json": "/data/HGGT/Train/labels/0-20193",
                      "blur_kernel_size_min": 1, "blur_kernel_size_max": 4, "kernel_list": ["iso", "aniso"],
                      "kernel_prob": [0.7, 0.3], "sinc_prob": 0.01, "blur_sigma": [0.1, 1.0],
                      "betag_range": [0.1, 2.0], "betap_range": [0.1, 1.0],
                      "gt_size": 256, "use_hflip": True, "use_rot": False,
                      "num_worker_per_gpu": 8, "batch_size_per_gpu": batch, "dataset_enlarge_ratio": 1,
                      "prefetch_mode": None},
            "val": {"name": "Set5", "type": "PairedImageDataset", "dataroot_gt": "datasets/Test/GT/Set5",
                    "dataroot_lq": "datasets/Test/Blind_Degradation_Benchmark_LQ/Set5", "io_backend": {"type": "disk"}},
        },
        "network_d": {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 64, "skip_connection": True},
        "path": {"pretrain_network_g": "experiments/pretrained_models/Blind_PSNR_x4.pth", "param_key_g": "params_ema",
                 "strict_load_g": True, "resume_state": None},
        "train": {
            "ema_decay": 0.999, "optim_g": dict(adam), "optim_d": dict(adam),
            "scheduler": {"type": "MultiStepLR", "milestones": [200000], "gamma": 0.5},
            "total_iter": 300000, "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
            "perceptual_opt": {"type": "PerceptualLoss",
                               "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1,
                                                 "conv5_4": 1},
                               "vgg_type": "vgg19", "use_input_norm": True, "perceptual_weight": 1.0,
                               "style_weight": 0, "range_norm": False, "criterion": "l1"},
            "gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "real_label_val": 1.0, "fake_label_val": 0.0,
                        "loss_weight": 0.1},
            "net_d_iters": 1, "net_d_init_iters": 0,
        },
        "val": {"val_freq": 5e4, "save_img": True,
                "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 4, "test_y_channel": False},
                            "ssim": {"type": "calculate_ssim", "crop_border": 4, "test_y_channel": False}}},
        "logger": {"print_freq": 100, "save_checkpoint_freq": 5e4, "use_tb_logger": True,
                   "wandb": {"project": None, "resume_id": None}},
        "dist_params": {"backend": "nccl", "port": 29500},
    }


def hggt_option_file(arch: str, variant: str) -> dict:
    """``arch``: RRDB or SwinIR; ``variant``: Pos or Pos+Neg."""
    positive_only = variant == "Pos"
    name = f"{arch}GAN_PosNegGT_Blind_{variant}_x4"
    model_type = "Ours_PosGT_Model" if positive_only else "Ours_PosNegGT_Model"
    dataset_type = "PosNegGTPosDataset" if positive_only else "PosNegGTPosNeg_Dataset"
    if arch == "RRDB":
        options = _common(name, model_type, dataset_type, 12, 144, (800, 32) if positive_only else (480, 24))
        options["network_g"] = copy.deepcopy(RRDB_G)
    else:
        options = _common(name, model_type, dataset_type, 8, 160 if positive_only else 144, (800, 32))
        options["network_g"] = copy.deepcopy(SWINIR_G)
        options["train"]["scheduler"]["milestones"] = [200000, 250000, 275000, 287500]
    if not positive_only:
        options["train"]["neg_opt"] = {"type": "L1Loss", "loss_weight": 3e2, "reduction": "mean"}
    return options


def hggt_test_option_file() -> dict:
    """HGGT's options/test/PosNegGTSR/test_RRDBGAN_PosNegGT_Blind_Pos_x4.yml."""
    return {
        "name": "RRDBGAN_PosNegGT_Blind_Pos_x4", "model_type": "Ours_PosGT_Model", "scale": 4, "num_gpu": 1,
        "manual_seed": 0, "pre_pad": 0, "tile_size": 800, "tile_pad": 32, "tile_process": True,
        "datasets": {"test_1": {"name": "Test-100", "type": "PairedImageDataset",
                                "dataroot_gt": "datasets/Test/GT/Test-100/images/Original",
                                "dataroot_lq": "datasets/Test/Blind_Degradation_Benchmark_LQ/Test-100/Blind_LR",
                                "io_backend": {"type": "disk"}}},
        "network_g": copy.deepcopy(RRDB_G),
        "path": {"pretrain_network_g": "experiments/pretrained_models/RRDB-GAN/Blind_GAN_PosNegGT_Pos/"
                                       "RRDB_PosNegGT_Pos_GAN_x4.pth",
                 "strict_load_g": True, "param_key_g": "params_ema"},
        "val": {"save_img": True, "suffix": "RRDBGANPosNegGTBlindPos"},
    }
