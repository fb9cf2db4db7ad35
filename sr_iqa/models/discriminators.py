"""Discriminators from basicsr.archs, chosen by ``network_d.type``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from accelerate import init_empty_weights
from basicsr.archs.discriminator_arch import UNetDiscriminatorSN, VGGStyleDiscriminator

from sr_iqa.config.call_options import build_from_block, check_sizes, trial_build
from sr_iqa.errors import OptionsError

DISCRIMINATOR_TYPES = {"UNetDiscriminatorSN": UNetDiscriminatorSN, "VGGStyleDiscriminator": VGGStyleDiscriminator}


def build_discriminator(block: Mapping[str, Any]) -> torch.nn.Module:
    return build_from_block(block, DISCRIMINATOR_TYPES)


def check_discriminator_builds(block: Mapping[str, Any], gt_size: int, source: str) -> None:
    """Build the discriminator on the meta device and run it on one ``gt_size`` crop (VGGStyleDiscriminator takes
    128 or 256 pixels only): a refused value is one line at load time."""
    check_sizes(block, "network_d", source)
    with init_empty_weights():  # parameters on the meta device; the constructor's own arithmetic (SwinIR's) on the CPU
        net = trial_build("network_d", source, lambda: build_from_block(block, DISCRIMINATOR_TYPES))
    with torch.device("meta"):
        net.to("meta")
        trial = torch.zeros(1, int(block.get("num_in_ch", 3)), gt_size, gt_size)
        try:
            net(trial)
        except NotImplementedError:
            return
        except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as error:
            raise OptionsError(f"{source}: 'network_d' cannot run on {gt_size}-pixel crops "
                               f"(datasets.train.gt_size): {str(error).strip().splitlines()[0]}") from None
