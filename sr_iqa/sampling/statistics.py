"""What the sampler chose, per print interval: slots, labels, and Q of the chosen GT against the best.

The best is the best Q the sampler saw: at the crop for AMO, on the full image for SMA and SMP.

Counted on the device from the batches actually trained on (after the pair pool), summed over
processes only when reported, so it costs no synchronisation per step.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator

CHOSEN_LABELS = ("original", "Positive", "Similar", "Negative", "unlabelled")


class SamplingStatistics:
    def __init__(self, slot_names: list[str], device: torch.device, q_metric: str = "Q") -> None:
        """``q_metric``: what Q is (the sampler's metric, or ``combined``), named in the log line with its
        orientation: Q is higher-better, so a lower-better metric's scores show negated (NIQE 8.3 is Q -8.3)."""
        self.slot_names = slot_names
        self.q_metric = q_metric
        self.slots = torch.zeros(len(slot_names), device=device)
        self.labels = torch.zeros(len(CHOSEN_LABELS), device=device)
        self.quality = torch.zeros(3, device=device)  # sum of chosen Q, sum of best Q, count

    def update(self, data: dict[str, torch.Tensor]) -> None:
        chosen = data["gt_index"].long()
        self.slots += torch.bincount(chosen, minlength=len(self.slot_names)).float()
        codes = data["labels"].long().gather(1, chosen[:, None]).squeeze(1)
        buckets = torch.where(chosen == 0, 0, torch.where(codes >= 0, codes + 1, len(CHOSEN_LABELS) - 1))
        self.labels += torch.bincount(buckets, minlength=len(CHOSEN_LABELS)).float()
        if "chosen_q" in data:
            self.quality += torch.stack([data["chosen_q"].sum(), data["best_q"].sum(),
                                         torch.tensor(float(chosen.numel()), device=self.quality.device)])

    def report(self, accelerator: Accelerator) -> tuple[str, dict[str, float]]:
        """A log line and TensorBoard scalars for the interval; then starts a new interval."""
        slots = accelerator.reduce(self.slots, reduction="sum").cpu()
        labels = accelerator.reduce(self.labels, reduction="sum").cpu()
        quality = accelerator.reduce(self.quality, reduction="sum").cpu()
        total = max(float(slots.sum()), 1.0)
        scalars = {f"sampler/slot_{name}": float(count) / total for name, count in zip(self.slot_names, slots,
                                                                                        strict=True)}
        scalars |= {f"sampler/label_{name}": float(count) / total for name, count in zip(CHOSEN_LABELS, labels,
                                                                                          strict=True)}
        text = ("chosen slots " + " ".join(f"{n} {100 * float(c) / total:.0f}%" for n, c in
                                           zip(self.slot_names, slots, strict=True) if c)
                + "; labels " + " ".join(f"{n} {100 * float(c) / total:.0f}%" for n, c in
                                         zip(CHOSEN_LABELS, labels, strict=True) if c))
        if quality[2] > 0:
            scalars["sampler/chosen_q"] = float(quality[0] / quality[2])
            scalars["sampler/best_q"] = float(quality[1] / quality[2])
            text += (f"; Q chosen {scalars['sampler/chosen_q']:.3f} vs best {scalars['sampler/best_q']:.3f} "
                     f"(Q: {self.q_metric} oriented so that higher is better)")
        for tensor in (self.slots, self.labels, self.quality):
            tensor.zero_()
        return text, scalars
