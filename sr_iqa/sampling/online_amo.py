"""Online AMO, the paper's form: Q of every GT's training crop measured on the device at every step, the argmax
supervising. The dataset reads every GT's crop (``OnlineAmoCrops``); ``OnlineAmo`` chooses among them in the
training step, before the sample's flips, as cached AMO chooses on the unflipped crop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from sr_iqa.config.q_metrics import weighted_metrics
from sr_iqa.config.schema import AmoMode, IqaOptions, QChoice, SamplerOptions, SamplerType
from sr_iqa.data.datasets import LABEL_CODES, CropBox, augment_tensors
from sr_iqa.data.groups import Group
from sr_iqa.iqa.combined_q import CombinedQ, MetricScale
from sr_iqa.iqa.metrics import create_metric, score_each
from sr_iqa.iqa.weights import weights_folder
from sr_iqa.score_rules import oriented


def is_online_amo(sampler: SamplerOptions) -> bool:
    return sampler.type is SamplerType.amo and sampler.mode is AmoMode.online


@dataclass
class OnlineAmoCrops:
    """The dataset's side of online AMO: it reads every GT's crop as candidates (``with_candidates``); the choice
    is made later on the device, so the dataset's own choice is the original, whose crop LR synthesis uses."""

    box_stride: int = 1

    def choose(self, position: int, group: Group, box: CropBox, rng: np.random.Generator) -> int:
        return 0

    def quality(self, position: int, group: Group, box: CropBox) -> np.ndarray | None:
        return None


@torch.no_grad()
def online_amo_choice(candidates: torch.Tensor, mask: torch.Tensor, metric: torch.nn.Module,
                      lower_better: bool, worst: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's AMO: Q of every GT crop (B x n x 3 x H x W) on the device; returns (argmax index, Q per GT);
    ``worst``: the argmin among the scorable candidates (the choice contrast's control arm)."""
    batch, count = candidates.shape[:2]
    q = score_each(metric, candidates.flatten(0, 1))[0].view(batch, count)  # NaN where a crop cannot be scored
    q = oriented(q, lower_better)
    q = q.nan_to_num(nan=float("-inf")).masked_fill(~mask, float("-inf"))
    ranked = torch.where(torch.isfinite(q), -q, q) if worst else q
    return ranked.argmax(dim=1), q  # argmax takes the first of equal maxima, as the cached AMO does


class OnlineAmo:
    """The device's side: Q (inference form, never prepared, in eval) of each candidate crop, the argmax taken
    among the GTs the sampler allows."""

    def __init__(self, metric: torch.nn.Module, excluded_label_codes: torch.Tensor | None,
                 include_original: bool = True, worst: bool = False) -> None:
        self.metric = metric
        self.excluded_label_codes = excluded_label_codes
        self.include_original = include_original
        self.worst = worst

    @classmethod
    def from_options(cls, sampler: SamplerOptions, iqa: IqaOptions, device: torch.device,
                     scales: Mapping[str, MetricScale] | None = None) -> OnlineAmo | None:
        """None unless the sampler is online AMO; ``sampler.metrics`` (several metrics) needs their ``scales``."""
        if not is_online_amo(sampler):
            return None
        metrics = {name: create_metric(name, device, weights_dir=weights_folder(None, iqa),
                                       options=iqa.metric_options.get(name)) for name in weighted_metrics(sampler)}
        metric = CombinedQ(metrics, scales) if scales else metrics[sampler.metric]
        excluded = (torch.tensor([LABEL_CODES[label] for label in sampler.exclude_labels], device=device)
                    if sampler.exclude_labels else None)
        return cls(metric, excluded, sampler.include_original, sampler.choose is QChoice.worst)

    def choose(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch with its candidates replaced by the chosen GT (flipped as the sample), its index and Q."""
        batch = dict(batch)
        candidates, mask = batch.pop("candidates"), batch.pop("candidate_mask")
        if self.excluded_label_codes is not None:  # sampler.exclude_labels: never the argmax
            mask = mask & ~torch.isin(batch["labels"], self.excluded_label_codes)
        if not self.include_original:  # enhanced GTs only; the original where a sample has no other candidate
            enhanced = mask.clone()
            enhanced[:, 0] = False
            mask = torch.where(enhanced.any(dim=1, keepdim=True), enhanced, mask)
        flips = batch.pop("flips")
        chosen, q = online_amo_choice(candidates, mask, self.metric, bool(self.metric.lower_better), self.worst)
        rows = torch.arange(len(chosen), device=chosen.device)
        return batch | {"gt": augment_tensors(candidates[rows, chosen], flips), "gt_index": chosen,
                        "chosen_q": q[rows, chosen], "best_q": q.max(dim=1).values}
