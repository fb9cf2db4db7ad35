"""The training speed options (``train.mixed_precision``, ``channels_last``, ``compile``, ``tf32``,
``cudnn_benchmark``) turned into torch settings, in one place so that the trainer and the
benchmarks apply exactly the same thing."""

from __future__ import annotations

import torch

from sr_iqa.config.schema import MixedPrecision, TrainOptions


def resolved_precision(requested: MixedPrecision, device: torch.device) -> str:
    """``auto`` is bf16 where the GPU has bf16 tensor cores (Ampere and newer), otherwise full precision."""
    if requested is not MixedPrecision.auto:
        return requested.value
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return MixedPrecision.bf16.value
    return MixedPrecision.no.value


def set_backend_flags(train: TrainOptions) -> None:
    """TF32 and cuDNN autotuning are process-wide switches; they only act on CUDA."""
    torch.backends.cuda.matmul.allow_tf32 = train.tf32
    torch.backends.cudnn.allow_tf32 = train.tf32
    torch.backends.cudnn.benchmark = train.cudnn_benchmark


def memory_format(train: TrainOptions) -> torch.memory_format:
    return torch.channels_last if train.channels_last else torch.contiguous_format


def compile_in_place(network: torch.nn.Module, train: TrainOptions) -> None:
    """``nn.Module.compile`` keeps the module and its state-dict keys: checkpoints, EMA, adapters and
    resumption are the same with and without compile, and DDP wraps the module as usual."""
    if train.compile:
        network.compile(backend=train.compile_backend, mode=train.compile_mode, dynamic=False)
