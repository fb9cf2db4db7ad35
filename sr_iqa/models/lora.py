"""LoRA adapters on basicsr generators, through peft: inject, freeze the backbone, save, load, merge.

peft's ``inject_adapter_in_model`` works on any ``nn.Module``, so the generator stays the basicsr
class (no ``PeftModel`` wrapper): DDP, EMA and the validation code see the same module as in stage 1.
Adapter files hold ``get_peft_model_state_dict`` (PEFT's state-dict format) plus, in the safetensors
metadata, the LoRA settings needed to rebuild the layers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraModel

from sr_iqa.config.schema import MAX_LORA_RANK, LoraOptions
from sr_iqa.config.suggest import did_you_mean
from sr_iqa.errors import OptionsError
from sr_iqa.json_text import parse_json

# Where HGGT-style fine-tuning puts the adapters: attention and MLP of SwinIR, the dense convs of RRDB.
DEFAULT_TARGET_MODULES = {
    "SwinIR": ("qkv", "proj", "fc1", "fc2"),
    "RRDBNet": ("conv1", "conv2", "conv3", "conv4", "conv5"),
    "RRDBPSNet": ("conv1", "conv2", "conv3", "conv4", "conv5"),
}


@dataclass(frozen=True)
class AdapterSettings:
    """The LoRA hyper-parameters an adapter file records, enough to rebuild its layers."""

    rank: int
    alpha: float
    dropout: float
    target_modules: tuple[str, ...]

    @classmethod
    def from_options(cls, options: LoraOptions, arch: str) -> AdapterSettings:
        targets = options.target_modules or DEFAULT_TARGET_MODULES.get(arch)
        if not targets:
            raise OptionsError(f"'lora.target_modules' has no default for network_g type {arch}; list the "
                               "module names to adapt")
        return cls(options.rank, float(options.alpha), float(options.dropout), tuple(targets))

    def peft_config(self) -> LoraConfig:
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.target_modules))

    def to_json(self) -> str:
        return json.dumps({"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout,
                           "target_modules": list(self.target_modules)})

    @classmethod
    def from_json(cls, text: str) -> AdapterSettings:
        """Settings as ``to_json`` wrote them; anything else (a file's metadata is untrusted) is a ValueError."""
        values = parse_json(text)
        if not isinstance(values, dict) or not {"rank", "alpha", "dropout", "target_modules"} <= values.keys():
            raise ValueError("expected rank, alpha, dropout and target_modules")
        rank, alpha, dropout, targets = (values[key] for key in ("rank", "alpha", "dropout", "target_modules"))
        if not (isinstance(rank, int) and 1 <= rank <= MAX_LORA_RANK):
            raise ValueError(f"rank must be a whole number from 1 to {MAX_LORA_RANK}, got {rank!r}")
        if not (isinstance(alpha, int | float) and 0 < alpha <= 1e6 and isinstance(dropout, int | float)
                and 0 <= dropout < 1):
            raise ValueError(f"alpha must be in (0, 1e6] and dropout in [0, 1), got {alpha!r} and {dropout!r}")
        if not (isinstance(targets, list) and targets and all(isinstance(name, str) for name in targets)):
            raise ValueError(f"target_modules must be a list of module names, got {targets!r}")
        return cls(rank, float(alpha), float(dropout), tuple(targets))


def _check_targets(net: torch.nn.Module, targets: Sequence[str]) -> None:
    """peft's own message for a wrong name is generic; name the module and the closest real one."""
    leaf_names = sorted({name.rsplit(".", 1)[-1] for name, module in net.named_modules()
                         if isinstance(module, torch.nn.Linear | torch.nn.Conv2d)})
    for target in targets:
        if target not in leaf_names:
            raise OptionsError(f"'lora.target_modules': {type(net).__name__} has no Linear or Conv2d layer named "
                               f"'{target}'; {did_you_mean(target, leaf_names)}")


def add_adapters(net: torch.nn.Module, settings: AdapterSettings) -> torch.nn.Module:
    """Inject LoRA layers in place (B = 0, so the output is unchanged) and freeze everything else."""
    _check_targets(net, settings.target_modules)
    net = inject_adapter_in_model(settings.peft_config(), net)
    for name, parameter in net.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return net


def adapter_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable LoRA tensors, keyed as PEFT saves them (no adapter name), on the CPU."""
    return {name: tensor.detach().contiguous().cpu() for name, tensor in get_peft_model_state_dict(net).items()}


STRENGTH_ROW = re.compile(r"^(?P<name>.*) \(LoRA x(?P<strength>[0-9.e+-]+)\)$")


def strength_row_name(name: str, strength: float) -> str:
    """A table row of one adapter at one strength (``eval --lora-strength``); ``STRENGTH_ROW`` reads it back."""
    return f"{name} (LoRA x{strength:g})"


def merged_with_adapter(net: torch.nn.Module, settings: AdapterSettings, state: dict[str, torch.Tensor],
                        strength: float = 1.0) -> torch.nn.Module:
    """The plain generator with ``W + strength * (alpha / rank) * B A`` folded into each adapted layer: 0 is the
    base network exactly, 1 the adapter as trained (the update is linear in B, so B is scaled)."""
    tuner = LoraModel(net, settings.peft_config(), "default")
    if strength != 1.0:
        state = {name: tensor * strength if "lora_B" in name else tensor for name, tensor in state.items()}
    result = set_peft_model_state_dict(tuner.model, state)
    missing = [key for key in result.missing_keys if "lora_" in key]
    if result.unexpected_keys or missing:
        raise OptionsError(f"the adapter does not fit this generator (unexpected {result.unexpected_keys[:3]}, "
                           f"missing {missing[:3]}); pass the base checkpoint it was trained on")
    return tuner.merge_and_unload()
