"""``sr-iqa score``: score every GT of a data set (full image and, optionally, a crop grid) into the cache.

Only missing keys are planned, so a rerun after a kill or a finished run does only what is
left. Images are read by a DataLoader; crops and images of the same size are batched through
the metric; rows are committed after every batch. Under ``accelerate launch`` each process
takes every n-th image, so no key is scored twice.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from sr_iqa.child_processes import worker_init
from sr_iqa.data.groups import Group
from sr_iqa.data.image_io import read_rgb_tensor
from sr_iqa.iqa.metrics import score_each
from sr_iqa.iqa.score_cache import (
    ImageRecord,
    Region,
    ScoreCache,
    ScoreRow,
    grid_regions,
    metric_key,
    spool_path,
)
from sr_iqa.progress import progress_bar
from sr_iqa.score_rules import in_words

log = logging.getLogger("sr_iqa.score")


@dataclass(frozen=True)
class Grid:
    size: int
    stride: int

    @classmethod
    def parse(cls, text: str) -> Grid:
        size, _, stride = text.partition(":")
        if not (size.isdigit() and stride.isdigit()) or int(size) < 1 or int(stride) < 1:
            raise ValueError(f"--grid expects SIZE:STRIDE with positive integers, got '{text}'")
        return cls(int(size), int(stride))


@dataclass
class ScoreJob:
    """One image and the regions of it still missing."""

    record: ImageRecord
    regions: list[Region]


@dataclass(frozen=True)
class GTEntry:
    path: Path
    label: str  # original, Positive, Similar, Negative, unlabelled


def gt_entries(groups: Sequence[Group]) -> list[GTEntry]:
    entries = []
    for group in groups:
        for position, gt in enumerate(group.gts):
            label = "original" if position == 0 else (gt.label or "unlabelled")
            entries.append(GTEntry(gt.path, label))
    return sorted(set(entries), key=lambda e: str(e.path))


def plan(cache: ScoreCache, entries: Sequence[GTEntry], metric: str, grid: Grid | None) -> list[ScoreJob]:
    jobs = []
    for entry in entries:
        record = cache.record(entry.path)
        wanted = [record.full] + (grid_regions(record.width, record.height, grid.size, grid.stride) if grid else [])
        present = cache.present(record.content_hash, metric)
        missing = [region for region in wanted if region not in present]
        if missing:
            jobs.append(ScoreJob(record, missing))
    return jobs


def _crops(image: torch.Tensor, regions: Sequence[Region]) -> Iterator[tuple[Region, torch.Tensor]]:
    for region in regions:
        yield region, image[:, region.y:region.y + region.h, region.x:region.x + region.w]


class BatchedScorer:
    """Runs one metric over crops in batches of ``batch_size`` and hands each batch's rows to ``write``."""

    def __init__(self, metric: torch.nn.Module, key: str, batch_size: int, device: torch.device,
                 write: Callable[[list[ScoreRow]], None]) -> None:
        self.metric, self.key, self.write = metric, key, write
        self.batch_size, self.device = batch_size, device
        self.lower_better = bool(metric.lower_better)
        # Crops waiting for a batch, grouped by shape so that they stack.
        self.pending: dict[tuple[int, ...], list[tuple[str, Region, torch.Tensor]]] = defaultdict(list)

    def add_image(self, job: ScoreJob, image: torch.Tensor) -> None:
        for region, crop in _crops(image, job.regions):
            bucket = self.pending[tuple(crop.shape[-2:])]
            bucket.append((job.record.content_hash, region, crop))
            if len(bucket) >= self.batch_size:
                self._run(bucket)

    def flush(self) -> None:
        for bucket in self.pending.values():
            if bucket:
                self._run(bucket)

    @torch.no_grad()
    def _run(self, bucket: list) -> None:
        images = torch.stack([item[2] for item in bucket]).to(self.device)
        # A crop the metric cannot score (NIQE on a flat one) is NaN, stored as such, instead of ending the job.
        scores, reason = score_each(self.metric, images)
        unscorable = [(content_hash, region) for (content_hash, region, _), score in zip(bucket, scores.tolist(),
                                                                                         strict=True)
                      if math.isnan(score)]
        if unscorable:
            log.warning("%s cannot score %d region(s) (%s); stored as NaN, never chosen by a sampler: %s", self.key,
                        len(unscorable), reason or "NaN", ", ".join(f"{h[:8]}@{r.x},{r.y},{r.w}x{r.h}"
                                                                    for h, r in unscorable[:5]),
                        extra={"all_ranks": True})
        self.write([
            (content_hash, self.key, region.x, region.y, region.w, region.h, float(score), self.lower_better)
            for (content_hash, region, _), score in zip(bucket, scores.tolist(), strict=True)])
        bucket.clear()


