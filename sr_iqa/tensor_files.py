"""Weights written as safetensors files, whole: the one way every layer (checkpoints, exports, adapters) writes
tensors, kept at the bottom so that models need not import the training layer to save a file."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from sr_iqa.atomic_files import write_with


def save_tensors(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically: a killed run leaves the previous file or none, never half of one."""
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}
    write_with(path, lambda partial: save_file(tensors, str(partial), metadata=metadata))


def save_weights(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    save_tensors(module.state_dict(), path, metadata)
