"""Score SR outputs with pyiqa metrics (each network built once): the validation path of training."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import gather_object

from sr_iqa.data.datasets import EvalGroup
from sr_iqa.errors import MetricUnavailableError
from sr_iqa.iqa.metrics import create_metric, is_full_reference, score_each
from sr_iqa.progress import progress_bar
from sr_iqa.score_rules import nan_aware_means

log = logging.getLogger("sr_iqa.evaluate")


@dataclass
class MetricSet:
    """Each pyiqa metric built once, with its direction and whether it needs a reference."""

    names: Sequence[str]
    device: torch.device
    weights_dir: Path | None = None
    metric_options: dict[str, dict] = field(default_factory=dict)
    skip_unavailable: bool = False  # leave out metrics that cannot run here (recorded in ``skipped``)
    metrics: dict[str, torch.nn.Module] = field(init=False)
    skipped: dict[str, str] = field(init=False)  # metric name -> what is missing

    def __post_init__(self) -> None:
        self.metrics, self.skipped = {}, {}
        for name in self.names:
            try:
                self.metrics[name] = create_metric(name, self.device, weights_dir=self.weights_dir,
                                                   options=self.metric_options.get(name))
            except MetricUnavailableError as error:
                if not self.skip_unavailable:
                    raise
                self.skipped[name] = str(error)
                log.warning("skipping %s: %s", name, error)
        self.names = list(self.metrics)

    def lower_better(self, name: str) -> bool:
        return bool(self.metrics[name].lower_better)

    @torch.no_grad()
    def no_reference_names(self) -> list[str]:
        return [name for name, metric in self.metrics.items() if not is_full_reference(metric)]

    def score_batch(self, images: torch.Tensor, references: torch.Tensor | None, name: str = "image",
                    with_no_reference: bool = True, only: Collection[str] | None = None) -> dict[str, list[float]]:
        """Per-image scores of an Nx3xHxW batch in [0, 1], one metric call per metric (``only``: of these). FR
        metrics are skipped without ``references`` (Nx3xHxW), NR metrics with ``with_no_reference=False``. A metric
        that cannot score the batch (NIQE on a flat image) gives NaN, with a warning naming both."""
        images = images.to(self.device).clamp(0, 1)
        scores = {}
        for metric_name, metric in self.metrics.items():
            if only is not None and metric_name not in only:
                continue
            full_reference = is_full_reference(metric)
            if (full_reference and references is None) or (not full_reference and not with_no_reference):
                continue
            values, reason = score_each(metric, images, references.to(self.device) if full_reference else None)
            if reason is not None:
                log.warning("%s cannot score %s (%s); recorded as NaN", metric_name, name, reason)
            scores[metric_name] = values.tolist()
        return scores

    def score(self, image: torch.Tensor, reference: torch.Tensor | None, name: str = "image",
              with_no_reference: bool = True) -> dict[str, float]:
        """Scores of one 3xHxW image in [0, 1] (see ``score_batch``)."""
        batch = self.score_batch(image[None], None if reference is None else reference[None], name,
                                 with_no_reference)
        return {metric_name: values[0] for metric_name, values in batch.items()}


Upscaler = Callable[[torch.Tensor], torch.Tensor]


def bicubic_upscaler(scale: int) -> Upscaler:
    return lambda lq: F.interpolate(lq, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


def gathered(accelerator: Accelerator | None, items: list) -> list:
    """Every process's ``items``, concatenated in rank order (each its own list with one process)."""
    return gather_object(items) if accelerator is not None and accelerator.num_processes > 1 else items


@torch.no_grad()
def evaluate_upscaler(upscale: Upscaler, pairs: Sequence[EvalGroup], metric_set: MetricSet, device: torch.device,
                      accelerator: Accelerator | None = None, desc: str | None = None
                      ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Mean scores of ``upscale(LR)`` against each original, and the SR images by name. With ``accelerator``, each
    process scores its contiguous share and the per-image rows are gathered in order, so every process gets the
    means one process would compute (same rows, same order); the images are this process's share. ``desc``: a
    progress bar of the main process's share under that name (a validation of large images takes minutes)."""
    rows, outputs = [], {}
    positions = list(range(len(pairs)))
    share = positions if accelerator is None else _share(accelerator, positions)
    shown = desc is not None and (accelerator is None or accelerator.is_main_process)
    for position in progress_bar(iterable=share, desc=desc, unit="image", leave=False, disable=not shown):
        pair = pairs[position]
        sr = upscale(pair.lq[None].to(device))[0].clamp(0, 1)
        sr = sr[:, : pair.gt.shape[-2], : pair.gt.shape[-1]]
        outputs[pair.name] = sr.cpu()
        rows.append(metric_set.score(sr, pair.gt, pair.name))
    return nan_aware_means(gathered(accelerator, rows))[0], outputs  # NaN images left out (logged as they happen)


def _share(accelerator: Accelerator, positions: list[int]) -> list[int]:
    with accelerator.split_between_processes(positions) as mine:
        return list(mine)
