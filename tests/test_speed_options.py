"""The speed options keep training numerically sane: finite losses, and weights close to the fp32
eager run after a few GAN steps on a tiny model. The CUDA-only parts run where a GPU is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import tiny_options, write_options
from safetensors.torch import load_file

from sr_iqa.checked_options import load_options
from sr_iqa.config.schema import MixedPrecision
from sr_iqa.data.device_prefetch import DevicePrefetcher
from sr_iqa.train.speed import resolved_precision
from sr_iqa.train.trainer import Trainer

GAN = ("network_d={type: UNetDiscriminatorSN, num_in_ch: 3, num_feat: 8, skip_connection: true}",
       "train.optim_d={type: Adam, lr: 1e-3, betas: [0.9, 0.99]}",
       "train.gan_opt={type: GANLoss, gan_type: vanilla, loss_weight: 0.1}")
# BasicSR's way: fp32 eager, no TF32, no cuDNN autotuning, plain copies. One precision per process
# (Accelerate's state), so bf16 has its own subprocess test in test_trainer.py.
EAGER = ("train.mixed_precision=no", "train.tf32=false", "train.cudnn_benchmark=false",
         "datasets.train.prefetch_to_device=false")
STEPS = 3
GPU = torch.cuda.is_available()


@pytest.fixture
def options_file(tmp_path: Path, demo_set) -> Path:
    return write_options(tmp_path / "train.yml", tiny_options(demo_set, tmp_path / "experiments"))


@pytest.fixture(autouse=True)
def restore_backend_flags():
    """The TF32 and cuDNN switches are process-wide; leave them as found."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


def _steps(options_file: Path, name: str, *overrides: str) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
    """STEPS GAN training steps (past the discriminator's warm-up); per-step losses and G's final weights."""
    trainer = Trainer(load_options(options_file, [f"name={name}", "train.net_d_init_iters=0", *GAN, *EAGER,
                                                  *overrides]))
    batches = trainer.training_batches()
    losses = [{key: value.item() for key, value in trainer.run_iteration(batches)[0].losses.items()}
              for _ in range(STEPS)]
    weights = {key: value.detach().float().clone()
               for key, value in trainer.accelerator.unwrap_model(trainer.net_g).state_dict().items()}
    return losses, weights


