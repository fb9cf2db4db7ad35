"""Which weights file a run folder stands for, and whether a training still writes it: plain file-system reads
(no torch), so that ``eval``, ``infer`` and ``export`` answer a wrong checkpoint before anything heavy loads."""

from __future__ import annotations

import re
from pathlib import Path

from sr_iqa import writer_lock
from sr_iqa.errors import OptionsError

GENERATOR_STEMS = ("net_g_ema", "net_g")  # a run folder's generator: the EMA weights when there are any


def newest_weights_file(path: Path, stems: tuple[str, ...] = GENERATOR_STEMS) -> Path:
    """A weights file as given, or for a run folder its newest ``<stem>_<iteration>.safetensors``, trying
    ``stems`` in order. A folder without any names the training that may still be writing it."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise OptionsError(f"no weights file or run folder at {path}")
    models = path / "models" if (path / "models").is_dir() else path
    for stem in stems:
        found = [(int(match[1]), p) for p in models.glob(f"{stem}_*.safetensors")
                 if (match := re.fullmatch(rf"{re.escape(stem)}_(\d+)", p.stem))]
        if found:
            return max(found)[1]
    training = training_holder(path)
    wanted = " or ".join(f"{stem}_*.safetensors" for stem in stems)
    if training is not None:
        raise OptionsError(f"{path}: no {wanted} in {models} yet: it is still training ({training}); wait for its "
                           "first checkpoint (logger.save_checkpoint_freq)")
    raise OptionsError(f"{path}: no {wanted} in {models}; point at a finished run or at a weights file")


def training_holder(run_folder: Path) -> str | None:
    """The training that holds the run folder's lock now (pid, host, start), or None."""
    return writer_lock.holder(writer_lock.run_lock_file(run_folder))
