"""What BasicSR and traiNNer-redux users expect of the loop: the lr warm-up, gradient clipping, the
discriminator's warm-up, and a Q that cannot score a crop not taken for divergence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_options, write_options

from sr_iqa.checked_options import load_options
from sr_iqa.models.generators import build_generator
from sr_iqa.models.weight_files import generator_metadata
from sr_iqa.tensor_files import save_weights
from sr_iqa.train.trainer import Trainer

GAN = ("network_d={type: UNetDiscriminatorSN, num_in_ch: 3, num_feat: 8, skip_connection: true}",
       "train.optim_d={type: Adam, lr: 1e-3, betas: [0.9, 0.99]}",
       "train.gan_opt={type: GANLoss, gan_type: vanilla, loss_weight: 0.1}")


@pytest.fixture
def options_file(tmp_path: Path, demo_set) -> Path:
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["datasets"].pop("val")
    return write_options(tmp_path / "train.yml", options)


def _trainer(options_file: Path, *overrides: str) -> Trainer:
    return Trainer(load_options(options_file, list(overrides)))


def _lrs_per_iteration(trainer: Trainer, iterations: int) -> list[float]:
    """The lr each iteration's optimizer step used (read in the step, where it is applied)."""
    seen: list[float] = []
    optimizer = trainer.step.optimizer_g
    real_step = optimizer.step
    optimizer.step = lambda *a, **k: seen.append(optimizer.param_groups[0]["lr"]) or real_step(*a, **k)
    batches = trainer.training_batches()
    for _ in range(iterations):
        trainer.run_iteration(batches)
    return seen


def _basicsr_lrs(scheduler_type: type, iterations: int, warmup_iter: int, **kwargs: object) -> list[float]:
    """BasicSR's own warm-up (``BaseModel.update_learning_rate``) and loop order (basicsr/train.py: the lr is
    updated at the start of iteration 1, 2, ...), on a one-parameter Adam."""
    from basicsr.models.base_model import BaseModel

    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    model = object.__new__(BaseModel)
    model.optimizers, model.schedulers = [optimizer], [scheduler_type(optimizer, **kwargs)]
    lrs = []
    for current_iter in range(1, iterations + 1):
        model.update_learning_rate(current_iter, warmup_iter=warmup_iter)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
    return lrs


def test_warmup_with_a_closed_form_scheduler_gives_basicsrs_learning_rates(options_file: Path):
    from basicsr.models.lr_scheduler import CosineAnnealingRestartLR

    trainer = _trainer(options_file, "train.warmup_iter=3", "train.scheduler={type: CosineAnnealingLR, T_max: 8}")
    ours = _lrs_per_iteration(trainer, 8)
    basicsr = _basicsr_lrs(CosineAnnealingRestartLR, 8, 3, periods=[8], restart_weights=[1])
    torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), torch.tensor(basicsr, dtype=torch.float64),
                               rtol=1e-9, atol=1e-15)
    assert ours[:2] == pytest.approx([1e-3 / 3, 2e-3 / 3])  # by hand: 1e-3 * i / 3 for i = 1, 2


def test_warmup_before_a_multistep_scheduler_reaches_the_initial_lr(options_file: Path):
    """Worked by hand: lr 1e-3, warm-up 4, halved after 6 steps. BasicSR's loop would stay at 7.5e-4 after the
    warm-up (its warm-up overwrites the lr that MultiStepLR multiplies); sr_iqa keeps the scheduler's own."""
    trainer = _trainer(options_file, "train.warmup_iter=4",
                       "train.scheduler={type: MultiStepLR, milestones: [6], gamma: 0.5}")
    expected = [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4]
    assert _lrs_per_iteration(trainer, 8) == pytest.approx(expected)
    basicsr = _basicsr_lrs(torch.optim.lr_scheduler.MultiStepLR, 8, 4, milestones=[6], gamma=0.5)
    assert basicsr == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 7.5e-4, 7.5e-4, 7.5e-4, 3.75e-4, 3.75e-4])


def test_the_logged_lr_is_the_one_each_iteration_used(options_file: Path, caplog: pytest.LogCaptureFixture):
    """Issue 37 item 6, worked by hand: lr 1e-3, warm-up 3, halved after 4 steps: the iterations step with 3.33e-4,
    6.67e-4, 1e-3, 1e-3, 5e-4, and train.log shows those, not the next iteration's."""
    import logging
    import re

    caplog.set_level(logging.INFO, logger="sr_iqa")  # as the command line sets it
    trainer = _trainer(options_file, "train.warmup_iter=3", "train.total_iter=5", "logger.print_freq=1",
                       "train.scheduler={type: MultiStepLR, milestones: [4], gamma: 0.5}")
    trainer.train()
    log = (trainer.folders.logs / "train.log").read_text()
    logged = [float(lr) for lr in re.findall(r"iter \d+/5 +lr (\S+)", log)]
    assert logged == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3, 5e-4], rel=1e-3)


def test_no_warmup_leaves_the_scheduler_alone(options_file: Path):
    trainer = _trainer(options_file, "train.warmup_iter=-1", "train.scheduler={type: MultiStepLR, milestones: [2]}")
    assert _lrs_per_iteration(trainer, 3) == pytest.approx([1e-3, 1e-3, 1e-4])


