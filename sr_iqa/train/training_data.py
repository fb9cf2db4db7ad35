"""The training data of a run: the multi-GT crop set (indexed once, on the main process) and this rank's loader.

The DataLoader is deliberately not passed through ``accelerator.prepare``: the per-rank sample order comes from
``TrainingSampleOrder``, a function of (seed, step, rank), so a resumed run continues at the exact sample
without re-iterating the skipped batches.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from sr_iqa.child_processes import worker_init
from sr_iqa.config import Options
from sr_iqa.data.check import summarize
from sr_iqa.data.datasets import GTChooser, MultiGTCropDataset
from sr_iqa.data.groups import GroupIndex
from sr_iqa.data.packed_store import PackedStore
from sr_iqa.data.sources import group_index
from sr_iqa.data.training_order import TrainingSampleOrder
from sr_iqa.data.validation import raise_problems
from sr_iqa.losses import build_rank_loss
from sr_iqa.main_process import built_on_main
from sr_iqa.sampling.build import build_chooser
from sr_iqa.sampling.q_scales import SAMPLER, RunScales, run_scales

log = logging.getLogger("sr_iqa.train")


def training_set(options: Options, accelerator: Accelerator, sample_kernels: object, with_candidates: bool,
                 recorded_scales: Path | None = None) -> tuple[MultiGTCropDataset, RunScales]:
    """Index and validate the training data before any work; bad data stops the run here. The main process does
    it once and hands the index, the sampler (score grids included) and the Q normalisations to the others.
    ``recorded_scales``: a resumed run's file of them."""
    train_options = options.datasets.train
    train_index, chooser, scales = built_on_main(accelerator, lambda: _indexed(options, recorded_scales))
    images = PackedStore(Path(train_options.pack)) if train_options.pack is not None else None
    rank_block = options.train.rank_opt
    # the labels the ranked-GT loss leaves out, as the loss itself reads and checks them (one home)
    ranked_excluding = build_rank_loss(rank_block).exclude_labels if rank_block is not None else None
    return (MultiGTCropDataset(
        train_index, train_options.gt_size, options.manual_seed, train_options.use_hflip, train_options.use_rot,
        choose_gt=chooser, with_negative=options.train.neg_opt is not None, with_candidates=with_candidates,
        sample_kernels=sample_kernels, images=images,
        ranked_excluding=ranked_excluding), scales)


def _indexed(options: Options, recorded_scales: Path | None) -> tuple[GroupIndex, GTChooser, RunScales]:
    train_options = options.datasets.train
    train_index = group_index(train_options, options.scale, min_size=train_options.gt_size)
    for line in summarize("training data", train_index, positive_only=False):
        log.info("%s", line.strip())
    if train_index.dropped:
        log.info("the label filter dropped %d groups (%s)", len(train_index.dropped),
                 "; ".join(sorted(set(train_index.dropped.values()))))
    if train_options.pack is not None:
        raise_problems(PackedStore(Path(train_options.pack)).stale())
    scales = run_scales(options, train_index.groups, recorded_scales)
    return train_index, build_chooser(options.sampler, train_index.groups, train_options.gt_size,
                                      options.iqa.metric_options, scales.get(SAMPLER)), scales


def training_loader(dataset: MultiGTCropDataset, options: Options, accelerator: Accelerator,
                    finished_iterations: int) -> DataLoader:
    """This rank's batches, from the resumed iteration on."""
    train_options = options.datasets.train
    order = TrainingSampleOrder(
        len(dataset), train_options.batch_size_per_gpu, options.manual_seed,
        rank=accelerator.process_index, world_size=accelerator.num_processes,
        start_step=finished_iterations * options.train.gradient_accumulation_steps,
    )
    workers = train_options.num_worker_per_gpu
    return DataLoader(
        dataset, batch_size=train_options.batch_size_per_gpu, sampler=order, num_workers=workers,
        pin_memory=accelerator.device.type == "cuda",
        persistent_workers=workers > 0 and train_options.persistent_workers,
        prefetch_factor=train_options.prefetch_factor if workers > 0 else None,
        # Worker seeds come from this generator, not the global RNG, so resuming changes nothing.
        generator=torch.Generator().manual_seed(options.manual_seed),
        worker_init_fn=worker_init(workers),  # the workers end with this process, even when it is SIGKILLed
    )
