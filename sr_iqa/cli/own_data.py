"""Commands that make a multi-GT set of one's own photos: `label serve` (the labelling page), `label auto` (labels
from a metric); `data build` sits with the other `data` commands (data.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sr_iqa.cli.arguments import at_least, device_here


def add_commands(commands: argparse._SubParsersAction) -> None:
    label = commands.add_parser("label", help="label candidate GTs: a page for annotators, or a metric").add_subparsers(
        dest="label_command", required=True)
    serve = label.add_parser("serve", help="a local labelling page (keyboard votes, synced zoom; saves HGGT label "
                                           "files)")
    serve.add_argument("root", type=Path, help="a set `sr-iqa data build` made (or any HGGT release folder)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    serve.add_argument("--port", type=at_least(0), default=8000, help="default 8000; 0 picks a free one")
    serve.set_defaults(handler=_label_serve)
    auto = label.add_parser("auto", help="labels from a no-reference metric, written as one annotator "
                                         "named metric-<name>")
    auto.add_argument("root", type=Path)
    auto.add_argument("--metric", required=True, help="pyiqa no-reference metric (e.g. niqe)")
    auto.add_argument("--margin", type=float, required=True,
                      help="in the metric's units: Positive when a candidate's Q beats the original's by more, "
                           "Negative when it is worse by more, else Similar")
    auto.add_argument("--cache", type=Path, required=True, help="SQLite score cache (created when missing)")
    auto.add_argument("--weights-dir", type=Path, help="folder with metric weight files")
    auto.add_argument("--device", type=device_here, help="default: the process's accelerator device")
    auto.set_defaults(handler=_label_auto)


def add_build(data: argparse._SubParsersAction) -> None:
    """`data build`, under `data`."""
    build = data.add_parser("build", help="a multi-GT set in HGGT's layout from a folder of photos: patches and "
                                          "candidate GTs from enhancers")
    build.add_argument("--photos", type=Path, required=True, help="folder of photos (png, jpg, bmp, tif, webp)")
    build.add_argument("--out", type=Path, required=True, help="the set's root (Train/images/<set>, Train/labels)")
    build.add_argument("--enhancers", type=Path, default=Path("options/data_build/enhancers.yml"),
                       help="option file listing the enhancers (default: unsharp masks, local contrast and "
                            "Real-ESRGAN x4plus; options/data_build/classical.yml needs no network)")
    build.add_argument("--patch-size", type=at_least(1), default=512, help="HGGT's 512 by default")
    build.add_argument("--stride", type=at_least(1), help="default: the patch size (patches do not overlap)")
    build.add_argument("--set", dest="set_name", default="own", help="the set's folder name (default own)")
    build.add_argument("--held-out", action="store_true", help="a test split (Test/GT/<set>/images, as HGGT's "
                                                                "Test-100): groups evaluated on, never trained on")
    build.set_defaults(handler=_data_build)


def _data_build(args: argparse.Namespace) -> int:
    from sr_iqa.own_data.build import BuildSpec, build_photo_set

    spec = BuildSpec(args.patch_size, args.stride or args.patch_size, args.set_name, args.held_out)
    written, kept = build_photo_set(args.photos, args.out, args.enhancers, spec)
    print(f"{spec.images(args.out)}: {written + kept} groups ({written} built now, {kept} already there); label "
          f"them with `sr-iqa label serve {args.out}` or `sr-iqa label auto {args.out} --metric niqe --margin 0.5 "
          f"--cache {args.out / 'scores.db'}`")
    return 0


def _label_serve(args: argparse.Namespace) -> int:
    from sr_iqa.own_data.label_server import serve

    serve(args.root, args.host, args.port)
    return 0


def _label_auto(args: argparse.Namespace) -> int:
    from sr_iqa.own_data.auto_labels import auto_label

    counts = auto_label(args.root, args.metric, args.margin, args.cache, args.weights_dir, args.device)
    print(f"labels from {args.metric} (margin {args.margin:g}) in metric-{args.metric}/: "
          + ", ".join(f"{label} {count}" for label, count in counts.items()))
    return 0
