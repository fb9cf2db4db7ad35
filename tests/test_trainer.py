"""The Accelerate training loop: checkpoints, exact resume, EMA, accumulation, Ctrl-C and SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli, tiny_options, write_options
from safetensors.torch import load_file

from sr_iqa.checked_options import load_options
from sr_iqa.errors import RunFolderError
from sr_iqa.train.trainer import Trainer


def _train(options_file: Path, *overrides: str) -> Path:
    options = load_options(options_file, overrides)
    return Trainer(options, source=str(options_file)).train().root


def _weights(run: Path, stem: str, iteration: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "models" / f"{stem}_{iteration}.safetensors"))


def _assert_equal_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture
def options_file(tmp_path: Path, demo_set) -> Path:
    return write_options(tmp_path / "train.yml", tiny_options(demo_set, tmp_path / "experiments"))


def test_run_folder_layout_and_resolved_options(options_file: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level("INFO", logger="sr_iqa"):
        run = _train(options_file)
    assert {p.name for p in run.iterdir()} >= {"models", "training_states", "logs", "visualization", "options.yml"}
    assert load_options(run / "options.yml") == load_options(options_file)
    assert sorted(p.name for p in (run / "training_states").iterdir()) == ["4", "8"]
    assert sorted(p.name for p in (run / "models").iterdir()) == [
        "net_g_4.safetensors", "net_g_8.safetensors", "net_g_ema_4.safetensors", "net_g_ema_8.safetensors"]
    finished = (f"finished at iteration 8: weights in {run / 'models'}; evaluate with `sr-iqa eval --checkpoint "
                f"{run}")  # where the weights went, said once training and validation are done
    assert [message for message in caplog.messages if message.startswith(finished)]


POOL_AND_NEGATIVE = ("datasets.train.queue_size=4", "train.neg_opt={type: NegativeGTLoss, loss_weight: 0.1}")
GAN = ("network_d={type: UNetDiscriminatorSN, num_in_ch: 3, num_feat: 8, skip_connection: true}",
       "train.optim_d={type: Adam, lr: 1e-3, betas: [0.9, 0.99]}",
       "train.gan_opt={type: GANLoss, gan_type: vanilla, loss_weight: 0.1}", "train.net_d_init_iters=2")


WARMUP_AND_CLIPPING = ("train.warmup_iter=6", "train.grad_clip=true", "train.grad_clip_max_norm=0.05",
                       "train.scheduler={type: MultiStepLR, milestones: [5]}")


@pytest.mark.parametrize("extra", [(), POOL_AND_NEGATIVE, GAN, WARMUP_AND_CLIPPING],
                         ids=["plain", "pool_and_negative_loss", "gan", "warmup_and_clipping"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path, options_file: Path, extra):
    straight = _train(options_file, "name=straight", "train.total_iter=8", *extra)
    _train(options_file, "name=resumed", "train.total_iter=4", *extra)
    resumed = _train(options_file, "name=resumed", "train.total_iter=8", "path.resume_state=auto", *extra)
    for stem in ("net_g", "net_g_ema") + (("net_d",) if extra == GAN else ()):
        _assert_equal_weights(_weights(straight, stem, 8), _weights(resumed, stem, 8))
    # The first half alone must differ, or the comparison above proves nothing.
    assert not torch.equal(_weights(resumed, "net_g", 4)["conv_first.weight"],
                           _weights(resumed, "net_g", 8)["conv_first.weight"])


def test_existing_run_is_not_overwritten_without_resume(options_file: Path):
    _train(options_file, "train.total_iter=4")
    with pytest.raises(RunFolderError, match="path.resume_state=auto"):
        _train(options_file, "train.total_iter=4")


def test_keeps_only_the_last_k_checkpoints(options_file: Path):
    run = _train(options_file, "logger.save_checkpoint_freq=2", "logger.keep_checkpoints=2")
    assert sorted(p.name for p in (run / "training_states").iterdir()) == ["6", "8"]
    assert sorted(p.name for p in (run / "models").iterdir()) == [
        "net_g_6.safetensors", "net_g_8.safetensors", "net_g_ema_6.safetensors", "net_g_ema_8.safetensors"]


def test_ema_follows_the_basicsr_formula(options_file: Path):
    decay = 0.9
    run = _train(options_file, "train.total_iter=2", "logger.save_checkpoint_freq=1", f"train.ema_decay={decay}")
    net_1, net_2 = _weights(run, "net_g", 1), _weights(run, "net_g", 2)
    ema_1, ema_2 = _weights(run, "net_g_ema", 1), _weights(run, "net_g_ema", 2)
    _assert_equal_weights(ema_1, net_1)  # the first update copies the weights
    for name in net_2:
        torch.testing.assert_close(ema_2[name], decay * net_1[name] + (1 - decay) * net_2[name])
    assert not torch.equal(ema_2["conv_first.weight"], net_2["conv_first.weight"])


def test_no_ema_files_when_ema_is_off(options_file: Path):
    run = _train(options_file, "train.ema_decay=0")
    assert not list((run / "models").glob("net_g_ema_*"))


def test_gradient_accumulation_matches_the_larger_batch(options_file: Path):
    # Bicubic LR: the random degradations draw once per micro-batch, so they would differ between the runs.
    same = ("train.total_iter=3", "degradation={type: bicubic}")
    big = _train(options_file, "name=big", "datasets.train.batch_size_per_gpu=4", *same)
    accumulated = _train(options_file, "name=acc", "datasets.train.batch_size_per_gpu=2",
                         "train.gradient_accumulation_steps=2", *same)
    small = _train(options_file, "name=small", "datasets.train.batch_size_per_gpu=2", *same)
    big_w, acc_w, small_w = (_weights(run, "net_g", 3) for run in (big, accumulated, small))
    for name in big_w:
        torch.testing.assert_close(acc_w[name], big_w[name], rtol=1e-4, atol=1e-5)
    assert any(not torch.allclose(small_w[n], big_w[n], atol=1e-5) for n in big_w)


def test_validation_and_tensorboard_scalars(options_file: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _train(options_file, "logger.use_tb_logger=true", "val.val_freq=4", "val.save_img=true",
                 "val.metrics=[psnr,niqe]")
    events = EventAccumulator(str(run / "logs" / "tb")).Reload()
    assert [s.step for s in events.Scalars("train/l_g")] == [2, 4, 6, 8]
    assert [s.step for s in events.Scalars("val/psnr")] == [4, 8]
    assert all(0 < s.value < 60 for s in events.Scalars("val/psnr"))
    assert [s.step for s in events.Scalars("val/niqe")] == [4, 8]
    saved = sorted(p.name for p in (run / "visualization").rglob("*.png"))
    assert saved and all(name.endswith(("_4.png", "_8.png")) for name in saved)


def _start_training(options_file: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sr_iqa", "train", "-opt", str(options_file), *overrides],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # The thread count of the tests' own process: bit-exact comparisons with in-process runs
                            # need the same summation order (OMP_NUM_THREADS=1 here changed the last bits).
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for_first_state(run: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = run / "training_states"
        if states.is_dir() and any(p.name.isdigit() for p in states.iterdir()):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


LONG_RUN = ("train.total_iter=200", "logger.save_checkpoint_freq=10", "logger.print_freq=100")


def test_sigkill_mid_run_then_auto_resume_equals_uninterrupted_run(options_file: Path, tmp_path: Path):
    """SIGKILL a training with two loader workers (as the OOM killer or a preemption does): the workers end with
    it, its run lock is free at once, and the resumed run (loaded by two workers too) equals one never killed and
    loaded in the main process."""
    from conftest import child_pids, process_alive

    run = tmp_path / "experiments" / "killed"
    two_workers = "datasets.train.num_worker_per_gpu=2"
    process = _start_training(options_file, "name=killed", two_workers, *LONG_RUN)
    _wait_for_first_state(run, process)
    workers = child_pids(process.pid)
    assert len(workers) == 2, workers
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(process_alive(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(process_alive(pid) for pid in workers)
    killed_at = max(int(p.name) for p in (run / "training_states").iterdir() if p.name.isdigit())
    assert killed_at < 200

    from sr_iqa.cli import main

    assert main(["train", "-opt", str(options_file), "name=killed", two_workers, *LONG_RUN,  # at once: not refused
                 "--auto_resume"]) == 0  # BasicSR's
    straight = _train(options_file, "name=straight", *LONG_RUN)
    _assert_equal_weights(_weights(run, "net_g", 200), _weights(straight, "net_g", 200))
    _assert_equal_weights(_weights(run, "net_g_ema", 200), _weights(straight, "net_g_ema", 200))


def test_ctrl_c_saves_a_checkpoint_before_exiting(options_file: Path, tmp_path: Path):
    run = tmp_path / "experiments" / "interrupted"
    process = _start_training(options_file, "name=interrupted", "train.total_iter=100000",
                              "logger.save_checkpoint_freq=25")
    _wait_for_first_state(run, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    iteration = int(stderr.split("interrupted at iteration ")[1].split(";")[0])
    assert (run / "training_states" / str(iteration)).is_dir()
    assert (run / "models" / f"net_g_{iteration}.safetensors").is_file()


def test_pretrained_weights_are_loaded_and_mismatches_refused(options_file: Path):
    source = _train(options_file, "name=source")
    pretrained = source / "models" / "net_g_8.safetensors"
    frozen = _train(options_file, "name=frozen", "train.total_iter=1", "train.optim_g.lr=0.0",
                    f"path.pretrain_network_g={pretrained}")
    _assert_equal_weights(_weights(frozen, "net_g", 1), load_file(str(pretrained)))

    from sr_iqa.errors import OptionsError

    with pytest.raises(OptionsError, match="does not fit network_g") as refused:
        _train(options_file, "name=mismatch", "network_g.num_feat=16", f"path.pretrain_network_g={pretrained}")
    # A partial load would leave layers random: the message never suggests it.
    assert "would leave the others random" in str(refused.value) and "strict_load_g: false" not in str(refused.value)


def test_fp16_on_cpu_is_refused_with_a_clear_message(options_file: Path):
    from sr_iqa.errors import OptionsError

    if torch.cuda.is_available():
        pytest.skip("fp16 is valid with a GPU")
    with pytest.raises(OptionsError, match="'train.mixed_precision' is fp16"):
        _train(options_file, "train.mixed_precision=fp16")


def test_bf16_autocast_keeps_trained_weights_in_fp32(options_file: Path):
    # Its own process: Accelerate fixes the precision once per process.
    result = run_cli("train", "-opt", str(options_file), "name=bf16", "train.mixed_precision=bf16",
                     "train.total_iter=4")
    assert result.returncode == 0, result.stderr[-2000:]
    run = options_file.parent / "experiments" / "bf16"
    fp32 = _train(options_file, "name=fp32", "train.total_iter=4")
    bf16_weights, fp32_weights = _weights(run, "net_g", 4), _weights(fp32, "net_g", 4)
    assert all(t.dtype == torch.float32 for t in bf16_weights.values())
    # autocast really ran: the same steps in bf16 give (slightly) different weights
    assert any(not torch.equal(bf16_weights[n], fp32_weights[n]) for n in fp32_weights)
    for name in fp32_weights:
        torch.testing.assert_close(bf16_weights[name], fp32_weights[name], atol=0.05, rtol=0.05)


def test_negative_loss_takes_part_in_training(options_file: Path):
    """Two runs that read the same samples (negatives included, so the same data order and random state), the
    negative term at weight 0 and at 1, end with different weights, while a rerun at 0 repeats itself bit for bit:
    what moves the weights is the term's gradient."""
    silent = _train(options_file, "name=silent", "train.total_iter=3",
                    "train.neg_opt={type: NegativeGTLoss, loss_weight: 0.0}")
    pushed = _train(options_file, "name=pushed", "train.total_iter=3",
                    "train.neg_opt={type: NegativeGTLoss, loss_weight: 1.0}")
    zero, one = (_weights(run, "net_g", 3) for run in (silent, pushed))
    assert any(not torch.equal(zero[n], one[n]) for n in zero)
    again = _weights(_train(options_file, "name=silent_again", "train.total_iter=3",
                            "train.neg_opt={type: NegativeGTLoss, loss_weight: 0.0}"), "net_g", 3)
    assert all(torch.equal(zero[n], again[n]) for n in zero)  # the runs are deterministic: the term made it


