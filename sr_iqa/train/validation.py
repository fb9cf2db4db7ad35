"""Validation during training: every ``datasets.val*`` set, each process scoring its share.

Each process upscales and scores a contiguous share of each set and the per-image rows are gathered in
order, so the results equal one process's (``evaluate_upscaler``), and no process waits at a collective for
more than one image's work of another: no set's size, no metric's cost, can run a process group into its
timeout (``train.process_group_timeout``). Each process writes the SR images of its share; the main process
writes the records, the log and the trackers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from sr_iqa.config.q_metrics import weighted_metrics
from sr_iqa.config.schema import Options, ValDatasetOptions
from sr_iqa.data.datasets import EvalGroupDataset
from sr_iqa.data.image_io import write_rgb
from sr_iqa.data.sources import group_index
from sr_iqa.evaluate.metric_set import MetricSet, Upscaler, evaluate_upscaler
from sr_iqa.main_process import built_on_main
from sr_iqa.train import trackers
from sr_iqa.train.experiment import ExperimentFolders
from sr_iqa.train.stage1_reference import Stage1Reference

log = logging.getLogger("sr_iqa.train")


@dataclass
class ValidationSet:
    """``name``: how its results are logged (``val/<name>/<metric>``; the main set ``val/<metric>``)."""

    name: str
    dataset: EvalGroupDataset
    main: bool


def validation_sets(options: Options, accelerator: Accelerator) -> list[ValidationSet]:
    """``datasets.val`` then ``datasets.extra_val``, indexed and checked once on the main process (bad data stops
    the run here) and handed to the others, which read only their share's images. The main set is
    ``datasets.val``, or without one the first of the others (BasicSR's files may name only ``val_1``)."""
    blocks: list[tuple[str, ValDatasetOptions, bool]] = []
    if options.datasets.val is not None:
        blocks.append((options.datasets.val.name, options.datasets.val, True))
    for key, block in options.datasets.extra_val.items():  # its own name (BasicSR's `name: Set14`), else its key
        taken = {name for name, _, _ in blocks} | {ValDatasetOptions.name}  # the default: no name given
        blocks.append((block.name if block.name not in taken else key, block, not blocks))
    indexes = built_on_main(accelerator, lambda: [group_index(block, options.scale, with_lr=True)
                                                  for _, block, _ in blocks])
    return [ValidationSet(name, EvalGroupDataset(index, options.scale), main)
            for (name, _, main), index in zip(blocks, indexes, strict=True)]


@dataclass
class Validation:
    """Runs every set on the eval network; ``stage1_reference`` (stage 2) measures the main set against stage 1."""

    accelerator: Accelerator
    sets: list[ValidationSet]
    metric_set: MetricSet
    options: Options
    folders: ExperimentFolders
    stage1_reference: Stage1Reference | None

    def upscaler(self, network: torch.nn.Module) -> Upscaler:
        def upscale(lq: torch.Tensor) -> torch.Tensor:
            with self.accelerator.autocast():  # the network only; metrics run in fp32
                return network(lq).float()

        return upscale

    def __call__(self, network: torch.nn.Module, iteration: int) -> dict[str, dict[str, float]]:
        """Results by set name, the same on every process."""
        was_training = network.training
        network.eval()
        try:
            results = {validation_set.name: self._one_set(validation_set, network, iteration)
                       for validation_set in self.sets}
        finally:
            network.train(was_training)
        if self.accelerator.is_main_process:
            main = next(s.name for s in self.sets if s.main)
            record = {"iteration": iteration, "results": results[main]}
            if len(self.sets) > 1:
                record["sets"] = results
            if self.stage1_reference is not None:  # computed by every process in measures() above: no collective here
                record["stage1"] = self.stage1_reference.results
            with self.folders.validation_log.open("a") as records:  # machine-readable, for tables and ablations
                records.write(json.dumps(record) + "\n")
        return results

    def _one_set(self, validation_set: ValidationSet, network: torch.nn.Module, iteration: int) -> dict[str, float]:
        device = self.accelerator.device
        results, outputs = evaluate_upscaler(self.upscaler(network), validation_set.dataset, self.metric_set,
                                             device, self.accelerator, desc=f"validation {validation_set.name}")
        if self.accelerator.num_processes > 1:
            log.info("process %d validated %d of the %d images of %s", self.accelerator.process_index, len(outputs),
                     len(validation_set.dataset), validation_set.name, extra={"all_ranks": True})
        if validation_set.main and self.stage1_reference is not None:
            results |= self.stage1_reference.measures(results, outputs, weighted_metrics(self.options.train.iqa_opt),
                                                      self.options.val.monitor_metrics)
        prefix = "val" if validation_set.main else f"val/{validation_set.name}"
        shown = "" if validation_set.main else f" of {validation_set.name}"
        log.info("validation%s at iter %d: %s", shown, iteration,
                 "  ".join(f"{name} {value:.4f}" for name, value in results.items()))
        self.accelerator.log({f"{prefix}/{name}": value for name, value in results.items()}, step=iteration)
        if self.options.val.save_img:  # each process its share
            folder = self.folders.visualization if validation_set.main else \
                self.folders.visualization / validation_set.name
            for name, image in outputs.items():
                write_rgb(folder / name / f"{name}_{iteration}.png", image)
        if validation_set.main and self.accelerator.is_main_process:
            self._tracker_images(validation_set.dataset, outputs, iteration)
        return results

    def _tracker_images(self, dataset: EvalGroupDataset, outputs: dict[str, torch.Tensor], iteration: int) -> None:
        """The first images of the main process's share (the set's first images)."""
        count = min(self.options.val.tracker_images, len(outputs))
        if not count or not self.accelerator.trackers:
            return
        strips = {}
        for position in range(count):
            pair = dataset[position]
            strips[f"val_images/{pair.name}"] = trackers.comparison_strip(pair.lq, outputs[pair.name], pair.gt,
                                                                          self.options.scale)
        trackers.log_images(self.accelerator, strips, iteration)

