"""Commands that use a trained generator: `eval`, `infer`, `export`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sr_iqa.atomic_files import check_output_file, check_output_folder
from sr_iqa.cli.arguments import (
    add_data_source,
    check_strengths,
    check_tiles,
    lora_strength,
    network_of,
    row_name,
    sr_suffix,
)
from sr_iqa.errors import SrIqaError

log = logging.getLogger("sr_iqa.cli")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`eval`, `infer`, `export`."""
    _add_eval(commands)
    _add_infer(commands)
    _add_export(commands)


def _add_eval(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help="evaluate a checkpoint or SR folders against the Positive GTs, "
                                                "the original and the Gold Standard")
    add_data_source(evaluate)
    evaluate.add_argument("--checkpoint", type=Path, help="generator file or run folder (newest EMA weights)")
    evaluate.add_argument("--adapter", type=Path, help="a stage-2 lora_*.safetensors, merged into --checkpoint")
    evaluate.add_argument("--lora-strength", type=lora_strength, nargs="+", default=[1.0],
                          help="the adapter's strength; several values: one row each, a perception-distortion "
                               "sweep (0 the base network, 1 as trained)")
    evaluate.add_argument("--name", type=row_name, help="the checkpoint's row name (default: the file name)")
    evaluate.add_argument("--bicubic", nargs="?", const="Bicubic", metavar="NAME", type=row_name,
                          help="also a row of the LR upscaled by bicubic interpolation (named NAME, default "
                               "Bicubic): the floor every method must beat")
    evaluate.add_argument("--sr-dir", action="append", default=[], metavar="[NAME=]DIR",
                          help="SR images named like each group's original, from any method (repeatable)")
    evaluate.add_argument("--metrics", nargs="+", help="pyiqa names (default: those that run here without a "
                                                       "download: psnr ssim niqe piqe, vgg_dist brisque_pkg when "
                                                       "installed, and HGGT's lpips stlpips dists musiq nima qalign "
                                                       "topiq_nr where their weights are on disk)")
    evaluate.add_argument("--out", type=Path, required=True, help="folder for per_image.csv and summary.*")
    evaluate.add_argument("--save-sr", type=Path, help="also write SR images to DIR/<method>/<group>.png")
    evaluate.add_argument("--sr-suffix", type=sr_suffix,
                          help="name saved SR images <group>_SUFFIX.png, as HGGT's and BasicSR's metric scripts "
                               "read them (they drop the last _ part)")
    evaluate.add_argument("--strict", action="store_true", help="fail when a metric's weights are missing")
    evaluate.add_argument("--weights-dir", type=Path, help="folder with metric weight files")
    evaluate.add_argument("--cache", type=Path, help="score cache (sr-iqa score): the GTs' NR scores read from it "
                                                     "where it holds them; the missing ones scored and added")
    evaluate.add_argument("--tile", type=int, default=0, help="LR tile size for --checkpoint (0: whole image)")
    evaluate.add_argument("--tile-overlap", type=int, help="LR pixels shared by neighbouring tiles (default 16, a "
                                                           "quarter of a smaller tile)")
    evaluate.set_defaults(handler=_eval)


def _add_infer(commands: argparse._SubParsersAction) -> None:
    infer = commands.add_parser("infer", help="upscale images of any size (tiled) with a checkpoint (+ adapter)")
    infer.add_argument("--checkpoint", type=Path, help="generator file or run folder (default: -opt's "
                                                       "path.pretrain_network_g)")
    infer.add_argument("--adapter", type=Path, help="a stage-2 lora_*.safetensors, merged into --checkpoint")
    infer.add_argument("--lora-strength", type=lora_strength, default=1.0,
                       help="the adapter's strength: 0 the base network, 1 as trained (default), above 1 extrapolates")
    infer.add_argument("--input", type=Path, required=True, help="an image or a folder of images")
    infer.add_argument("--output", type=Path, required=True, help="folder for <name>.png")
    infer.add_argument("--tile", type=int, default=0, help="LR tile size (0: whole image)")
    infer.add_argument("--tile-overlap", type=int, help="LR pixels shared by neighbouring tiles (default 16, a quarter "
                                                        "of a smaller tile)")
    infer.add_argument("-opt", "--opt", type=Path, help="option file whose network_g describes a BasicSR .pth")
    infer.add_argument("overrides", nargs="*", metavar="key.sub=value", help="with -opt: option overrides")
    infer.set_defaults(handler=_infer)