def _assert_close_to_eager(options_file: Path, tolerance: float, *overrides: str) -> None:
    reference_losses, reference = _steps(options_file, "eager")
    losses, weights = _steps(options_file, "fast", *overrides)
    assert all(torch.isfinite(torch.tensor(list(step.values()))).all() for step in losses)
    assert [set(step) for step in losses] == [{"l_g", "l_g_pix", "l_g_gan", "l_d", "l_d_real", "l_d_fake"}] * STEPS
    for step, expected in zip(losses, reference_losses, strict=True):
        for key in expected:
            assert step[key] == pytest.approx(expected[key], rel=tolerance, abs=tolerance), key
    assert weights.keys() == reference.keys()  # same state-dict keys: files and resume are unaffected
    for key in reference:
        torch.testing.assert_close(weights[key], reference[key], atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize(("overrides", "tolerance"), [
    (("train.channels_last=true",), 1e-4),
    (("train.optim_g={type: Adam, lr: 1e-3, fused: true}", "train.optim_d={type: Adam, lr: 1e-3, fused: true}"),
     1e-4),
    (("train.optim_g={type: Adam, lr: 1e-3, foreach: true}",), 1e-4),
    (("datasets.train.num_worker_per_gpu=2", "datasets.train.prefetch_factor=4",
      "datasets.train.persistent_workers=true", "datasets.train.prefetch_to_device=true"), 1e-4),
    (("train.tf32=true", "train.cudnn_benchmark=true"), 2e-2 if GPU else 1e-4),  # TF32: 10-bit mantissa
], ids=["channels_last", "fused_adam", "foreach_adam", "loader_workers_and_device_prefetch", "tf32_cudnn_benchmark"])
def test_speed_option_trains_like_fp32_eager(options_file: Path, overrides: tuple[str, ...], tolerance: float):
    # Same arithmetic in another order or layout: only rounding may differ.
    _assert_close_to_eager(options_file, tolerance, *overrides)


def test_compiled_generator_and_discriminator_train_like_eager(options_file: Path):
    # aot_eager: Dynamo's graph capture and AOTAutograd's joint graph, without inductor's slow C++ build on a
    # 2-core CPU; gpu_check.sh runs the same test with inductor (SR_IQA_COMPILE_BACKEND=inductor).
    backend = os.environ.get("SR_IQA_COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    _assert_close_to_eager(options_file, 1e-3, "train.compile=true", f"train.compile_backend={backend}",
                           "train.channels_last=true")
    # Dynamo really captured graphs (G's forward, D's forward with frozen and with trainable parameters).
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2


def test_backend_switches_reach_torch(options_file: Path):
    Trainer(load_options(options_file, ["name=switches", "train.tf32=false", "train.cudnn_benchmark=true"]))
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.benchmark
    Trainer(load_options(options_file, ["name=switches2", "train.tf32=true", "train.cudnn_benchmark=false"]))
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert not torch.backends.cudnn.benchmark


def test_degradation_stays_fp32_inside_an_autocast_region(options_file: Path):
    trainer = Trainer(load_options(options_file, ["name=fp32_island"]))
    batch = next(iter(trainer.loader))
    device_type = trainer.accelerator.device.type
    # The degradation draws noise and JPEG quality on the trainer's device: the same draws twice.
    with torch.random.fork_rng(devices=[] if device_type == "cpu" else None, device_type=device_type):
        plain = trainer.synthesize(batch)
    with torch.autocast(device_type, dtype=torch.bfloat16):
        under_autocast = trainer.synthesize(batch)
    assert under_autocast["lq"].dtype == torch.float32
    torch.testing.assert_close(under_autocast["lq"], plain["lq"], atol=0, rtol=0)


def test_auto_precision_is_full_precision_on_the_cpu():
    assert resolved_precision(MixedPrecision.auto, torch.device("cpu")) == "no"
    assert resolved_precision(MixedPrecision.bf16, torch.device("cpu")) == "bf16"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_auto_precision_is_bf16_on_an_ampere_or_newer_gpu():
    expected = "bf16" if torch.cuda.get_device_capability()[0] >= 8 else "no"
    assert resolved_precision(MixedPrecision.auto, torch.device("cuda")) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_prefetcher_delivers_the_same_batches_on_the_device():
    batches = [{"image": torch.rand(2, 3, 64, 64).pin_memory(), "index": torch.tensor([i, i])} for i in range(4)]
    device = torch.device("cuda")
    delivered = list(DevicePrefetcher(iter(batches), device))
    assert len(delivered) == len(batches)
    for got, expected in zip(delivered, batches, strict=True):
        assert got["image"].device.type == "cuda"
        assert torch.equal(got["image"].cpu(), expected["image"]) and torch.equal(got["index"].cpu(),
                                                                                 expected["index"])


def test_device_prefetcher_passes_batches_through_on_the_cpu():
    batches = [{"image": torch.rand(1, 3, 8, 8)} for _ in range(3)]
    delivered = list(DevicePrefetcher(iter(batches), torch.device("cpu")))
    assert [b["image"] for b in delivered] == [b["image"] for b in batches]


def test_channels_last_and_compiled_runs_save_and_resume_like_plain_ones(options_file: Path):
    """NHWC weights and compiled modules go through safetensors and Accelerate's states unchanged: a
    resumed run equals an uninterrupted one, and its files load into a plain (NCHW, eager) run."""
    fast = ["train.channels_last=true", "train.compile=true", "train.compile_backend=aot_eager",
            "logger.save_checkpoint_freq=2", *GAN]

    def train(name: str, *overrides: str) -> Path:
        return Trainer(load_options(options_file, [f"name={name}", *fast, *overrides])).train().root

    straight = train("straight", "train.total_iter=4")
    train("resumed", "train.total_iter=2")
    resumed = train("resumed", "train.total_iter=4", "path.resume_state=auto")
    for stem in ("net_g", "net_g_ema", "net_d"):
        a = load_file(str(straight / "models" / f"{stem}_4.safetensors"))
        b = load_file(str(resumed / "models" / f"{stem}_4.safetensors"))
        assert a.keys() == b.keys() and not any(key.startswith("_orig_mod") for key in a)
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-6)
    plain = Trainer(load_options(options_file, ["name=plain", f"path.pretrain_network_g={straight}", *GAN]))
    loaded = plain.accelerator.unwrap_model(plain.net_g).state_dict()
    expected = load_file(str(straight / "models" / "net_g_ema_4.safetensors"))
    assert all(torch.equal(loaded[key].cpu().contiguous(), expected[key]) for key in expected)
