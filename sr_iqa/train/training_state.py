"""A run's saved state: which one to resume, loading it, and saving weights and state at an iteration.

Accelerate saves what it prepared (networks, optimizers, schedulers, RNGs); sr_iqa adds its own part
(``checkpoints.save_own_state``: the iteration, the number of processes, the EMA), each rank its pair pool,
and the weight files users load (``models/``). See ``checkpoints.py`` for the file rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.optim.swa_utils import AveragedModel

from sr_iqa.config import Options
from sr_iqa.errors import NonFiniteError, OptionsError, RunFolderError
from sr_iqa.models.lora import AdapterSettings
from sr_iqa.models.weight_files import generator_metadata, save_adapter
from sr_iqa.tensor_files import save_weights
from sr_iqa.train import checkpoints
from sr_iqa.train.experiment import ExperimentFolders
from sr_iqa.train.pair_pool import TrainingPairPool

log = logging.getLogger("sr_iqa.train")


@dataclass
class SavedParts:
    """What a checkpoint holds besides Accelerate's prepared objects."""

    accelerator: Accelerator
    folders: ExperimentFolders
    options: Options
    net_g: torch.nn.Module
    ema: AveragedModel | None
    net_d: torch.nn.Module | None
    pair_pool: TrainingPairPool | None
    adapter_settings: AdapterSettings | None  # stage 2 with LoRA: the adapters are saved, not the backbone
    pretrained_g: Path | None


def resume_folder(options: Options, folders: ExperimentFolders) -> Path | None:
    """The training state to resume from (None: a new run); a run folder with states needs an explicit resume."""
    resume = options.path.resume_state
    states = folders.training_states
    if resume is None:
        if checkpoints.saved_iterations(states):
            raise RunFolderError(
                f"{folders.root} already holds training states (up to iteration "
                f"{checkpoints.saved_iterations(states)[-1]}); continue it with path.resume_state=auto, "
                "or choose another name"
            )
        return None
    if resume == "auto":
        return checkpoints.latest_state(states)
    folder = Path(resume)
    problem = checkpoints.state_folder_problem(folder)
    if problem is not None:
        raise OptionsError(f"path.resume_state: {problem}")
    return folder


def load_state(parts: SavedParts, folder: Path) -> int:
    """Accelerate's part of a training state (all read with ``weights_only``), then sr_iqa's own; the iteration."""
    accelerator = parts.accelerator
    try:
        with checkpoints.accelerate_view(folder) as view:
            accelerator.load_state(str(view))
    except Exception as error:  # noqa: BLE001 - an unpickling refusal or a damaged file: one line
        raise checkpoints.damaged_state_error(folder, error) from None
    iteration, saved_processes = checkpoints.read_progress(folder)
    if saved_processes not in (None, accelerator.num_processes):
        raise RunFolderError(
            f"{folder} was saved by {saved_processes} process(es), resumed with {accelerator.num_processes}: "
            f"step {iteration}'s samples depend on the number of processes, so this run would skip or repeat "
            f"samples; resume with `accelerate launch --num_processes {saved_processes}`, or start a new run from "
            "its weights (path.pretrain_network_g)")
    problem = checkpoints.random_state_problem(folder, accelerator.process_index)
    if problem is not None:
        log.warning("%s: %s; training goes on from the saved weights and optimizer, but its random draws "
                    "(crops, degradations, sampler) are new: not bit-for-bit an uninterrupted run", folder, problem,
                    extra={"all_ranks": True})
    if parts.ema is not None:
        ema_state = checkpoints.read_ema_state(folder)
        if ema_state is None:
            raise RunFolderError(f"{folder} holds no EMA weights but train.ema_decay is "
                                 f"{parts.options.train.ema_decay}; resume with ema_decay 0 or start a new run")
        parts.ema.load_state_dict(ema_state)
    if parts.pair_pool is not None and not parts.pair_pool.load(folder, accelerator.process_index):
        log.warning("%s holds no pair pool for process %d (saved by fewer processes?); its pool starts "
                    "empty", folder, accelerator.process_index, extra={"all_ranks": True})
    return iteration


def diverged_error(folders: ExperimentFolders, iteration: int, what: str) -> NonFiniteError:
    last = checkpoints.saved_iterations(folders.training_states)
    kept = f"the last good checkpoint is iteration {last[-1]}" if last else "no checkpoint was saved"
    return NonFiniteError(f"training diverged at iteration {iteration}: {what}; nothing of it was saved and {kept}; "
                          "resume from it with a lower train.optim_g.lr (or fix the loss)")


def save_state(parts: SavedParts, iteration: int) -> None:
    """Weights (safetensors) and the full training state for ``iteration``; keeps the last K. Non-finite weights
    are never saved (nor older checkpoints pruned for them)."""
    accelerator, folders = parts.accelerator, parts.folders
    networks = {"net_g": parts.net_g, "net_g_ema": parts.ema, "net_d": parts.net_d}
    broken = [name for name, network in networks.items() if network is not None
              and not all(torch.isfinite(p).all() for p in network.parameters())]
    if broken:  # identical weights on every rank (DDP): all stop together
        raise diverged_error(folders, iteration, f"non-finite weights in {', '.join(broken)}")
    states = folders.training_states
    partial = checkpoints.partial_state_folder(states, iteration)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if parts.pair_pool is not None:  # every rank its own queue, into the folder save_state made
        parts.pair_pool.save(partial, accelerator.process_index)
        accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        checkpoints.save_own_state(partial, iteration, accelerator.num_processes,
                                   parts.ema.state_dict() if parts.ema is not None else None)
        checkpoints.publish_state(states, iteration)
        _save_weight_files(parts, iteration)
        checkpoints.prune(folders.models, states, parts.options.logger.keep_checkpoints)
        log.info("saved checkpoint at iteration %d", iteration)
    accelerator.wait_for_everyone()


def _save_weight_files(parts: SavedParts, iteration: int) -> None:
    models, network_g = parts.folders.models, parts.options.network_g
    generators = {"net_g": parts.accelerator.unwrap_model(parts.net_g)}
    if parts.ema is not None:
        generators["net_g_ema"] = parts.ema.module
    for stem, network in generators.items():
        if parts.adapter_settings is not None:  # the backbone is the pretrained file: save the adapters
            save_adapter(network, checkpoints.weights_path(models, stem.replace("net_g", "lora"), iteration),
                         parts.adapter_settings, network_g, parts.pretrained_g)
        else:
            save_weights(network, checkpoints.weights_path(models, stem, iteration), generator_metadata(network_g))
    if parts.net_d is not None:
        save_weights(parts.accelerator.unwrap_model(parts.net_d), checkpoints.weights_path(models, "net_d", iteration))