def _add_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="write a generator file (sr_iqa's, BasicSR's .pth, ONNX), LoRA "
                                                 "adapter merged; or the adapter in PEFT's format")
    export.add_argument("--checkpoint", type=Path, required=True,
                        help="base generator: a .safetensors/.pth file or a run folder (newest EMA weights)")
    export.add_argument("--adapter", type=Path, help="a stage-2 lora_*.safetensors file")
    export.add_argument("--merge", action="store_true", help="fold the adapter into the base weights")
    export.add_argument("--lora-strength", type=lora_strength, default=1.0,
                        help="with --merge or --peft: the adapter's strength (0 the base network, 1 as trained)")
    export.add_argument("--peft", action="store_true",
                        help="write --adapter as PEFT does, into the folder --out (adapter_config.json, "
                             "adapter_model.safetensors), for PeftModel.from_pretrained")
    export.add_argument("--format", choices=("safetensors", "pth", "onnx"), default="safetensors",
                        help="safetensors: sr_iqa's (spandrel reads it too); pth: BasicSR's {params_ema: ...}; "
                             "onnx: dynamic batch, height and width (needs the onnx and onnxscript packages)")
    export.add_argument("--out", type=Path, required=True, help="the file (with --peft: the folder) to write")
    export.add_argument("-opt", "--opt", type=Path, help="option file whose network_g describes a BasicSR .pth")
    export.add_argument("overrides", nargs="*", metavar="key.sub=value", help="with -opt: option overrides")
    export.set_defaults(handler=_export)


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


def _check_checkpoint(checkpoint: Path | None, using: str = "evaluating") -> None:
    """Before anything heavy: a run folder without weights is one line (naming the training that may still write
    it); weights of a run that is still training are used with a warning that says which."""
    from sr_iqa.config.path_checks import PRETRAINED_PREFIX
    from sr_iqa.models.weight_paths import newest_weights_file, training_holder

    if checkpoint is None or str(checkpoint).startswith(PRETRAINED_PREFIX):
        return
    weights = newest_weights_file(checkpoint)
    training = training_holder(checkpoint) if checkpoint.is_dir() else None
    if training is not None:
        log.warning("%s is still training (%s): %s %s, its newest weights so far", checkpoint, training, using,
                    weights.name)


