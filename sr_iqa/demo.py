"""The built-in demo: build the demo set, score it with NIQE, train a small RRDB with cached AMO, print the table.

Everything runs offline on a CPU. A second run reuses the data set and the finished
training (``--fresh`` trains again), so it only prints the table.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from sr_iqa.config import load_options
from sr_iqa.data.demo_set import build_demo_set
from sr_iqa.errors import OptionsError
from sr_iqa.evaluate.scoring import bicubic_upscaler, evaluate_upscaler, format_table, mean_scores

log = logging.getLogger("sr_iqa.demo")
DEMO_RUN_NAME = "demo"


def run_demo(dataset_root: Path, options_file: Path, overrides: Sequence[str] = (), fresh: bool = False) -> str:
    """Returns the Markdown table it prints (also written to ``<run>/demo_results.md``)."""
    if not options_file.is_file():
        raise OptionsError(f"no demo option file at {options_file}; run the demo from the root of an sr_iqa clone "
                           "or pass -opt FILE")
    log.info("building the demo set in %s (reused when complete)", dataset_root)
    paths = build_demo_set(dataset_root)
    options = load_options(options_file, [
        f"datasets.train.dataroot_gt={paths.train_images}",
        f"datasets.train.dataroot_label={paths.train_labels}",
        f"datasets.val.dataroot_gt={paths.test_images}",
        f"datasets.val.dataroot_label={paths.test_labels}",
        f"datasets.val.dataroot_lq={paths.test_lr}",
        f"sampler.cache={paths.root / 'scores.db'}",
        "path.resume_state=auto",
        f"name={DEMO_RUN_NAME}",  # apart from the option file's own name, so `sr-iqa train -opt` on it starts afresh
        *overrides,
    ])
    run_folder = Path(options.path.experiments_root) / options.name
    if fresh:
        shutil.rmtree(run_folder, ignore_errors=True)
    sampler = options.sampler
    if sampler.type.value in ("sma", "smp", "amo") and sampler.mode.value == "cached":
        # Score what the sampler reads; a rerun finds everything in the cache and scores nothing.
        from sr_iqa.data.check import discover_splits
        from sr_iqa.iqa.scorer import Grid, gt_entries, run_scoring

        log.info("scoring the demo set with %s into %s", sampler.metric, sampler.cache)
        groups = [group for index in discover_splits(paths.root).values() for group in index.groups]
        grid = Grid(options.datasets.train.gt_size, sampler.grid_stride) if sampler.type.value == "amo" else None
        run_scoring(gt_entries(groups), [sampler.metric], Path(sampler.cache), grid, batch_size=16, num_workers=0,
                    device_name=None, weights_dir=None)

    from sr_iqa.train.trainer import Trainer

    trainer = Trainer(options, source=str(options_file))
    trainer.train()

    test_set = trainer.val_set  # the demo validates on the held-out test split
    metric_set = trainer.metric_set
    network = trainer.eval_network().eval()
    label = f"{options.network_g['type']} ({'EMA, ' if trainer.ema is not None else ''}" \
            f"iter {trainer.progress.iteration})"
    results = {
        "Bicubic": evaluate_upscaler(bicubic_upscaler(options.scale), test_set, metric_set, trainer.device)[0],
        label: evaluate_upscaler(network, test_set, metric_set, trainer.device)[0],
        "Original GT": mean_scores(metric_set.score(pair.gt, None) for pair in test_set),
    }
    table = format_table(results, metric_set)
    caption = (f"Demo: x{options.scale} SR on {len(test_set)} held-out groups "
               f"({paths.test_images}); FR metrics against the original GT.")
    (run_folder / "demo_results.md").write_text(f"{caption}\n\n{table}\n")
    print(f"\n{caption}\n\n{table}\n", flush=True)
    return table