def test_the_discriminator_sees_the_chosen_gt_as_real_and_sr_as_fake(options_file: Path):
    from sr_iqa.sampling.choosers import OriginalGT

    class ChooseThird(OriginalGT):
        def choose(self, position, group, box, rng) -> int:
            return 3

    trainer = Trainer(load_options(options_file, ["name=gan", *GAN]))
    trainer.train_set.choose_gt = ChooseThird()
    seen, synthesized = [], []
    net_d = trainer.accelerator.unwrap_model(trainer.net_d)
    net_d.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach().clone()))
    real_synthesize = trainer.synthesize
    trainer.synthesize = lambda batch: synthesized.append(real_synthesize(batch)) or synthesized[-1]
    trainer.progress.iteration = 5  # past net_d_init_iters: G's loss has the adversarial term too
    losses = trainer.train_step(next(iter(trainer.loader))).losses
    data = synthesized[0]
    assert data["gt_index"].tolist() == [3, 3]
    assert not torch.equal(data["gt"], data["original"])
    # G's adversarial term (SR), then D's real (the chosen GT) and fake (SR) passes.
    assert len(seen) == 3 and torch.equal(seen[1], data["gt"]) and torch.equal(seen[0], seen[2])
    assert seen[0].shape == data["gt"].shape and not torch.equal(seen[0], data["gt"])
    # Each term under BasicSR's name, and the totals they add up to.
    assert set(losses) == {"l_g", "l_g_pix", "l_g_gan", "l_d", "l_d_real", "l_d_fake"}
    torch.testing.assert_close(losses["l_g"], losses["l_g_pix"] + losses["l_g_gan"])
    torch.testing.assert_close(losses["l_d"], losses["l_d_real"] + losses["l_d_fake"])


