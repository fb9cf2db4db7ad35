"""``sr-iqa eval``: score methods (a checkpoint, or folders of SR images from any method) on a multi-GT
test set, against the Positive GTs, the original and the Gold Standard; write tables.

Under ``accelerate launch`` the groups are split across processes and the results gathered on the
main process, which alone writes files.
"""

from __future__ import annotations

import glob
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

from sr_iqa import writer_lock
from sr_iqa.atomic_files import remove_partial_files
from sr_iqa.data.datasets import EvalGroup, EvalGroupDataset
from sr_iqa.data.groups import Group, GroupIndex
from sr_iqa.data.image_io import read_rgb_tensor, write_rgb
from sr_iqa.errors import DataError, SrIqaError
from sr_iqa.evaluate.cached_gt_scores import CachedGtScores
from sr_iqa.evaluate.metric_set import MetricSet, bicubic_upscaler, gathered
from sr_iqa.evaluate.multi_gt import ImageResult, gold_standard, read_gts, score_gts, score_sr
from sr_iqa.evaluate.tables import EvaluationSummary, folder_name, write_evaluation, write_gt_scores, write_summary_json
from sr_iqa.main_process import built_on_main
from sr_iqa.progress import progress_bar

log = logging.getLogger("sr_iqa.eval")

SrSource = Callable[[EvalGroup], torch.Tensor]
LR_FOLDER = "LR_input"  # under --save-sr: each group's LR, beside the methods' folders


@dataclass(frozen=True)
class SrMethod:
    """A named source of SR images for the test groups."""

    name: str
    produce: SrSource


def sr_image_of(folder: Path, item: EvalGroup) -> Path:
    """A group's SR image in ``folder``: named like its original (``<group>.png``), or as BasicSR and HGGT save
    results, ``<group>_<suffix>.png`` (one such file)."""
    for candidate in (folder / item.group.original.path.name, folder / f"{item.name}.png"):
        if candidate.is_file():
            return candidate
    suffixed = sorted(folder.glob(f"{glob.escape(item.name)}_*.png"))
    if len(suffixed) == 1:
        return suffixed[0]
    if suffixed:
        raise DataError(f"{folder}: several SR images for group {item.name} ({', '.join(p.name for p in suffixed)}); "
                        "keep one per group")
    raise DataError(f"{folder}: no SR image for group {item.name} (expected {item.name}.png or "
                    f"{item.name}_<suffix>.png, as BasicSR saves them)")


def sr_dir_method(name: str, folder: Path) -> SrMethod:
    """SR images of any method, found by ``sr_image_of``."""
    if not folder.is_dir():
        raise SrIqaError(f"--sr-dir {folder}: no such folder")

    def produce(item: EvalGroup) -> torch.Tensor:
        path = sr_image_of(folder, item)
        sr = read_rgb_tensor(path)
        if sr.shape != item.gt.shape:
            raise DataError(f"{path}: {tuple(sr.shape[1:])} pixels, but the group's GTs are "
                            f"{tuple(item.gt.shape[1:])}; SR images must have the GT size")
        return sr

    return SrMethod(name, produce)


def upscaler_method(name: str, upscale: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                    tile: int = 0, tile_overlap: int = 16, scale: int = 4) -> SrMethod:
    """An upscaler (a generator in eval mode on ``device``, or bicubic) applied to each group's LR, tiled when
    ``tile`` > 0, cropped to the GT size."""
    from sr_iqa.tiling import tiled_upscale

    @torch.no_grad()
    def produce(item: EvalGroup) -> torch.Tensor:
        sr = tiled_upscale(upscale, item.lq[None].to(device), scale, tile, tile_overlap)[0].clamp(0, 1)
        return sr[:, : item.gt.shape[-2], : item.gt.shape[-1]].cpu()

    return SrMethod(name, produce)


def bicubic_method(scale: int, name: str = "Bicubic") -> SrMethod:
    """Each group's LR upscaled by bicubic interpolation: the floor a trained method has to beat."""
    return upscaler_method(name, bicubic_upscaler(scale), torch.device("cpu"), scale=scale)


def original_gt_method(name: str = "Original GT") -> SrMethod:
    """The group's original itself: the reference point every SR method is compared with."""
    return SrMethod(name, lambda item: item.gt)


def _refuse_repeated_names(methods: Sequence[SrMethod]) -> None:
    """Rows are keyed by method: two methods of one name would keep one silently."""
    counts = Counter(method.name for method in methods)
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        raise SrIqaError(f"method name(s) given twice: {', '.join(repeated)}; name each --sr-dir NAME=DIR (and "
                         "--name for the checkpoint) differently")


def _methods_on(item: EvalGroup, gts: torch.Tensor, methods: Sequence[SrMethod], metric_set: MetricSet,
                save_sr: Path | None, sr_suffix: str) -> list[ImageResult]:
    """Every method's SR image of one group, scored (and saved with ``save_sr``, beside the LR they all saw:
    synthesised or fixed, the report's first column)."""
    if save_sr is not None:
        write_rgb(save_sr / LR_FOLDER / f"{item.name}.png", item.lq)
    results = []
    for method in methods:
        sr = method.produce(item)
        if save_sr is not None:
            stem = f"{item.name}_{sr_suffix}" if sr_suffix else item.name
            write_rgb(save_sr / folder_name(method.name) / f"{stem}.png", sr)
        results.append(score_sr(method.name, sr, item.group, gts, metric_set))
    return results


