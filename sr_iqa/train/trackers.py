"""Experiment trackers through Accelerate: TensorBoard (``logger.use_tb_logger``) and Weights & Biases (BasicSR's
``logger.wandb: {project, resume_id}``), the resolved options as hyper-parameters, validation crops as images.

W&B follows BasicSR's rule: it is on when ``logger.wandb.project`` is set. Its run id is ``resume_id`` when
given, else the id this run folder's first start chose (``logs/wandb_run_id``), so that ``path.resume_state=auto``
continues the same W&B run. ``WANDB_MODE=offline`` keeps everything in ``logs/wandb`` (``wandb sync`` later).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, TensorBoardTracker, WandBTracker

from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.config.loader import flat_options
from sr_iqa.config.schema import LoggerOptions, Options
from sr_iqa.errors import OptionsError

TENSORBOARD_FOLDER = "tb"  # logs/tb, as before W&B came
WANDB_RUN_ID_FILE = "wandb_run_id"


def make_trackers(options: Options, logs: Path, wandb_id: str | None) -> list[GeneralTracker]:
    """The trackers this run logs to (none: Accelerate's ``log`` does nothing); nothing starts before
    ``Accelerator.init_trackers``, which the main process calls once the run folder exists."""
    trackers: list[GeneralTracker] = []
    if options.logger.use_tb_logger:
        trackers.append(TensorBoardTracker(TENSORBOARD_FOLDER, str(logs)))
    if wandb_id is not None:
        trackers.append(WandBTracker(options.logger.wandb.project, name=options.name, dir=str(logs),
                                     resume="allow", id=wandb_id))
    return trackers


def wandb_run_id(logger: LoggerOptions, logs: Path, resuming: bool) -> str | None:
    """None without W&B; else ``resume_id``, or (resuming) the id the run folder keeps, or a new one. Read, not
    written: the trainer writes it once the run folder is its own."""
    if logger.wandb is None or not logger.wandb.project:
        return None
    try:
        import wandb  # noqa: F401 - only to say what is missing before any work
    except ImportError:
        raise OptionsError("'logger.wandb.project' is set but the wandb package is not installed: "
                           "pip install wandb (or remove logger.wandb)") from None
    if logger.wandb.resume_id:
        return logger.wandb.resume_id
    stored = logs / WANDB_RUN_ID_FILE
    if resuming and stored.is_file():
        return stored.read_text().strip()
    return secrets.token_hex(4)  # W&B's ids are short lower-case alphanumerics


def hyperparameters(options: Options) -> dict[str, bool | int | float | str]:
    """The resolved options as flat ``a.b.c`` keys with scalar values, the form TensorBoard's hparams and W&B's
    config both take (lists and None as their text)."""
    return {key: value if isinstance(value, (bool, int, float, str)) else str(value)
            for key, value in flat_options(options).items()}


def store_hyperparameters(accelerator: Accelerator, values: dict[str, bool | int | float | str]) -> None:
    """``values`` as every tracker's hyper-parameters (main process). TensorBoard's go into the run's own folder,
    with ``hparams.yml`` beside them: Accelerate's ``store_init_configuration`` writes them to a folder named by
    the time, which TensorBoard lists as a second run of every training."""
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_hparams(values, metric_dict={}, run_name=".")
            tracker.writer.flush()
            write_text_atomically(Path(tracker.logging_dir) / "hparams.yml", yaml.safe_dump(values))
        else:
            tracker.store_init_configuration(values)


def comparison_strip(lq: torch.Tensor, sr: torch.Tensor, gt: torch.Tensor, scale: int,
                     size: int = 128) -> torch.Tensor:
    """LR (nearest, at SR's size) | SR | GT: the centre ``size`` x ``size`` of the GT (smaller images whole),
    3 x size x 3*size in [0, 1]."""
    height, width = gt.shape[-2:]
    size = min(size, height, width) // scale * scale
    top, left = (height - size) // 2 // scale * scale, (width - size) // 2 // scale * scale
    lq_crop = lq[:, top // scale: (top + size) // scale, left // scale: (left + size) // scale]
    lq_big = F.interpolate(lq_crop[None].float(), scale_factor=scale, mode="nearest")[0]
    crops = [lq_big, sr[:, top: top + size, left: left + size], gt[:, top: top + size, left: left + size]]
    return torch.cat([crop.float().cpu().clamp(0, 1) for crop in crops], dim=-1)


def log_images(accelerator: Accelerator, images: dict[str, torch.Tensor], step: int) -> None:
    """3xHxW images in [0, 1] to every tracker that shows images, in the form each takes."""
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({name: image[None] for name, image in images.items()}, step)
        elif tracker.name == "wandb":
            tracker.log_images({name: [image.permute(1, 2, 0).numpy()] for name, image in images.items()}, step)
