"""The stage-1 model's validation scores and SR images, the yardstick of stage 2's gaming measures.

Rebuilt from the pretrained file rather than copied from the network being trained, so a resumed
stage-2 run compares against the same stage-1 model as the run that started it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import torch
from accelerate import Accelerator

from sr_iqa.data.datasets import EvalGroupDataset
from sr_iqa.evaluate.gaming import gaming_report, is_gaming, structured_noise_score
from sr_iqa.evaluate.metric_set import MetricSet, Upscaler, evaluate_upscaler, gathered

log = logging.getLogger("sr_iqa.train")


class Stage1Reference:
    """Computed on first use (one validation pass of the stage-1 generator), then kept in memory."""

    def __init__(self, make_upscaler: Callable[[], Upscaler], val_set: EvalGroupDataset, metric_set: MetricSet,
                 device: torch.device, accelerator: Accelerator | None = None) -> None:
        """With ``accelerator``, each process computes its share (the same share as the validation's)."""
        self._make_upscaler = make_upscaler
        self._accelerator = accelerator
        self._val_set = val_set
        self._metric_set = metric_set
        self._device = device
        self._results: dict[str, float] | None = None
        self._outputs: dict[str, torch.Tensor] = {}

    @property
    def results(self) -> dict[str, float]:
        """The stage-1 model's validation scores."""
        self._compute()
        return dict(self._results)

    def _compute(self) -> None:
        if self._results is None:
            self._results, self._outputs = evaluate_upscaler(self._make_upscaler(), self._val_set, self._metric_set,
                                                             self._device, self._accelerator)
            log.info("stage-1 reference: %s", "  ".join(f"{n} {v:.4f}" for n, v in self._results.items()))

    def measures(self, results: Mapping[str, float], outputs: Mapping[str, torch.Tensor],
                 optimised: Mapping[str, float], monitors: Sequence[str]) -> dict[str, float]:
        """Changes against stage 1 (percent, positive = better), the gaming gap and the structured-noise score
        (``outputs``: this process's share of the SR images, as ``evaluate_upscaler`` returns them;
        ``optimised``: Q's metrics and weights); logs a warning when Q rises while the held-out metrics fall."""
        self._compute()
        lower_better = {name: self._metric_set.lower_better(name) for name in (*optimised, *monitors)}
        report = gaming_report(results, self._results, optimised, monitors, lower_better)
        scores = gathered(self._accelerator, [structured_noise_score(outputs[name] - self._outputs[name])
                                              for name in outputs])  # this process's share, then all in order
        report["structured_noise"] = sum(scores) / len(scores)
        if is_gaming(report):
            held_out = [name for name in monitors if name not in optimised]
            log.warning("the optimised %s improved by %.2f%% while the held-out metrics (%s) changed by %.2f%%: "
                        "the metric may be gamed (gaming gap %.2f, structured noise %.3f grey levels)",
                        " + ".join(optimised), report["optimised_change"], ", ".join(held_out),
                        report["held_out_change"], report["gaming_gap"], report["structured_noise"])
        return report
