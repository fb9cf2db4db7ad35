"""The command line's shared arguments and argument types."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable
from pathlib import Path

from sr_iqa.config.schema import Options
from sr_iqa.errors import SrIqaError

log = logging.getLogger("sr_iqa.cli")


def add_data_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", type=Path, help="HGGT release root, one images folder, or a manifest .jsonl")
    source.add_argument("-opt", "--opt", type=Path, help="option file: its train and val data")
    parser.add_argument("--layout", choices=["hggt", "manifest"], help="with --dataset; default: detected")
    parser.add_argument("--scale", type=int, default=4, help="with --dataset: fixed LR must be GT size / scale")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="with -opt: option overrides")


def groups_of(args: argparse.Namespace, options: Options | None = None, training_only: bool = False,
              notes: list[str] | None = None) -> list:
    """Every group of ``--dataset ROOT`` (all splits) or of ``-opt FILE``'s train and val sets (``options``: that
    file, when the caller has loaded it already), validated. ``training_only``: the training split(s) alone (a
    release root's ``Train/`` sets; -opt's train set), for what only training sees (the sampler's preview).
    ``notes``: a list the indexes' notes are added to (labels made by a metric, a missing fixed LR)."""
    from sr_iqa.data.validation import validated

    notes = [] if notes is None else notes
    if args.opt is not None:
        from sr_iqa.checked_options import load_options
        from sr_iqa.data.sources import group_index

        options = options or load_options(args.opt, args.overrides)
        indexes = [group_index(options.datasets.train, options.scale)]
        for val in [] if training_only else [options.datasets.val, *options.datasets.extra_val.values()]:
            if val is not None:
                indexes.append(group_index(val, options.scale, with_lr=True))
        notes += [note for index in indexes for note in index.notes]
        return [group for index in indexes for group in index.groups]
    from sr_iqa.data.check import discover_splits

    splits = discover_splits(args.dataset, args.layout)
    if training_only and any(name.startswith("Train/") for name in splits):
        splits = {name: index for name, index in splits.items() if name.startswith("Train/")}
    notes += [note for index in splits.values() for note in index.notes]
    return [group for index in splits.values() for group in validated(index, args.scale).groups]


def network_of(args: argparse.Namespace) -> tuple[dict | None, str]:
    """``-opt``'s network_g (for weight files that do not record theirs, such as BasicSR .pth) and param_key_g;
    (None, "params") without -opt. Without ``--checkpoint``, the option file's ``path.pretrain_network_g`` (as
    BasicSR's test files name it) goes into ``args.checkpoint``; with neither, one error line."""
    if args.opt is None:
        if args.checkpoint is None:
            raise SrIqaError("no generator: pass --checkpoint FILE, or -opt a test file whose "
                             "path.pretrain_network_g names one")
        return None, "params"
    from sr_iqa.checked_options import load_inference_options

    options = load_inference_options(args.opt, args.overrides)
    if args.checkpoint is None:
        if not options.checkpoint:
            raise SrIqaError(f"no generator: pass --checkpoint FILE, or give {args.opt} a path.pretrain_network_g")
        args.checkpoint = Path(options.checkpoint)
    return options.network_g, options.param_key


DEFAULT_TILE_OVERLAP = 16  # LR pixels; a quarter of the tile for tiles under 64


def check_tiles(args: argparse.Namespace) -> None:
    """``--tile-overlap`` not given: 16 LR pixels, or a quarter of a smaller tile; given: at least 0, below --tile."""
    if args.tile_overlap is None:
        args.tile_overlap = min(DEFAULT_TILE_OVERLAP, args.tile // 4)
    elif args.tile > 0 and not 0 <= args.tile_overlap < args.tile:
        raise SrIqaError(f"--tile-overlap must be at least 0 and below --tile ({args.tile}), got {args.tile_overlap}")


MAX_LORA_STRENGTH = 10.0  # beyond, the merged weights leave what the adapter learnt and images overflow


def lora_strength(text: str) -> float:
    """An argparse type: an adapter strength from 0 (the base network) through 1 (as trained) to
    ``MAX_LORA_STRENGTH``."""
    return _number(text, 0.0, inclusive=True, largest=MAX_LORA_STRENGTH,
                   requirement=f"a number from 0 to {MAX_LORA_STRENGTH:g} (0: the base network, 1: the adapter as "
                               "trained)")


def sr_suffix(text: str) -> str:
    """An argparse type: the part after ``<group>_`` in saved SR names; letters, digits, - and . only, so that it
    stays one file name and HGGT's scripts find the group by dropping the last ``_`` part."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9.-]+", text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"'{text}' is not a file-name suffix: letters, digits, '-' and '.' only "
                                         "(no '_', which HGGT's scripts split on, and no '/')")
    return text


def check_strengths(args: argparse.Namespace) -> list[float]:
    """The ``--lora-strength`` values, which need ``--adapter``; above 1 extrapolates, said in one line."""
    strengths = args.lora_strength if isinstance(args.lora_strength, list) else [args.lora_strength]
    if args.adapter is None and strengths != [1.0]:
        raise SrIqaError("--lora-strength scales an adapter: pass --adapter FILE too")
    for strength in strengths:
        if strength > 1:
            log.warning("LoRA strength %g extrapolates beyond the adapter as trained (1); check its images", strength)
    return strengths


def row_name(text: str) -> str:
    """An argparse type: a table row's name, printable and not blank (``--bicubic ""`` once gave no row at all)."""
    if not text.strip() or not text.isprintable():
        raise argparse.ArgumentTypeError(f"a row name must be printable and not blank, got {text!r}")
    return text


def at_least(smallest: int) -> Callable[[str], int]:
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


def _number(text: str, smallest: float, inclusive: bool, requirement: str, largest: float = math.inf) -> float:
    """A finite number of at least (``inclusive``) or above ``smallest``, and at most ``largest``, else ``must be
    <requirement>``; ``nan`` parses as a float and slips past comparisons, so finiteness is checked first."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < smallest or (value == smallest and not inclusive) or value > largest:
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
    return value


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0."""
    return _number(text, 0.0, inclusive=False, requirement="a finite number above 0")


def device_here(text: str) -> str:
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


def weighted_metric(text: str) -> tuple[str, float]:
    """An argparse type: ``NAME`` or ``NAME:WEIGHT`` (a weight above 0), one metric of a Q made of several."""
    name, _, weight = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME:WEIGHT, got {text!r}")
    return name, positive_number(weight) if weight else 1.0