def _eval(args: argparse.Namespace) -> int:
    _check_checkpoint(args.checkpoint)
    from sr_iqa.evaluate.default_metrics import default_metrics, log_default_metrics
    from sr_iqa.evaluate.run_eval import bicubic_method, run_eval, sr_dir_method, upscaler_method
    from sr_iqa.evaluate.tables import folder_name, summary_markdown
    from sr_iqa.iqa.weights import weights_folder

    check_tiles(args)
    check_output_folder(args.out)
    if args.save_sr is not None:  # <save-sr>/<method>/: never one of the --sr-dir folders it reads
        check_output_folder(args.save_sr)
        for name, _, folder in (entry.rpartition("=") for entry in args.sr_dir):
            check_output_folder(args.save_sr / folder_name(name or Path(folder).name), (Path(folder),))
    groups, network_g, iqa, param_key = _eval_groups(args)
    if args.checkpoint is None and not args.sr_dir and not args.bicubic:
        raise SrIqaError("nothing to evaluate: pass --checkpoint FILE (with --adapter), --sr-dir DIR and/or "
                         "--bicubic")
    methods = [bicubic_method(args.scale, args.bicubic)] if args.bicubic else []
    if args.checkpoint is not None:
        import torch
        from accelerate import PartialState

        from sr_iqa.models.generators import generator_scale
        from sr_iqa.models.lora import strength_row_name
        from sr_iqa.models.weight_files import load_upscaler

        # This process's device (cuda:<local rank> under accelerate launch), the one run_eval's Accelerator uses;
        # a bare "cuda" would put every rank's network on GPU 0.
        device = PartialState(cpu=not torch.cuda.is_available()).device
        name = args.name or (args.adapter or args.checkpoint).stem
        strengths = check_strengths(args)
        for strength in strengths:  # one row per strength: the adapter's perception-distortion curve
            network, block = load_upscaler(args.checkpoint, args.adapter, network_g, param_key, strength)
            if generator_scale(block) != args.scale:
                raise SrIqaError(f"{args.checkpoint} upscales x{generator_scale(block)} but the evaluation runs at "
                                 f"--scale {args.scale}; pass --scale {generator_scale(block)}")
            row = name if strengths == [1.0] else strength_row_name(name, strength)
            methods.append(upscaler_method(row, network.to(device).eval(), device, args.tile, args.tile_overlap,
                                           args.scale))
    for entry in args.sr_dir:
        name, _, folder = entry.rpartition("=")
        methods.append(sr_dir_method(name or Path(folder).name, Path(folder)))
    weights_dir = weights_folder(args.weights_dir, iqa)
    metrics = args.metrics
    if not metrics:
        metrics, left_out = default_metrics(weights_dir, iqa.metric_options if iqa is not None else {})
        log_default_metrics(metrics, left_out)
    summary = run_eval(methods, groups, metrics, args.out, args.scale, weights_dir,
                       iqa.metric_options if iqa is not None else {}, args.strict, args.save_sr, args.cache,
                       args.sr_suffix or "")
    if summary is not None:
        print(summary_markdown(summary))
        print(f"\nwrote per_image.csv, summary.csv, summary.md, summary.json to {args.out}")
    return 0


def _infer(args: argparse.Namespace) -> int:
    from sr_iqa.infer import run_infer

    check_tiles(args)
    check_output_folder(args.output, (args.input,))
    network_g, param_key = network_of(args)  # first: it may take the checkpoint from -opt
    check_strengths(args)
    run_infer(args.checkpoint, args.adapter, args.input, args.output, args.tile, args.tile_overlap, network_g,
              param_key, args.lora_strength)
    return 0


def _export(args: argparse.Namespace) -> int:
    from sr_iqa.models.optional_packages import require_onnx_packages

    if args.format == "onnx":
        require_onnx_packages()
    if args.peft:
        if args.adapter is None or args.merge or args.format != "safetensors":
            raise SrIqaError("--peft writes an adapter as PEFT does: pass --adapter FILE, without --merge or "
                             "--format")
        check_output_folder(args.out)
        _check_checkpoint(args.checkpoint, "exporting")
        from sr_iqa.models.weight_files import export_peft_adapter, load_upscaler

        load_upscaler(args.checkpoint, args.adapter, *network_of(args))  # the checks eval and infer make
        folder = export_peft_adapter(args.adapter, args.out, args.lora_strength)
        print(f"wrote {folder} (adapter_config.json, adapter_model.safetensors) at strength {args.lora_strength:g}")
        return 0
    if args.adapter is not None and not args.merge:
        raise SrIqaError("--adapter needs --merge (a generator with the adapter folded in) or --peft (the adapter "
                         "in PEFT's folder format)")
    check_strengths(args)
    check_output_file(args.out)
    _check_checkpoint(args.checkpoint, "exporting")
    from sr_iqa.models.weight_files import export_generator

    out = export_generator(args.checkpoint, args.adapter, args.out, *network_of(args), file_format=args.format,
                           strength=args.lora_strength)
    print(f"wrote {out}" + (f" (adapter merged at strength {args.lora_strength:g})" if args.adapter else ""))
    return 0