class _JobImages(Dataset):
    """Decoding in the workers, scoring in the main process: the form for a GPU."""

    def __init__(self, jobs: list[ScoreJob]) -> None:
        self.jobs = jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        return index, read_rgb_tensor(self.jobs[index].record.path)


class _ScoredChunks(Dataset):
    """Decoding and scoring in the workers, one chunk of about ``batch_size`` regions each: the form for a CPU.

    Each DataLoader worker runs with one thread, so two workers keep two cores busy on separate
    batches; one process with two threads spends much of NIQE's many small operations waiting.
    The workers return rows; only the main process writes the cache."""

    def __init__(self, jobs: list[ScoreJob], metric: torch.nn.Module, key: str, batch_size: int) -> None:
        self.jobs, self.metric, self.key, self.batch_size = jobs, metric, key, batch_size
        self.chunks: list[list[int]] = []  # whole images, until a chunk holds batch_size regions
        regions = batch_size
        for index, job in enumerate(jobs):
            if regions >= batch_size:
                self.chunks.append([])
                regions = 0
            self.chunks[-1].append(index)
            regions += len(job.regions)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> tuple[int, list[ScoreRow]]:
        rows: list[ScoreRow] = []
        scorer = BatchedScorer(self.metric, self.key, self.batch_size, torch.device("cpu"), rows.extend)
        for position in self.chunks[index]:
            job = self.jobs[position]
            scorer.add_image(job, read_rgb_tensor(job.record.path))
        scorer.flush()
        return len(self.chunks[index]), rows


def score_jobs(jobs: list[ScoreJob], metric: torch.nn.Module, key: str, cache: ScoreCache, batch_size: int,
               device: torch.device, num_workers: int, show_progress: bool) -> None:
    """Score every job's regions; rows are committed batch by batch (CPU workers: chunk by chunk)."""
    bar = progress_bar(total=len(jobs), unit="img", disable=not show_progress, desc=key)
    if device.type == "cpu" and num_workers > 0:
        chunks = DataLoader(_ScoredChunks(jobs, metric, key, batch_size), batch_size=None, num_workers=num_workers,
                            worker_init_fn=worker_init(num_workers))
        for images, rows in chunks:
            cache.put(rows)
            bar.update(images)
    else:
        scorer = BatchedScorer(metric, key, batch_size, device, cache.put)
        for index, image in DataLoader(_JobImages(jobs), batch_size=None, num_workers=num_workers,
                                       worker_init_fn=worker_init(num_workers)):
            scorer.add_image(jobs[index], image)
            bar.update(1)
        scorer.flush()
    bar.close()


def summary_lines(cache: ScoreCache, entries: Sequence[GTEntry], metrics: Sequence[str]) -> list[str]:
    """Per metric: mean and std over all GTs (full images), and the mean per label."""
    lines = []
    records = {entry.path: cache.record(entry.path) for entry in entries}
    for key in metrics:
        table = cache.scores(key, {r.content_hash for r in records.values()})
        by_label: dict[str, list[float]] = defaultdict(list)
        for entry in entries:
            record = records[entry.path]
            score = table[record.content_hash].get(record.full)
            if score is not None and not math.isnan(score):
                by_label[entry.label].append(score)
        every = [s for values in by_label.values() for s in values]
        if not every:
            continue
        direction = in_words(cache.lower_better(key))
        lines.append(f"{key} ({direction}): mean {statistics.fmean(every):.4f}, "
                     f"std {statistics.pstdev(every):.4f} over {len(every)} GTs")
        lines.append("  mean by label: " + ", ".join(
            f"{label} {statistics.fmean(by_label[label]):.4f}" for label in
            ("original", "Positive", "Similar", "Negative", "unlabelled") if by_label.get(label)))
    return lines


NIQE_BLOCK = 96  # NIQE's block size: smaller images or crops raise inside pyiqa
# Crops per metric call when none is asked for. On the CPU each worker scores its own batches with one
# thread: 8 crops beat 16 by about a quarter for NIQE on the 2-core VM (smaller float64 buffers, better
# balance between the workers; benchmarks/scorer_benchmark.py). The GPU value is not tuned yet.
DEFAULT_BATCH_SIZE = {"cpu": 8, "cuda": 16}


