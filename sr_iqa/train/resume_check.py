"""Resuming with changed options: each change since the saved state is either applied (logged) or refused.

The training state restores the weights, the optimizers, the scheduler and the random states; an option that
they decide (the network's shape, the learning rate, the seed) would be silently ignored on resume while
``options.yml`` recorded the new value. Those changes stop the resume in one error that lists them all."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import OmegaConf

from sr_iqa.config.loader import flat_options, read_yaml
from sr_iqa.config.schema import Options
from sr_iqa.errors import OptionsError, RunFolderError

log = logging.getLogger("sr_iqa.train")

# Prefixes of dotted keys that the saved state decides: the weights' shapes, the optimizers' and the scheduler's
# hyper-parameters (restored from the state), the random states.
DECIDED_BY_STATE = {
    "scale": "the saved weights are for the old value",
    "network_g": "the saved weights have the old network's shape",
    "network_d": "the saved weights have the old network's shape",
    "lora": "the saved adapters have the old rank and targets",
    "train.optim_g": "the optimizer continues from its saved state and would ignore it",
    "train.optim_d": "the optimizer continues from its saved state and would ignore it",
    "train.scheduler": "the scheduler continues from its saved state and would ignore it",
    "manual_seed": "the random states are restored from the saved state and would ignore it",
    "datasets.train.batch_size_per_gpu": "step N's samples depend on the batch size: the run would skip or repeat "
                                         "samples",
    "train.gradient_accumulation_steps": "the data position is iterations x micro-batches per iteration: the run "
                                         "would skip or repeat micro-batches",
}
# The training-pair pool is saved with its rows' shapes: with a pool, these cannot change.
POOL_SHAPE = ("datasets.train.queue_size", "datasets.train.gt_size")  # (the batch size: decided by the state)
NOT_COMPARED = ("name", "path.resume_state", "path.experiments_root", "path.pretrain_network_g",
                "path.pretrain_network_d")  # where the run is, and weights that the saved state replaces


def _governing(key: str, table: dict[str, str]) -> str | None:
    for prefix, reason in table.items():
        if key == prefix or key.startswith(prefix + "."):
            return reason
    return None


def check_changed_options(options: Options, state_folder: Path) -> None:
    """Compare ``options`` with the ``options.yml`` of the run that saved ``state_folder``
    (``<run>/training_states/<iteration>``): log what is applied, refuse what the state decides."""
    saved_file = state_folder.parent.parent / "options.yml"
    # Without the saved options a changed learning rate, network or seed would be ignored without a word.
    fix = ("the options that the state decides (network, optimizer, scheduler, seed) cannot be compared with the "
           "saved run's; put the run's options.yml back, or start a new run from its weights "
           "(path.pretrain_network_g)")
    if not saved_file.is_file():
        raise RunFolderError(f"{saved_file}: missing beside {state_folder.parent}; {fix}")
    try:
        saved_options = OmegaConf.to_container(read_yaml(saved_file))
    except (OptionsError, OSError) as error:
        reason = str(error).removeprefix(f"{saved_file}: ")
        raise RunFolderError(f"{saved_file}: cannot be read ({reason}); {fix}") from None
    saved = flat_options(saved_options)
    current = flat_options(options)
    pool = bool(saved.get("datasets.train.queue_size") or current.get("datasets.train.queue_size"))
    refused, applied = [], []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if old == new or key in NOT_COMPARED:
            continue
        reason = _governing(key, DECIDED_BY_STATE)
        if reason is None and pool and key in POOL_SHAPE:
            reason = "the saved training-pair pool holds rows of the old shape"
        line = f"'{key}' {old!r} -> {new!r}"
        if reason is None:
            applied.append(line)
        else:
            refused.append(f"{line}: {reason}")
    if refused:
        raise OptionsError(
            f"resuming {state_folder} with options changed since it was saved, which the saved state decides:\n  "
            + "\n  ".join(refused)
            + f"\nundo these changes to resume (the saved ones are in {saved_file}), or start a new run under another "
              "name from this run's weights (path.pretrain_network_g)")
    for line in applied:
        log.info("resume: changed since the saved state, applied: %s", line)
