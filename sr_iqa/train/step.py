"""One micro-batch of training: the generator's step on its losses, then the discriminator's.

Which network steps when is BasicSR's (``SRGANModel.optimize_parameters``, basicsr 1.4.2): with a
discriminator, the generator steps only at iterations ``i`` with ``i % net_d_iters == 0`` and
``i > net_d_init_iters`` (all its losses, not only the adversarial term); the discriminator steps at every
iteration. Gradient norms are traiNNer-redux's: ``grad_norm_g`` / ``grad_norm_d`` (before clipping) are logged,
and ``train.grad_clip`` clips them to ``train.grad_clip_max_norm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from accelerate import Accelerator


def generator_steps(iteration: int, has_discriminator: bool, net_d_iters: int, net_d_init_iters: int) -> bool:
    """Whether the generator steps at ``iteration`` (1-based): always without a discriminator."""
    return not has_discriminator or (iteration % net_d_iters == 0 and iteration > net_d_init_iters)


@dataclass
class StepOutput:
    """Detached values of one micro-batch. ``losses``: a non-finite one means the run diverged. ``monitors``: Q and
    the gradient norms, NaN where there is none (a Q that could score no crop); never a reason to stop."""

    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    monitors: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class TrainingStep:
    """The networks, optimizers and losses of a run, and the step that uses them. ``None`` for parts a run lacks."""

    accelerator: Accelerator
    net_g: torch.nn.Module
    optimizer_g: torch.optim.Optimizer
    pixel_loss: torch.nn.Module
    perceptual_loss: torch.nn.Module | None = None
    negative_loss: torch.nn.Module | None = None
    rank_loss: torch.nn.Module | None = None  # train.rank_opt: the GTs ranked by cached Q on the crop
    iqa_objective: torch.nn.Module | None = None  # stage 2's -lambda_Q * Q term
    iqa_metric: str | None = None
    net_d: torch.nn.Module | None = None
    optimizer_d: torch.optim.Optimizer | None = None
    gan_loss: torch.nn.Module | None = None
    net_d_iters: int = 1
    net_d_init_iters: int = 0
    clip_max_norm: float | None = None  # train.grad_clip_max_norm when train.grad_clip

    def __call__(self, data: dict[str, torch.Tensor], iteration: int) -> StepOutput:
        """``data``: the synthesised batch (``lq``, the chosen ``gt``, and what the losses need)."""
        output = StepOutput()
        models = (self.net_g,) if self.net_d is None else (self.net_g, self.net_d)
        with self.accelerator.accumulate(*models):
            if generator_steps(iteration, self.net_d is not None, self.net_d_iters, self.net_d_init_iters):
                sr = self._generator_step(data, output)
            else:  # the discriminator warms up alone: G only makes its fakes
                with torch.no_grad():
                    sr = self.net_g(data["lq"])
            if self.net_d is not None:
                self._discriminator_step(data, sr.detach(), output)
        return output

    def _generator_step(self, data: dict[str, torch.Tensor], output: StepOutput) -> torch.Tensor:
        sr = self.net_g(data["lq"])
        terms = {"l_g_pix": self.pixel_loss(sr, data["gt"])}  # BasicSR's names for each term
        if self.perceptual_loss is not None:  # the chosen GT is the target, as for L1
            terms["l_g_percep"] = self.perceptual_loss(sr, data["gt"])
        if self.negative_loss is not None:
            terms["l_g_neg"] = self.negative_loss(sr, data["original"], data["reference"], data["negative"],
                                                  data["reference_votes"], data["negative_votes"],
                                                  data["has_positive"], data["has_negative"])
        if self.rank_loss is not None:
            terms["l_g_rank"] = self.rank_loss(sr, data["ranked_gts"], data["ranked_q"])
        if self.net_d is not None:
            terms["l_g_gan"] = self.gan_loss(self._frozen_discriminator(sr), True, is_disc=False)
        if self.iqa_objective is not None:
            term, q = self.iqa_objective(sr)
            output.monitors[f"q_{self.iqa_metric}"] = q
            if torch.isfinite(q):  # a micro-batch that Q could not score has no Q term (counted by the objective)
                terms["l_g_iqa"] = term
        loss_g = sum(terms.values())
        self.accelerator.backward(loss_g)
        self._clip(self.net_g, self.optimizer_g, "grad_norm_g", output)
        self.optimizer_g.step()
        self.optimizer_g.zero_grad(set_to_none=True)
        output.losses |= {"l_g": loss_g.detach()} | {name: value.detach() for name, value in terms.items()}
        return sr

    def _discriminator_step(self, data: dict[str, torch.Tensor], fake: torch.Tensor, output: StepOutput) -> None:
        """The chosen GT is the real sample, SR the fake."""
        loss_real = self.gan_loss(self.net_d(data["gt"]), True, is_disc=True)
        loss_fake = self.gan_loss(self.net_d(fake), False, is_disc=True)
        loss_d = loss_real + loss_fake
        self.accelerator.backward(loss_d)
        self._clip(self.net_d, self.optimizer_d, "grad_norm_d", output)
        self.optimizer_d.step()
        self.optimizer_d.zero_grad(set_to_none=True)
        output.losses |= {"l_d": loss_d.detach(), "l_d_real": loss_real.detach(), "l_d_fake": loss_fake.detach()}

    def _clip(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer, name: str,
              output: StepOutput) -> None:
        """At the accumulation boundary: the global L2 norm of the gradients, clipped when asked. Under fp16 this
        optimizer's gradients are unscaled first (Accelerate's ``clip_grad_norm_`` would unscale every optimizer's,
        D's included at G's step); without clipping the norm is only read, the gradients are left untouched."""
        if not self.accelerator.sync_gradients:
            return
        self.accelerator.unscale_gradients(optimizer=optimizer)
        if self.clip_max_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(network.parameters(), self.clip_max_norm)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in network.parameters() if p.grad is not None])
        output.monitors[name] = norm.detach().float()

    def _frozen_discriminator(self, sr: torch.Tensor) -> torch.Tensor:
        """D's verdict on SR for the generator's loss: the unwrapped module (no DDP reduction), parameters frozen."""
        net_d = self.accelerator.unwrap_model(self.net_d)
        net_d.requires_grad_(False)
        try:
            return net_d(sr)
        finally:
            net_d.requires_grad_(True)