def _norms_at_steps(optimizer: torch.optim.Optimizer, network: torch.nn.Module) -> list[float]:
    """The global L2 norm of ``network``'s gradients each time ``optimizer`` steps (filled as it steps)."""
    norms: list[float] = []
    real_step = optimizer.step

    def step(*args: object, **kwargs: object) -> None:
        grads = [p.grad.flatten() for p in network.parameters() if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.cat(grads)).item())
        real_step(*args, **kwargs)

    optimizer.step = step
    return norms


def _gradients_at_step(trainer: Trainer) -> tuple[float, float]:
    """(the logged grad_norm_g, the global L2 norm of G's gradients when the optimizer steps)."""
    norms = _norms_at_steps(trainer.step.optimizer_g, trainer.net_g)
    output = trainer.run_iteration(trainer.training_batches())[0]
    return output.monitors["grad_norm_g"].item(), norms[0]


def test_gradient_clipping_bounds_the_global_norm_and_logs_the_norm_before_it(options_file: Path):
    logged_free, applied_free = _gradients_at_step(_trainer(options_file, "name=free"))
    assert logged_free == pytest.approx(applied_free, rel=1e-5)  # no clipping: the logged norm is applied
    bound = logged_free / 4
    logged, applied = _gradients_at_step(_trainer(options_file, "name=clipped", "train.grad_clip=true",
                                                  f"train.grad_clip_max_norm={bound}"))
    assert logged == pytest.approx(logged_free, rel=1e-5)  # same seed and batch: the norm before clipping
    assert applied == pytest.approx(bound, rel=1e-4)


def test_clipping_the_discriminator_too(options_file: Path):
    trainer = _trainer(options_file, *GAN, "train.grad_clip=true", "train.grad_clip_max_norm=1e-6")
    seen = _norms_at_steps(trainer.step.optimizer_d, trainer.net_d)
    output = trainer.run_iteration(trainer.training_batches())[0]
    assert output.monitors["grad_norm_d"].item() > 1e-4 and seen == [pytest.approx(1e-6, rel=1e-3)]


def _changed(before: dict[str, torch.Tensor], network: torch.nn.Module) -> bool:
    return any(not torch.equal(before[name], value) for name, value in network.state_dict().items())


def test_the_generator_steps_only_after_the_discriminators_warmup_as_in_basicsr(options_file: Path):
    """Traced by hand from BasicSR's SRGANModel: net_d_iters 2, net_d_init_iters 3 -> G steps at iterations 4, 6
    and 8 (all its losses, not only the adversarial one); D at every iteration."""
    trainer = _trainer(options_file, *GAN, "train.net_d_iters=2", "train.net_d_init_iters=3", "train.ema_decay=0")
    net_g, net_d = trainer.accelerator.unwrap_model(trainer.net_g), trainer.accelerator.unwrap_model(trainer.net_d)
    batches = trainer.training_batches()
    g_stepped, d_stepped, logged = [], [], []
    for _ in range(8):
        g_before = {name: value.clone() for name, value in net_g.state_dict().items()}
        d_before = {name: value.clone() for name, value in net_d.state_dict().items()}
        output = trainer.run_iteration(batches)[0]
        g_stepped.append(_changed(g_before, net_g))
        d_stepped.append(_changed(d_before, net_d))
        logged.append("l_g_pix" in output.losses)
    assert g_stepped == [False, False, False, True, False, True, False, True]
    assert d_stepped == [True] * 8
    assert logged == g_stepped  # the generator's losses are logged when it steps


def test_a_crop_q_cannot_score_is_counted_not_taken_for_divergence(options_file: Path, tmp_path: Path, caplog):
    """A generator with all-zero weights gives flat SR crops, which NIQE cannot score (no finite features): at
    batch 1 the first iteration has no Q at all. The run goes on, leaves the Q term out and counts the crop."""
    options = load_options(options_file)
    zero = build_generator(options.network_g, options.scale)
    for tensor in zero.state_dict().values():
        tensor.zero_()
    weights = tmp_path / "flat.safetensors"
    save_weights(zero, weights, generator_metadata(options.network_g))
    stage2 = (f"path.pretrain_network_g={weights}", "train.total_iter=2", "datasets.train.gt_size=96",
              "datasets.train.batch_size_per_gpu=1", "logger.print_freq=1", "train.ema_decay=0",
              "train.iqa_opt={metric: niqe, loss_weight: 0.05}")
    stepped = _trainer(options_file, "name=one_step", *stage2)
    first = stepped.run_iteration(stepped.training_batches())[0]
    assert torch.isnan(first.monitors["q_niqe"]) and "l_g_iqa" not in first.losses
    assert torch.isfinite(first.losses["l_g"])
    trainer = _trainer(options_file, "name=flat", *stage2)
    with caplog.at_level("INFO", logger="sr_iqa"):
        trainer.train()  # before: "training diverged at iteration 1: loss q_niqe nan"
    lines = [record.getMessage() for record in caplog.records]
    assert any("1 SR crops since the last report could not be scored by niqe" in line for line in lines)
    assert not any("diverged" in line for line in lines)
    assert (trainer.folders.models / "net_g_2.safetensors").is_file()
