"""The built-in demo: build the demo set, score it with NIQE, train a small RRDB with cached AMO (stage 1),
fine-tune it with LoRA against NIQE (stage 2), print the table.

Everything runs offline on a CPU. A second run reuses the data set and the finished
trainings (``--fresh`` trains again), so it only prints the table.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from sr_iqa.config import Options, load_options
from sr_iqa.data.demo_set import DemoSetPaths, build_demo_set
from sr_iqa.errors import OptionsError
from sr_iqa.evaluate.scoring import bicubic_upscaler

log = logging.getLogger("sr_iqa.demo")
DEMO_RUN_NAME = "demo"
FINETUNE_RUN_NAME = "demo_ft"


def _demo_data_overrides(paths: DemoSetPaths) -> list[str]:
    return [
        f"datasets.train.dataroot_gt={paths.train_images}",
        f"datasets.train.dataroot_label={paths.train_labels}",
        f"datasets.val.dataroot_gt={paths.test_images}",
        f"datasets.val.dataroot_label={paths.test_labels}",
        f"datasets.val.dataroot_lq={paths.test_lr}",
        f"sampler.cache={paths.root / 'scores.db'}",
        "path.resume_state=auto",
    ]


def _score_for_sampler(options: Options, paths: DemoSetPaths) -> None:
    """Score what the sampler reads; a rerun finds everything in the cache and scores nothing."""
    sampler = options.sampler
    if sampler.type.value not in ("sma", "smp", "amo") or sampler.mode.value != "cached":
        return
    from sr_iqa.data.check import discover_splits
    from sr_iqa.iqa.scorer import Grid, gt_entries, run_scoring

    log.info("scoring the demo set with %s into %s", sampler.metric, sampler.cache)
    groups = [group for index in discover_splits(paths.root).values() for group in index.groups]
    grid = Grid(options.datasets.train.gt_size, sampler.grid_stride) if sampler.type.value == "amo" else None
    run_scoring(gt_entries(groups), [sampler.metric], Path(sampler.cache), grid, batch_size=None, num_workers=2,
                device_name=None, weights_dir=None)


def _gaming_line(run_folder: Path, optimised: str, monitors: Sequence[str]) -> str:
    """Stage 2 against stage 1, from the run's last validation record."""
    record = json.loads((run_folder / "logs" / "validation.jsonl").read_text().splitlines()[-1])["results"]
    held_out = ", ".join(f"{name} {record[f'change/{name}']:+.2f}%" for name in monitors)
    return (f"Stage 2 vs stage 1 (positive = better): optimised {optimised} {record[f'change/{optimised}']:+.2f}%, "
            f"held-out {held_out}; gaming gap {record.get('gaming_gap', float('nan')):+.2f} points; "
            f"structured noise {record['structured_noise']:.3f} grey levels.")


def run_demo(dataset_root: Path, options_file: Path, overrides: Sequence[str] = (), fresh: bool = False,
             finetune_file: Path | None = None) -> str:
    """Stage 1 from ``options_file``, then stage 2 from ``finetune_file`` (skipped when None); ``overrides``
    apply to both. Returns the Markdown table it prints (also written to ``<stage-1 run>/demo_results.md``)."""
    for path in (options_file, finetune_file):
        if path is not None and not path.is_file():
            raise OptionsError(f"no demo option file at {path}; run the demo from the root of an sr_iqa clone "
                               "or pass -opt / --finetune-opt FILE")
    log.info("building the demo set in %s (reused when complete)", dataset_root)
    paths = build_demo_set(dataset_root)
    data = _demo_data_overrides(paths)
    # Run names apart from the option files' own, so `sr-iqa train -opt` on them starts afresh.
    stage1_options = load_options(options_file, [*data, f"name={DEMO_RUN_NAME}", *overrides])
    experiments = Path(stage1_options.path.experiments_root)
    stage2_options = None
    if finetune_file is not None:
        stage2_options = load_options(finetune_file, [
            *data, f"name={FINETUNE_RUN_NAME}", f"path.pretrain_network_g={experiments / DEMO_RUN_NAME}",
            *overrides])
    if fresh:
        for name in (DEMO_RUN_NAME, FINETUNE_RUN_NAME):
            shutil.rmtree(experiments / name, ignore_errors=True)
    _score_for_sampler(stage1_options, paths)

    from sr_iqa.evaluate.run_eval import original_gt_method, run_eval, upscaler_method
    from sr_iqa.evaluate.tables import summary_markdown
    from sr_iqa.train.trainer import Trainer

    stage1 = Trainer(stage1_options, source=str(options_file))
    stage1.train()
    device, scale = stage1.device, stage1_options.scale
    sampler = stage1_options.sampler.type.value.upper()
    methods = [upscaler_method("Bicubic", bicubic_upscaler(scale), device, scale=scale),
               upscaler_method(f"Stage 1: RRDBNet {sampler} (iter {stage1.progress.iteration})",
                               stage1.eval_network().eval(), device, scale=scale)]
    metric_names = list(stage1_options.val.metrics)
    notes = []
    if stage2_options is not None:
        stage2 = Trainer(stage2_options, source=str(finetune_file))
        stage2.train()
        lora = stage2_options.lora
        how = f"LoRA rank {lora.rank}" if lora is not None and lora.enabled else "full"
        iqa_opt = stage2_options.train.iqa_opt
        methods.append(upscaler_method(f"Stage 2: + {how} FT vs {iqa_opt.metric.upper()} "
                                       f"(iter {stage2.progress.iteration})", stage2.eval_network().eval(), device,
                                       scale=scale))
        metric_names += [iqa_opt.metric, *stage2_options.val.monitor_metrics]
        notes.append(_gaming_line(stage2.folders.root, iqa_opt.metric, stage2_options.val.monitor_metrics))
    methods.append(original_gt_method())

    groups = stage1.val_set.groups  # the demo evaluates on the held-out test split
    summary = run_eval(methods, groups, list(dict.fromkeys(metric_names)), experiments / DEMO_RUN_NAME / "eval",
                       scale)
    table = summary_markdown(summary)
    caption = (f"Demo: x{scale} SR on {len(groups)} held-out groups ({paths.test_images}), evaluated as in HGGT "
               f"(full tables in {experiments / DEMO_RUN_NAME / 'eval'}).")
    text = "\n\n".join([caption, table, *notes])
    (experiments / DEMO_RUN_NAME / "demo_results.md").write_text(text + "\n")
    print(f"\n{text}\n", flush=True)
    return table