def run_eval(methods: Sequence[SrMethod], groups: Sequence[Group], metric_names: Sequence[str], out: Path,
             scale: int = 4, weights_dir: Path | None = None, metric_options: Mapping[str, dict] | None = None,
             strict: bool = False, save_sr: Path | None = None,
             score_cache: Path | None = None, sr_suffix: str = "") -> EvaluationSummary | None:
    """Evaluate every method on every group; the main process writes ``out`` and returns the summary.
    ``save_sr``: also write each SR image to ``save_sr/<method>/<group>.png`` (for the visual report), or to
    ``<group>_<sr_suffix>.png`` (HGGT's and BasicSR's metric scripts drop the last ``_`` part to find the group).
    ``score_cache``: the GTs' NR scores read from it where it holds them, the others scored and written to it."""
    _refuse_repeated_names(methods)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    # One evaluation per --out at a time (a second one, or an ablation's rerun meeting a live one, stops at once
    # naming the holder); the main process holds it, the others learn whether it could.
    lock = built_on_main(accelerator, lambda: writer_lock.acquire(writer_lock.run_lock_file(out), str(out),
                                                                  "evaluation", "--out"))
    try:
        return _evaluate(accelerator, methods, groups, metric_names, out, scale, weights_dir, metric_options, strict,
                         save_sr, score_cache, sr_suffix)
    finally:
        writer_lock.release(lock)  # held by the main process only; a no-op elsewhere


def _evaluate(accelerator: Accelerator, methods: Sequence[SrMethod], groups: Sequence[Group],
              metric_names: Sequence[str], out: Path, scale: int, weights_dir: Path | None,
              metric_options: Mapping[str, dict] | None, strict: bool, save_sr: Path | None,
              score_cache: Path | None, sr_suffix: str = "") -> EvaluationSummary | None:
    # Each network built once; without --strict a metric that cannot run here is reported and left out.
    metric_set = MetricSet(metric_names, accelerator.device, weights_dir, dict(metric_options or {}),
                           skip_unavailable=not strict)
    names, skipped = metric_set.names, metric_set.skipped
    if not names:
        raise SrIqaError("no metric left to compute: " + ", ".join(skipped) + " cannot run here (see above)")
    dataset = EvalGroupDataset(GroupIndex(list(groups)), scale)
    results: list[ImageResult] = []
    gt_scores: list[list[dict[str, float]]] = []
    sizes: list[tuple[int, int]] = []
    cached = None
    reused = 0
    with accelerator.split_between_processes(list(range(len(dataset)))) as mine:
        log.info("eval: process %d of %d evaluates %d of %d groups", accelerator.process_index,
                 accelerator.num_processes, len(mine), len(dataset), extra={"all_ranks": True})
        if score_cache is not None:
            cached = CachedGtScores(score_cache, metric_set.no_reference_names(), dict(metric_options or {}),
                                    {name: metric_set.lower_better(name) for name in names},
                                    [dataset.groups[position] for position in mine])
        for position in progress_bar(iterable=mine, desc="eval", unit="group", disable=not accelerator.is_main_process):
            item = dataset[position]
            # Once per group, shared by every method; cut like item.gt (a multiple of the scale without fixed LR).
            gts = read_gts(item.group)[..., : item.gt.shape[-2], : item.gt.shape[-1]]
            sizes.append(tuple(gts.shape[-2:]))
            known = cached.lookup(item.group, *sizes[-1]) if cached is not None else None
            reused += sum(len(scores) for scores in known or [])
            gt_scores.append(score_gts(item.group, gts, metric_set, known))
            results += _methods_on(item, gts, methods, metric_set, save_sr, sr_suffix)
    # Concatenated in rank order, i.e. the groups' order.
    results, gt_scores, sizes = (gathered(accelerator, items) for items in (results, gt_scores, sizes))
    reused = sum(gathered(accelerator, [reused]))
    # Every rank leaves the process group before exiting; a gloo group torn down at interpreter exit aborts.
    accelerator.end_training()
    if not accelerator.is_main_process:
        return None
    if cached is not None:
        total = sum(len(scores) for group in gt_scores for scores in group)
        written = cached.store(list(groups), sizes, gt_scores)
        log.info("GT scores: %d of %d from %s, %d scored here (%d written to it)", reused, total, score_cache,
                 total - reused, written)
    no_reference = [name for name in names if name in gt_scores[0][0]]
    lower_better = {name: metric_set.lower_better(name) for name in names}
    gold = gold_standard(gt_scores, {name: lower_better[name] for name in no_reference})
    summary = EvaluationSummary.from_results(results, gold, lower_better, skipped)
    remove_partial_files(out)  # of an evaluation killed while writing here
    write_evaluation(out, results, summary)
    write_gt_scores(out / "gt_scores.csv", groups, gt_scores, no_reference)
    write_summary_json(out, summary)  # last: its presence means every file above is complete
    without_positive = sum(1 for r in results if r.positives == 0) // max(len(methods), 1)
    if without_positive:
        log.warning("%d groups have no Positive GT; their FR scores are against the original", without_positive)
    if any(math.isnan(v) for row in summary.rows.values() for v in row.values()):
        log.warning("some scores are NaN (a metric could not score an image; see the warnings above)")
    return summary