def test_gan_blocks_must_come_together(options_file: Path):
    from sr_iqa.errors import OptionsError

    with pytest.raises(OptionsError, match="missing 'train.optim_d', 'train.gan_opt'"):
        load_options(options_file, [GAN[0]])


def test_basicsrs_launcher_flag_is_accepted_and_said_to_be_ignored(tmp_path: Path, capsys: pytest.CaptureFixture):
    from sr_iqa.cli import main

    assert main(["train", "-opt", str(tmp_path / "missing.yml"), "--launcher", "pytorch"]) == 2
    assert "--launcher pytorch is BasicSR's" in capsys.readouterr().err


def test_several_processes_agree_on_stopping_only_at_logging_iterations(options_file: Path, monkeypatch):
    """Accelerate's check_trigger (the stop flag's all-reduce) is a host sync: not every step, only where the loop
    logs (and syncs anyway)."""
    from accelerate import Accelerator

    trainer = Trainer(load_options(options_file, ["name=sync", "logger.print_freq=4", "train.total_iter=8"]))
    stop_checks = []
    real_check = trainer.accelerator.check_trigger

    def counting_check() -> bool:
        stop_checks.append(trainer.progress.iteration)
        return real_check()

    monkeypatch.setattr(trainer.accelerator, "check_trigger", counting_check)
    monkeypatch.setattr(Accelerator, "num_processes", property(lambda self: 2))  # as under accelerate launch
    trainer.train()
    assert stop_checks == [4, 8]
