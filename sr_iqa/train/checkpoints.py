"""Checkpoint files: atomic writes, finding the newest training state, keeping the last K.

A training state lives in ``training_states/<iteration>/`` (written by
``accelerator.save_state`` into a hidden temporary folder first and renamed when complete),
so a run killed while saving never leaves a half-written state that ``resume_state: auto``
would pick up.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

_WEIGHTS_PATTERN = re.compile(r"^(?P<stem>.+)_(?P<iteration>\d+)\.safetensors$")


def state_folder(training_states: Path, iteration: int) -> Path:
    return training_states / str(iteration)


def partial_state_folder(training_states: Path, iteration: int) -> Path:
    return training_states / f".partial-{iteration}"


def saved_iterations(training_states: Path) -> list[int]:
    if not training_states.is_dir():
        return []
    return sorted(int(p.name) for p in training_states.iterdir() if p.is_dir() and p.name.isdigit())


def latest_state(training_states: Path) -> Path | None:
    iterations = saved_iterations(training_states)
    return state_folder(training_states, iterations[-1]) if iterations else None


def publish_state(training_states: Path, iteration: int) -> Path:
    """Rename the completed temporary folder into place (replacing a previous save of the same iteration)."""
    final = state_folder(training_states, iteration)
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial_state_folder(training_states, iteration), final)
    return final


def weights_path(models: Path, stem: str, iteration: int) -> Path:
    return models / f"{stem}_{iteration}.safetensors"


def save_tensors(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically: a killed run leaves the previous file or none, never half of one."""
    partial = path.with_name(f".{path.name}.partial")
    save_file({name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}, str(partial),
              metadata=metadata)
    os.replace(partial, path)


def save_weights(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    save_tensors(module.state_dict(), path, metadata)


def prune(models: Path, training_states: Path, keep: int) -> None:
    """Keep the newest ``keep`` iterations of training states and of every weights stem."""
    for iteration in saved_iterations(training_states)[:-keep]:
        shutil.rmtree(state_folder(training_states, iteration))
    by_stem: dict[str, list[tuple[int, Path]]] = {}
    for path in models.glob("*.safetensors"):
        match = _WEIGHTS_PATTERN.match(path.name)
        if match:
            by_stem.setdefault(match["stem"], []).append((int(match["iteration"]), path))
    for entries in by_stem.values():
        for _, path in sorted(entries)[:-keep]:
            path.unlink()
