"""Checkpoint files: atomic writes, finding the newest training state, keeping the last K.

A training state lives in ``training_states/<iteration>/`` (written by
``accelerator.save_state`` into a hidden temporary folder first and renamed when complete),
so a run killed while saving never leaves a half-written state that ``resume_state: auto``
would pick up.

sr_iqa's own part of a state (the iteration, the EMA weights) is JSON and safetensors, not
Accelerate's custom objects: Accelerate unpickles those with ``weights_only=False``, so a file
planted in a state folder could run code on resume. Everything else Accelerate reads with
``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate.utils.other import TORCH_SAFE_GLOBALS
from safetensors import SafetensorError
from safetensors.torch import load_file

from sr_iqa.atomic_files import remove_partial_files, write_text_atomically
from sr_iqa.errors import RunFolderError, first_line
from sr_iqa.json_text import parse_json
from sr_iqa.tensor_files import save_tensors

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


def prune(models: Path, training_states: Path, keep: int) -> None:
    """Keep the newest ``keep`` iterations of training states and of every weights stem."""
    for iteration in saved_iterations(training_states)[:-keep]:
        # Renamed out of the listing first: a kill during the removal leaves a hidden leftover, not a numbered
        # state with half its files that a resume could pick.
        doomed = training_states / f".pruned-{iteration}"
        os.replace(state_folder(training_states, iteration), doomed)
        shutil.rmtree(doomed)
    by_stem: dict[str, list[tuple[int, Path]]] = {}
    for path in models.glob("*.safetensors"):
        match = _WEIGHTS_PATTERN.match(path.name)
        if match:
            by_stem.setdefault(match["stem"], []).append((int(match["iteration"]), path))
    for entries in by_stem.values():
        for _, path in sorted(entries)[:-keep]:
            path.unlink()


def remove_leftovers(models: Path, training_states: Path) -> list[Path]:
    """What a killed save or prune left: ``.partial-*`` and ``.pruned-*`` state folders, ``.*.partial`` weights."""
    leftovers = remove_partial_files(models)
    if training_states.is_dir():
        for folder in sorted(training_states.glob(".partial-*")) + sorted(training_states.glob(".pruned-*")):
            shutil.rmtree(folder, ignore_errors=True)
            leftovers.append(folder)
    return leftovers


PROGRESS_FILE = "progress.json"  # {"iteration": N, "num_processes": W}
EMA_FILE = "ema.safetensors"  # the EMA model's state dict (AveragedModel: n_averaged and module.*)
# States saved before these files existed hold the same data as Accelerate's custom objects 0 and 1.
LEGACY_FILES = {PROGRESS_FILE: "custom_checkpoint_0.pkl", EMA_FILE: "custom_checkpoint_1.pkl"}


def save_own_state(folder: Path, iteration: int, num_processes: int,
                   ema_state: dict[str, torch.Tensor] | None) -> None:
    """The iteration, the number of processes that reached it (step N's samples depend on it) and the EMA
    weights, into a state folder (main process)."""
    write_text_atomically(folder / PROGRESS_FILE,
                          json.dumps({"iteration": iteration, "num_processes": num_processes}) + "\n")
    if ema_state is not None:
        save_tensors(ema_state, folder / EMA_FILE)


def damaged_state_error(path: Path, error: BaseException) -> RunFolderError:
    """One line for a state file (or folder) that does not load with tensors only."""
    return RunFolderError(f"{path}: damaged, or holds objects that would run code when loaded ({first_line(error)}); "
                          "resume from another state (path.resume_state: training_states/<iteration>) or start a "
                          "new run")


def _legacy(folder: Path, name: str) -> object | None:
    path = folder / LEGACY_FILES[name]
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any refusal or damage means the same to the user
        raise damaged_state_error(path, error) from None


def read_progress(folder: Path) -> tuple[int, int | None]:
    """(iteration, number of processes that saved it; None for states saved before it was recorded)."""
    path = folder / PROGRESS_FILE
    try:
        state = parse_json(path.read_text()) if path.is_file() else _legacy(folder, PROGRESS_FILE)
        iteration, processes = state["iteration"], state.get("num_processes")
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise damaged_state_error(path, error) from None
    if not _whole(iteration) or (folder.name.isdigit() and iteration != int(folder.name)):
        raise _edited_state_error(path, f"iteration {str(iteration)[:30]}, not its folder's {folder.name}")
    if processes is not None and not (_whole(processes) and 1 <= processes <= 1 << 20):
        raise _edited_state_error(path, f"num_processes {str(processes)[:30]}, not a number of processes")
    return iteration, processes


def _edited_state_error(path: Path, what: str) -> RunFolderError:
    return RunFolderError(f"{path}: records {what} (an edited or damaged state); resume from another state "
                          "(path.resume_state: training_states/<iteration>) or start a new run")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_iteration(folder: Path) -> int:
    return read_progress(folder)[0]


def state_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` (a ``path.resume_state``) is not a training state, in words that say what it is instead."""
    if not folder.is_dir():
        return f"no training-state folder at {folder}"
    if (folder / "training_states").is_dir():
        saved = saved_iterations(folder / "training_states")
        example = f"{folder / 'training_states' / str(saved[-1])}" if saved else f"{folder}/training_states/<N>"
        return (f"{folder} is a run folder, not one of its training states; give {example}, or "
                "path.resume_state=auto with this run's name")
    if not (folder / PROGRESS_FILE).is_file() and not (folder / LEGACY_FILES[PROGRESS_FILE]).is_file():
        what = "is empty" if not any(folder.iterdir()) else f"holds no {PROGRESS_FILE}"
        return (f"{folder} {what}: not a training state (a run's training_states/<iteration> folder, written by "
                "sr-iqa train)")
    return None


def read_ema_state(folder: Path) -> dict[str, torch.Tensor] | None:
    path = folder / EMA_FILE
    if not path.is_file():
        return _legacy(folder, EMA_FILE)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise damaged_state_error(path, error) from None


def random_state_problem(folder: Path, process_index: int) -> str | None:
    """Why the process's random state in ``folder`` would not be restored, or None. Accelerate only logs a missing
    or damaged ``random_states_<rank>.pkl`` at info level and goes on, which silently breaks an exact resume."""
    path = folder / f"random_states_{process_index}.pkl"
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        with torch.serialization.safe_globals(TORCH_SAFE_GLOBALS):
            torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - damage of any kind means the same to the user
        return f"{path.name} does not load ({first_line(error)})"
    return None


@contextlib.contextmanager
def accelerate_view(folder: Path) -> Iterator[Path]:
    """The state folder as ``accelerator.load_state`` should see it: without ``custom_checkpoint_*.pkl``, which it
    would unpickle with ``weights_only=False`` (states of older sr_iqa versions hold them, and sr_iqa reads those
    itself, tensors only; anything else there is not sr_iqa's). Links in a temporary folder, the state untouched."""
    pickles = set(folder.glob("custom_checkpoint_*.pkl"))
    if not pickles:
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="sr_iqa_state_") as view:
        for entry in folder.iterdir():
            if entry not in pickles:
                (Path(view) / entry.name).symlink_to(entry.resolve())
        yield Path(view)
