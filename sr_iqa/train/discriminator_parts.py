"""The GAN half of a run: the discriminator, its optimizer and scheduler (prepared by Accelerate) and the GAN loss."""

from __future__ import annotations

import torch
from accelerate import Accelerator

from sr_iqa.config import Options
from sr_iqa.losses import build_gan_loss
from sr_iqa.models.discriminators import build_discriminator
from sr_iqa.models.weight_files import load_network_weights
from sr_iqa.optim import build_optimizer, build_scheduler
from sr_iqa.train import speed

DiscriminatorParts = tuple[torch.nn.Module | None, torch.optim.Optimizer | None, object | None,
                           torch.nn.Module | None]


def discriminator_parts(options: Options, accelerator: Accelerator) -> DiscriminatorParts:
    """(net_d, optimizer_d, scheduler_d, gan_loss), all None without ``network_d`` (the option loader checked that
    network_d, optim_d and gan_opt come together). D's pretrained weights load as BasicSR's ``net_d`` files."""
    if options.network_d is None:
        return None, None, None, None
    net_d = build_discriminator(options.network_d)
    if options.path.pretrain_network_d:
        load_network_weights(net_d, options.path.pretrain_network_d, stems=("net_d",), network_key="network_d")
    net_d.to(memory_format=speed.memory_format(options.train))
    optimizer_d = build_optimizer(options.train.optim_d, net_d.parameters())
    scheduler_d = build_scheduler(options.train.scheduler, optimizer_d)
    net_d, optimizer_d, scheduler_d = accelerator.prepare(net_d, optimizer_d, scheduler_d)
    return net_d, optimizer_d, scheduler_d, build_gan_loss(options.train.gan_opt).to(accelerator.device)
