"""``sr-iqa``: the entry point, logging and the one error boundary. The subcommands are grouped by what they
serve (training.py, data.py, own_data.py, networks.py); each parses its arguments and calls one function of a module.

Imports of torch-heavy modules happen inside the handlers, so ``sr-iqa --help`` and an
option-file typo answer in about a second.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from sr_iqa.cli import data, networks, own_data, training
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


def lone_launch_warning() -> str | None:
    """``accelerate launch --num_processes 2`` without a multi-process flag (``--cpu`` alone, say) runs Accelerate's
    simple launcher: one process, which it gives MASTER_ADDR (for N > 1) but no WORLD_SIZE. Said in one line, or
    the only sign is "process 0 of 1"."""
    env = os.environ
    if "ACCELERATE_MIXED_PRECISION" in env and "MASTER_ADDR" in env and "WORLD_SIZE" not in env:
        return ("accelerate launch was asked for several processes but started this one alone; add --multi_gpu "
                "(on a machine without GPUs too: the processes then use gloo on the CPU) to start them all")
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sr-iqa", description="Perceptual SR training with IQA-guided multi-GT supervision (see README.md).")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (training, data, own_data, networks):  # the help lists them in this order
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    warning = lone_launch_warning()
    if warning is not None:
        log.warning("%s", warning)
    try:
        return args.handler(args)
    except SrIqaError as error:
        print(f"sr-iqa {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sr-iqa {args.command}: interrupted", file=sys.stderr)
        return 130
