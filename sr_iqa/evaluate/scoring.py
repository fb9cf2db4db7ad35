"""Score SR outputs with pyiqa metrics against the original GT, and print the result as a table."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from sr_iqa.data.datasets import EvalGroup
from sr_iqa.iqa.metrics import create_metric, is_full_reference

log = logging.getLogger("sr_iqa.evaluate")


@dataclass
class MetricSet:
    """Each pyiqa metric built once, with its direction and whether it needs a reference."""

    names: Sequence[str]
    device: torch.device
    weights_dir: Path | None = None
    metric_options: dict[str, dict] = field(default_factory=dict)
    metrics: dict[str, torch.nn.Module] = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = {name: create_metric(name, self.device, weights_dir=self.weights_dir,
                                            options=self.metric_options.get(name))
                        for name in self.names}

    def lower_better(self, name: str) -> bool:
        return bool(self.metrics[name].lower_better)

    @torch.no_grad()
    def score(self, image: torch.Tensor, reference: torch.Tensor | None, name: str = "image") -> dict[str, float]:
        """Scores of one 3xHxW image in [0, 1]; FR metrics are skipped when ``reference`` is None. A metric
        that cannot score the image (NIQE on a flat image) gives NaN, with a warning naming both."""
        image = image[None].to(self.device).clamp(0, 1)
        scores = {}
        for metric_name, metric in self.metrics.items():
            if is_full_reference(metric) and reference is None:
                continue
            inputs = (image, reference[None].to(self.device)) if is_full_reference(metric) else (image,)
            try:
                scores[metric_name] = float(metric(*inputs).item())
            except (RuntimeError, ValueError) as error:
                log.warning("%s cannot score %s (%s); recorded as NaN", metric_name, name,
                            str(error).splitlines()[0][:120])
                scores[metric_name] = float("nan")
        return scores


def mean_scores(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    totals: dict[str, list[float]] = {}
    for row in rows:
        for name, value in row.items():
            totals.setdefault(name, []).append(value)
    return {name: sum(values) / len(values) for name, values in totals.items()}


Upscaler = Callable[[torch.Tensor], torch.Tensor]


def bicubic_upscaler(scale: int) -> Upscaler:
    return lambda lq: F.interpolate(lq, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


@torch.no_grad()
def evaluate_upscaler(upscale: Upscaler, pairs: Iterable[EvalGroup], metric_set: MetricSet,
                      device: torch.device) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Mean scores of ``upscale(LR)`` against each original, and the SR images by name."""
    rows, outputs = [], {}
    for pair in pairs:
        sr = upscale(pair.lq[None].to(device))[0].clamp(0, 1)
        sr = sr[:, : pair.gt.shape[-2], : pair.gt.shape[-1]]
        outputs[pair.name] = sr.cpu()
        rows.append(metric_set.score(sr, pair.gt, pair.name))
    return mean_scores(rows), outputs


def format_table(results: dict[str, dict[str, float]], metric_set: MetricSet) -> str:
    """A Markdown table: one row per method, one column per metric, with its direction."""
    names = list(metric_set.names)
    header = ["Method"] + [f"{n} {'↓' if metric_set.lower_better(n) else '↑'}" for n in names]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for method, scores in results.items():
        cells = [f"{scores[n]:.4f}" if n in scores else "—" for n in names]
        lines.append("| " + " | ".join([method, *cells]) + " |")
    return "\n".join(lines)