def _refuse_full_reference(metrics: dict[str, torch.nn.Module]) -> None:
    """Q judges a GT alone: a full-reference score against the group's original ranks the original first
    (it matches itself), which no sampler can mean."""
    from sr_iqa.errors import OptionsError
    from sr_iqa.iqa.metrics import is_full_reference

    full_reference = [name for name, metric in metrics.items() if is_full_reference(metric)]
    if full_reference:
        raise OptionsError(f"--metric {', '.join(full_reference)}: full-reference (it compares an image with a "
                           "reference), and the score cache holds no-reference scores that judge each GT alone, for "
                           "the samplers and `agree`; use a no-reference metric (niqe, brisque, musiq, ...), and "
                           "`sr-iqa eval` for full-reference metrics of SR images")


def run_scoring(entries: Sequence[GTEntry], metric_names: Sequence[str], cache_path: Path, grid: Grid | None,
                batch_size: int | None, num_workers: int, device_name: str | None, weights_dir: Path | None,
                metric_options: dict[str, dict] | None = None) -> None:
    """Score what is missing; every process takes every n-th image. The main process prints the summary."""
    from accelerate import Accelerator

    from sr_iqa import writer_lock
    from sr_iqa.errors import OptionsError
    from sr_iqa.iqa.metrics import create_metric
    from sr_iqa.main_process import built_on_main

    if grid is not None and grid.size < NIQE_BLOCK and any(name.startswith("niqe") for name in metric_names):
        raise OptionsError(f"--grid {grid.size}:{grid.stride}: NIQE needs crops of at least {NIQE_BLOCK} pixels")
    accelerator = Accelerator(cpu=device_name == "cpu" or not torch.cuda.is_available())
    device = torch.device(device_name) if device_name else accelerator.device
    batch_size = batch_size or DEFAULT_BATCH_SIZE.get(device.type, 16)
    metric_options = metric_options or {}
    metrics = {name: create_metric(name, device, weights_dir=weights_dir, options=metric_options.get(name))
               for name in metric_names}  # every metric before any work: missing weights fail at once
    _refuse_full_reference(metrics)
    keys = {name: metric_key(name, metric_options.get(name)) for name in metric_names}
    rank, world = accelerator.process_index, accelerator.num_processes
    # One scoring job per cache: a second one (another terminal, another node) stops here, naming the first.
    lock = built_on_main(accelerator, lambda: writer_lock.acquire(writer_lock.file_lock(cache_path), str(cache_path),
                                                                  "scoring job", "--cache"))
    if accelerator.is_main_process:  # creates or migrates the file, and takes in a killed run's spools
        ScoreCache(cache_path).merge_spools()
    accelerator.wait_for_everyone()
    # Every process plans its share reading the file (nobody writes it meanwhile)...
    reader = ScoreCache(cache_path, read_only=True)
    shard = list(entries)[rank::world]
    plans = {name: plan(reader, shard, keys[name], grid) for name in metrics}
    reader.close()
    accelerator.wait_for_everyone()
    # ... then writes only its own file: the main process the cache, the others their spools.
    writer = ScoreCache(cache_path if accelerator.is_main_process else spool_path(cache_path, rank))
    writer.store_images(reader.unsaved.values())
    log.info("process %d of %d writes its rows to %s", rank, world, writer.path, extra={"all_ranks": True})
    for name, metric in metrics.items():
        jobs = plans[name]
        log.info("%s: %d image(s), %d region(s) to score in process %d of %d", keys[name], len(jobs),
                 sum(len(job.regions) for job in jobs), rank, world, extra={"all_ranks": True})
        if jobs:
            score_jobs(jobs, metric, keys[name], writer, batch_size, device, num_workers,
                       show_progress=accelerator.is_main_process)
    if not accelerator.is_main_process:
        writer.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()  # leave the process group before exit (a late gloo teardown can abort)
    if accelerator.is_main_process:
        writer.merge_spools()
        if grid is not None:  # packed once here, so that every training start reads one row per image
            records = writer.records([entry.path for entry in entries])
            for key in keys.values():
                writer.store_grids(key, records, grid.size, grid.stride)
        print("\n".join(summary_lines(writer, entries, list(keys.values()))), flush=True)
        writer.close()
        writer_lock.release(lock)


def score_data_set(root: Path, metric: str, cache_path: Path, grid: Grid | None) -> None:
    """Every GT of every split under ``root`` (and its crop grid) into the cache, in this process with two CPU
    workers: what the demo and the experiment score before training; a rerun scores nothing."""
    from sr_iqa.data.check import discover_splits

    groups = [group for index in discover_splits(root).values() for group in index.groups]
    run_scoring(gt_entries(groups), [metric], cache_path, grid, batch_size=None, num_workers=2, device_name=None,
                weights_dir=None)
