"""``sr-iqa`` subcommands. Each parses its arguments and calls one function of a module.

Imports of torch-heavy modules happen inside the handlers, so ``sr-iqa --help`` and an
option-file typo answer in about a second.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sr_iqa.errors import SrIqaError


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
    logger.addHandler(handler)
    logger.propagate = False


def _train(args: argparse.Namespace) -> int:
    from sr_iqa.config import load_options

    options = load_options(args.opt, args.overrides)
    from sr_iqa.train.trainer import Trainer

    Trainer(options, source=str(args.opt)).train()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sr_iqa.demo import run_demo

    run_demo(dataset_root=args.dataset_root, options_file=args.opt, overrides=args.overrides, fresh=args.fresh)
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from sr_iqa.data.check import run_data_check

    return run_data_check(args.root, args.layout, args.scale, args.positive_only, decode=not args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sr-iqa", description="Perceptual SR training with IQA-guided multi-GT supervision (see README.md).")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a generator from a BasicSR-style option file")
    train.add_argument("-opt", "--opt", required=True, type=Path, help="YAML option file")
    train.add_argument("overrides", nargs="*", metavar="key.sub=value", help="option overrides")
    train.set_defaults(handler=_train)

    demo = commands.add_parser("demo", help="build the demo set, train a small RRDB, print the metrics table")
    demo.add_argument("--dataset-root", type=Path, default=Path("datasets/demo"))
    demo.add_argument("-opt", "--opt", type=Path, default=Path("options/demo/train_rrdb_demo.yml"))
    demo.add_argument("--fresh", action="store_true", help="delete an earlier demo run and train again")
    demo.add_argument("overrides", nargs="*", metavar="key.sub=value", help="option overrides")
    demo.set_defaults(handler=_demo)
    data = commands.add_parser("data", help="data set tools").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="validate a data set and print its label summary")
    check.add_argument("root", type=Path, help="HGGT release root (or one images folder), or a manifest .jsonl")
    check.add_argument("--layout", choices=["hggt", "manifest"], help="default: detected")
    check.add_argument("--scale", type=int, default=4, help="fixed LR images must be GT size / scale")
    check.add_argument("--positive-only", action="store_true", help="also report HGGT's positive-only filter")
    check.add_argument("--quick", action="store_true", help="check headers and end markers only, no full decode")
    check.set_defaults(handler=_data_check)
    return parser


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
