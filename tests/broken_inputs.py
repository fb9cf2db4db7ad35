"""A set of broken inputs, each run through the real command-line entry point (in-process), and its outcomes.

Each case writes what a careless user or a hostile colleague would pass (an option value, a damaged image or
label file, a tampered score cache or pack, a planted weight file, a resume of the wrong folder) into a folder of
its own, runs one command, and is classed by what happened:

- ``clear``: the exit status the case expects and one ``error:`` line (with the list of problems that follows
  it, where a file has several; ``data check``: its problem list) that holds the case's words; no traceback,
  no payload run, nothing written but lock files;
- ``traceback``: an exception escaped ``main`` (or a traceback was printed);
- ``silent``: the command succeeded where it must refuse;
- ``payload``: a planted payload ran;
- ``unclear``: refused, but not in one line with the case's words, or something was written.

``tests/test_broken_inputs.py`` asserts every case is ``clear``; ``python tests/broken_inputs.py`` prints the
counts (the closing notes quote them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import pickle
import shutil
import sqlite3
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from hggt_tree import VOTES, write_hggt_split  # noqa: E402


class Payload:
    """Unpickled without ``weights_only``, this creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


@dataclass
class Bench:
    """One case's private folder and what cases build there."""

    folder: Path
    undo: list[Callable[[], object]] = dataclasses.field(default_factory=list)  # run after the case

    @property
    def marker(self) -> Path:
        return self.folder / "payload-ran"

    def tree(self, size: int = 64) -> tuple[Path, Path]:
        """A three-group HGGT split (images, labels) of ``size``-pixel noise images."""
        images, labels = self.folder / "data" / "images", self.folder / "data" / "labels"
        write_hggt_split(images, labels, VOTES, size)
        return images, labels

    def options(self, *, data: tuple[Path, Path] | None = None, **changes: object) -> Path:
        """A tiny training's option file on a fresh tree (or ``data``); ``changes``: dotted keys -> values."""
        images, labels = data or self.tree()
        options = {
            "name": "broken", "scale": 4, "manual_seed": 7,
            "network_g": {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1,
                          "num_grow_ch": 4},
            "datasets": {"train": {"dataroot_gt": str(images), "dataroot_label": str(labels), "gt_size": 32,
                                   "batch_size_per_gpu": 2, "num_worker_per_gpu": 0}},
            "path": {"experiments_root": str(self.folder / "experiments")},
            "train": {"total_iter": 2, "optim_g": {"type": "Adam", "lr": 1e-3}, "ema_decay": 0},
            "val": {"val_freq": 0, "metrics": ["psnr"], "save_img": False},
            "logger": {"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": False},
        }
        for dotted, value in changes.items():
            node = options
            *parents, last = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        path = self.folder / "options.yml"
        path.write_text(yaml.safe_dump(options, sort_keys=False))
        return path

    def cache(self, images: Path, metric: str = "niqe") -> Path:
        """A genuine score cache of every image under ``images`` (full images; scores made up, higher is better)."""
        from sr_iqa.iqa.score_cache import ScoreCache, grid_regions

        path = self.folder / "scores.db"
        cache = ScoreCache(path)
        records = cache.records(sorted(images.rglob("*.png")))
        regions = [(r, region) for r in records for region in [r.full, *grid_regions(r.width, r.height, 32, 32)]]
        cache.put([(r.content_hash, metric, region.x, region.y, region.w, region.h, float(i % 7), False)
                   for i, (r, region) in enumerate(regions)])
        cache.store_grids(metric, records, 32, 32)
        cache.close()
        return path


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    prepare: Callable[[Bench], list[str]]  # writes the broken input, returns the command's arguments
    expected: str  # words of the one line; {folder} is the case's folder
    code: int = 2
    # Found only when read, once the run has started (a pack image's checksum): the run folder's options.yml and
    # train.log may exist; no checkpoint may.
    found_in_the_run: bool = False


@dataclass(frozen=True)
class Outcome:
    kind: str  # clear, traceback, silent, payload, unclear
    code: int | None
    output: str


def run(case: Case, bench: Bench) -> Outcome:
    try:
        return _run(case, bench)
    finally:
        for undo in bench.undo:
            undo()
        _reset_accelerate()


def _run(case: Case, bench: Bench) -> Outcome:
    from sr_iqa import cli

    argv = case.prepare(bench)
    before = _files(bench.folder)
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse's refusal
            code = int(exit_.code or 0)
        except BaseException as error:  # noqa: BLE001 - what escapes main is the outcome
            import traceback

            traceback.print_exc()
            print(f"{type(error).__name__}: {error}", file=sys.stderr)
    output = out.getvalue() + err.getvalue()
    allowed = {"experiments/broken/options.yml", "experiments/broken/logs/train.log"} if case.found_in_the_run \
        else set()
    written = sorted(str(p.relative_to(bench.folder)) for p in _files(bench.folder) - before
                     if not p.name.endswith(".lock") and str(p.relative_to(bench.folder)) not in allowed)
    if bench.marker.exists():
        return Outcome("payload", code, output)
    if code is None or "Traceback" in output:
        return Outcome("traceback", code, output)
    if code == 0:
        return Outcome("silent", code, output)
    expected = case.expected.format(folder=bench.folder)
    lines = [line for line in output.splitlines() if "error:" in line]
    message = output[output.find(lines[0]):] if lines else ""  # the line, and a list of problems after it
    one_line = len(lines) == 1 and expected in message if case.code == 2 else expected in output
    if code != case.code or not one_line or written:
        return Outcome("unclear", code, output + (f"\nwritten: {written}" if written else ""))
    return Outcome("clear", code, output)


def _files(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def _reset_accelerate() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


# ----- option values -------------------------------------------------------------------------------------------

def _train(**changes: object) -> Callable[[Bench], list[str]]:
    return lambda bench: ["train", "-opt", str(bench.options(**changes))]


def _override(*overrides: str) -> Callable[[Bench], list[str]]:
    return lambda bench: ["train", "-opt", str(bench.options()), *overrides]


def _schema_keys() -> list[tuple[str, type]]:
    """Every scalar key of the option schema with its type (dotted), the blocks that are None by default too."""
    from sr_iqa.config import schema

    keys: list[tuple[str, type]] = []
    hints_of = {}

    def walk(cls: type, prefix: str) -> None:
        import typing

        hints = hints_of.setdefault(cls, typing.get_type_hints(cls))
        for item in dataclasses.fields(cls):
            hint = hints[item.name]
            inner = [arg for arg in typing.get_args(hint) if arg is not type(None)] or [hint]
            target = inner[0]
            if dataclasses.is_dataclass(target):
                walk(target, f"{prefix}{item.name}.")
            elif target in (int, float, bool) or (isinstance(target, type) and issubclass(target, schema.Enum)):
                keys.append((f"{prefix}{item.name}", target))

    walk(schema.Options, "")
    return keys


# Blocks whose keys only exist once the block is given (None by default), and the keys a value check needs.
_BLOCK_PREFIXES = ("datasets.val.", "lora.", "train.iqa_opt.")


def _typo(key: str) -> str:
    """A misspelling of the last part of ``key``: two neighbouring letters swapped (or one doubled)."""
    *parents, last = key.split(".")
    wrong = last[1] + last[0] + last[2:] if len(last) > 1 and last[0] != last[1] else last + last[-1]
    return ".".join([*parents, wrong])


def _option_cases() -> list[Case]:
    cases = []
    keys = [(key, kind) for key, kind in _schema_keys() if not key.startswith(_BLOCK_PREFIXES)]
    for key, kind in keys:
        typo = _typo(key)
        cases.append(Case("option keys", f"typo {typo}", _override(f"{typo}=1"), f"unknown key '{typo}'"))
        if kind is not bool:  # a choice (an Enum) names its choices, with the key problems of the file
            enum = isinstance(kind, type) and issubclass(kind, Enum)
            cases.append(Case("option types", f"{key}=abc", _override(f"{key}=abc"),
                              f"'{key}' is 'abc', not one of" if enum else f"'{key}' has the wrong type"))
        if kind is float:
            cases.append(Case("non-finite values", f"{key}=nan", _override(f"{key}=.nan"),
                              f"'{key}' must be a finite number, got nan"))
            cases.append(Case("non-finite values", f"{key}=-inf", _override(f"{key}=-.inf"),
                              f"'{key}' must be a finite number, got -inf"))
    for key in ("scale", "train.total_iter", "datasets.train.gt_size", "datasets.train.batch_size_per_gpu",
                "logger.print_freq", "logger.save_checkpoint_freq", "logger.keep_checkpoints", "train.net_d_iters",
                "train.gradient_accumulation_steps", "train.process_group_timeout"):
        cases.append(Case("value ranges", f"{key}=0", _override(f"{key}=0"), f"'{key}' must be at least 1, got 0"))
    for key in ("datasets.train.num_worker_per_gpu", "datasets.train.queue_size", "train.net_d_init_iters",
                "val.val_freq", "val.tracker_images"):
        cases.append(Case("value ranges", f"{key}=-1", _override(f"{key}=-1"),
                          f"'{key}' must be at least 0, got -1"))
    for name in ("./broken", ".", "..", "../escape", "/tmp/abs", ".hidden", "a/b", "x" * 201, "tab\there",
                 "nul\x00x"):
        cases.append(Case("run names", f"name={name[:12]!r}", _train(name=name), "'name' must be a plain folder name"))
    stage2 = {"path.pretrain_network_g": "/nonexistent.safetensors"}
    for key, value, words in [
        ("lora", {"enabled": True, "alpha": float("nan")}, "'lora.alpha' must be a finite number"),
        ("lora", {"enabled": True, "dropout": float("inf")}, "'lora.dropout' must be a finite number"),
        ("train.iqa_opt", {"metric": "niqe", "loss_weight": float("nan")}, "'train.iqa_opt.loss_weight' must be a "
                                                                            "finite number"),
        ("train.iqa_opt", {"metric": "niqe", "loss_weight": -1.0}, "'train.iqa_opt.loss_weight' must be >= 0"),
        ("train.pixel_opt", {"type": "L1Loss", "loss_weight": -1}, "'train.pixel_opt.loss_weight' must be >= 0"),
        ("train.pixel_opt", {"type": "L1Loss", "loss_weight": float("nan")}, "'train.pixel_opt.loss_weight' must be "
                                                                             "a finite number"),
        ("train.neg_opt", {"type": "NegativeGTLoss", "loss_weight": -300}, "'train.neg_opt.loss_weight' must be >= 0"),
        ("train.neg_opt", {"type": "NegativeGTLoss", "window_size": 0}, "window_size must be an odd whole number"),
        ("train.neg_opt", {"type": "NegativeGTLoss", "window_size": 2}, "window_size must be an odd whole number"),
        ("train.optim_g", {"type": "Adam", "lr": float("nan")}, "'train.optim_g.lr' must be a finite number"),
        ("train.optim_g", {"type": "Adam", "lr": -1}, "'train.optim_g' cannot be built: Invalid learning rate"),
        ("train.scheduler", {"type": "MultiStepLR", "milestones": [1], "gamma": float("nan")},
         "'train.scheduler.gamma' must be a finite number"),
        ("sampler", {"type": "sma", "metric": "niqe", "cache": "/c.db", "tau": float("nan")},
         "'sampler.tau' must be a finite number"),
        ("sampler", {"type": "sma", "metric": "niqe", "cache": "/c.db", "tau": 0}, "'sampler.tau' must be positive"),
        ("sampler", {"type": "sma"}, "the sma sampler needs 'sampler.metric' (one metric) or 'sampler.metrics'"),
        ("sampler", {"type": "amo", "metric": "niqe", "metrics": {"piqe": 1}, "cache": "/c.db"},
         "'sampler.metric' and 'sampler.metrics' are both set"),
        ("sampler", {"type": "sma", "metrics": {"niqe": 1, "piqe": 0}, "cache": "/c.db"},
         "'sampler.metrics.piqe' must be a positive weight"),
        ("sampler", {"type": "amo", "mode": "online", "metrics": {"niqe": 1, "piqe": 1}},
         "'sampler.metrics' normalises each metric by its scores of the training GTs: it needs 'sampler.cache'"),
        ("train.iqa_opt", {"loss_weight": 0.1}, "train.iqa_opt needs 'train.iqa_opt.metric' (one metric) or"),
        ("train.iqa_opt", {"metrics": {"niqe": 1, "piqe": 1}}, "set 'train.iqa_opt.cache' (or 'sampler.cache')"),
        ("train.iqa_opt", {"metrics": {"niqe": 1, "piqe": -2}, "cache": "/c.db"},
         "'train.iqa_opt.metrics.piqe' must be a positive weight"),
        ("sampler", {"type": "upos", "exclude_labels": ["Great"]}, "'sampler.exclude_labels' holds ['Great']"),
        ("train.ema_decay", 1.0, "'train.ema_decay' must be in [0, 1)"),
        ("train.warmup_iter", -5, "'train.warmup_iter' must be -1 (no warm-up) or at least 0, got -5"),
        ("train.grad_clip_max_norm", 0.0, "'train.grad_clip_max_norm' must be positive, got 0.0"),
        ("datasets.val_2", {"dataroot_gt": "/x", "nmae": "Set5"}, "unknown key 'datasets.val_2.nmae'; did you mean"),
        ("datasets.val_2", "Set5", "'datasets.val_2' expects a block of keys, got 'Set5'"),
        ("manual_seed", -1, "'manual_seed' must be in [0, "),
        ("sampler", {"type": "sma", "metrics": ["niqe"], "cache": "/c.db"}, "'sampler.metrics'"),
        ("train.iqa_opt", {"metrics": {"niqe": {"deep": 1}}, "cache": "/c.db"}, "'train.iqa_opt.metrics.niqe'"),
        ("iqa", {"metric_options": ["niqe"]}, "'iqa.metric_options'"),
        ("lora", [1, 2], "'lora'"),
        ("sampler", {"type": "sma", "metrics": {"niqe": 1e308, "piqe": 1}, "cache": "/c.db"},
         "'sampler.metrics.niqe' must be a positive weight of at most 1e+06"),
        ("network_g", {"type": "RRDBNet", "num_in_ch": 1, "num_out_ch": 3, "num_feat": 8, "num_block": 1,
                       "num_grow_ch": 4}, "'network_g.num_in_ch' must be 3 (sr_iqa reads and writes RGB images)"),
        ("network_g", {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 4, "num_feat": 8, "num_block": 1,
                       "num_grow_ch": 4}, "'network_g.num_out_ch' must be 3"),
        ("network_g", {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 10**7,
                       "num_grow_ch": 4}, "'network_g.num_block' must be at most 1024"),
        ("train.scheduler", {"type": "MultiStepLR", "milestones": [1], "gamma": -0.5},
         "'train.scheduler.gamma' must be in (0, 1]"),
        ("train.rank_opt", {"type": "RankedGTLoss", "loss_weight": -1}, "'train.rank_opt.loss_weight' must be >= 0"),
        ("sampler", {"type": "rand", "box_stride": 100000}, "'sampler.box_stride' (100000) must be at most "
                                                            "'datasets.train.gt_size' (32)"),
        ("logger.wandb", {"project": ""}, "'logger.wandb.project' must be 1 to 128 letters"),
        ("logger.wandb", {"project": "team/x"}, "'logger.wandb.project' must be 1 to 128 letters"),
        ("logger.wandb", {"project": "x" * 300}, "'logger.wandb.project' must be 1 to 128 letters"),
        ("logger.wandb", {"project": "p", "resume_id": "a\x00b"}, "'logger.wandb.resume_id' must be 1 to 128"),
        ("datasets.train.batch_size_per_gpu", 100000, "'datasets.train.batch_size_per_gpu' must be at most 1024"),
        ("lora", {"enabled": True, "rank": 10**9}, "'lora.rank' must be at most 1024"),
    ]:
        stage = stage2 if key in ("lora", "train.iqa_opt") else {}  # a missing path would be named first
        cases.append(Case("option values", f"{key}={value!r}"[:120], _train(**{key: value, **stage}), words))
    for name, text, words in OPTION_FILE_TEXTS:
        cases.append(Case("option files", name, _option_text(text), words))
    return cases


def _option_text(text: bytes) -> Callable[[Bench], list[str]]:
    """The tiny option file with ``text`` appended (a value no option file can hold)."""
    def prepare(bench: Bench) -> list[str]:
        path = bench.options()
        path.write_bytes(path.read_bytes() + text)
        return ["train", "-opt", str(path)]

    return prepare


OPTION_FILE_TEXTS: list[tuple[str, bytes, str]] = [
    ("a !!set value", b"extra: !!set {a, b}\n", "holds a value an option file cannot"),
    ("a 5000-digit integer", b"manual_seed_x: " + b"9" * 5000 + b"\n", "holds a value an option file cannot"),
    ("an alias bomb", b"".join([b'b0: &b0 ["x","x","x","x","x","x","x","x","x"]\n'] + [
        f"b{k}: &b{k} [{','.join([f'*b{k - 1}'] * 9)}]\n".encode() for k in range(1, 12)]),
     "not valid YAML: YAML node expansion exceeds"),
    ("UTF-16 text", "name: x\n".encode("utf-16"), "not UTF-8 text"),
]


# ----- data ------------------------------------------------------------------------------------------------------

def _first(images: Path, slot: str = "01") -> Path:
    return sorted((images / slot).glob("*.png"))[0]


def _damage_data(damage: Callable[[Path, Path], object]) -> Callable[[Bench], tuple[Path, Path]]:
    def prepare(bench: Bench) -> tuple[Path, Path]:
        images, labels = bench.tree()
        damage(images, labels)
        return images, labels

    return prepare


def _label_file(labels: Path) -> Path:
    return sorted((labels / "A").glob("*.json"))[0]


DATA_DAMAGE: list[tuple[str, Callable[[Path, Path], object], str]] = [
    ("truncated png", lambda images, labels: _first(images).write_bytes(_first(images).read_bytes()[:100]), "{image}"),
    ("empty png", lambda images, labels: _first(images).write_bytes(b""), "{image}"),
    ("text as png", lambda images, labels: _first(images).write_text("not an image"), "{image}"),
    ("gt of another size", lambda images, labels: Image.new("RGB", (48, 48)).save(_first(images)), "{image}"),
    ("gt missing", lambda images, labels: _first(images).unlink(), "{image}"),
    ("label file missing", lambda images, labels: _label_file(labels).unlink(), "label file is missing"),
    ("label not json", lambda images, labels: _label_file(labels).write_text("{nope"), "label file is not valid JSON"),
    ("label deeply nested", lambda images, labels: _label_file(labels).write_text("[" * 200_000 + "]" * 200_000),
     "label file is not valid JSON (nested deeper than the parser allows"),
    ("label binary", lambda images, labels: _label_file(labels).write_bytes(b"\xff\xfe\x00"),
     "label file is not valid JSON"),
    ("label unknown value", lambda images, labels: _label_file(labels).write_text(
        _label_file(labels).read_text().replace('"Positive"', '"Great"', 1)), "unknown label 'Great'"),
    ("label entry missing", lambda images, labels: _label_file(labels).write_text(json.dumps({"Picture_1": {}})),
     "has no 'Picture_2' entry with a 'Label'"),
    ("label a list", lambda images, labels: _label_file(labels).write_text("[1, 2]"), "has no 'Picture_2' entry"),
    ("label a fifo", lambda images, labels: _replace(_label_file(labels), os.mkfifo),
     "label file is not valid JSON (a FIFO, not a plain file)"),
    ("label linked to /dev/zero", lambda images, labels: _replace(_label_file(labels),
                                                                  lambda path: path.symlink_to("/dev/zero")),
     "label file is not valid JSON (a device or socket, not a plain file)"),
    ("label a folder", lambda images, labels: _replace(_label_file(labels), Path.mkdir),
     "label file is not valid JSON (a folder, not a plain file)"),
    ("label a 10,000-digit number", lambda images, labels: _label_file(labels).write_text(
        '{"Picture_2": {"Label": ' + "1" * 10_000 + "}}"), "label file is not valid JSON (Exceeds the limit"),
    ("png with bytes after its end", lambda images, labels: _first(images).write_bytes(
        _first(images).read_bytes() + b"appended"), "img1-0-0_01.png: 8 byte(s) after the PNG image's end"),
]


def _replace(path: Path, make: Callable[[Path], object]) -> None:
    path.unlink()
    make(path)


def _png_of_rows(width: int, height: int, rows: int) -> bytes:
    """A PNG whose header says ``height`` rows and whose (valid, complete) compressed data holds ``rows``."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + bytes(width * 3) for _ in range(rows))  # filter byte 0, then black pixels
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _one_pixel_group(images: Path, labels: Path) -> None:
    for path in images.glob("*/img1-0-0*.png"):
        Image.new("RGB", (1, 1)).save(path)


# Found by `data check` (which decodes every image and checks the sizes against the scale), not by a quick start.
CHECK_ONLY_DAMAGE: list[tuple[str, Callable[[Path, Path], object], str]] = [
    ("png holding 40 of its 64 rows", lambda images, labels: _first(images).write_bytes(_png_of_rows(64, 64, 40)),
     "img1-0-0_01.png: its image data holds 40 of its 64 rows"),
    ("a 1x1 group", _one_pixel_group, "img1-0-0.png: 1x1 is smaller than the scale (x4)"),
]


def _data_cases() -> list[Case]:
    cases = []
    for name, damage, words in DATA_DAMAGE:
        def check(bench: Bench, damage=damage) -> list[str]:
            images, _ = _damage_data(damage)(bench)
            return ["data", "check", str(images.parent), "--quick"]

        def train(bench: Bench, damage=damage) -> list[str]:
            return ["train", "-opt", str(bench.options(data=_damage_data(damage)(bench)))]

        image_words = words.replace("{image}", "img1-0-0_01.png")
        cases.append(Case("data", f"data check: {name}", check, image_words, code=1))
        cases.append(Case("data", f"train: {name}", train, image_words))
    for name, damage, words in CHECK_ONLY_DAMAGE:
        def full_check(bench: Bench, damage=damage) -> list[str]:
            images, _ = _damage_data(damage)(bench)
            return ["data", "check", str(images.parent)]

        cases.append(Case("data", f"data check: {name}", full_check, words, code=1))
    return cases


def _manifest(bench: Bench, lines: list[str] | bytes) -> Path:
    images, _ = bench.tree()
    path = images.parent / "groups.jsonl"
    path.write_bytes(lines if isinstance(lines, bytes) else "\n".join(lines).encode() + b"\n")
    return path


MANIFEST_LINES: list[tuple[str, list[str] | bytes, str]] = [
    ("not json", ["{nope"], ":1: not valid JSON"),
    ("deeply nested", ["[" * 200_000 + "]" * 200_000], ":1: not valid JSON"),
    ("no original", ['{"gts": []}'], ":1: needs an 'original' path"),
    ("name with folders", ['{"original": "images/original/img1-0-0.png", "name": "../x"}'],
     "'name' must be a plain file name"),
    ("name of 300 characters", [json.dumps({"original": "images/original/img1-0-0.png", "name": "x" * 300})],
     "'name' must be a plain file name"),
    ("name holding NUL", [json.dumps({"original": "images/original/img1-0-0.png", "name": "a\x00b"})],
     "'name' must be a plain file name"),
    ("gts not a list", ['{"original": "images/original/img1-0-0.png", "gts": "x.png"}'],
     "'gts' must be a list of paths"),
    ("path outside", ['{"original": "../../../etc/hostname"}'], "lies outside the manifest's folder"),
    ("unknown key", ['{"original": "images/original/img1-0-0.png", "colour": 1}'], "unknown key(s) ['colour']"),
    ("unknown label", ['{"original": "images/original/img1-0-0.png", "gts": ["images/01/img1-0-0_01.png"], '
                       '"labels": ["Great"]}'], "unknown label 'Great'"),
    ("binary file", b"\xff\xfe\x00\x01", "manifest cannot be read as UTF-8 text"),
    ("empty", [""], "holds no groups"),
]


def _manifest_cases() -> list[Case]:
    cases = []
    for name, lines, words in MANIFEST_LINES:
        def check(bench: Bench, lines=lines) -> list[str]:
            return ["data", "check", str(_manifest(bench, lines)), "--quick"]

        cases.append(Case("manifests", f"data check: {name}", check, words, code=1))
    return cases


# ----- score caches ----------------------------------------------------------------------------------------------

CACHE_TAMPERING: list[tuple[str, str, str]] = [
    ("trigger on scores", "CREATE TRIGGER t AFTER INSERT ON scores BEGIN UPDATE scores SET score = 1e9; END",
     "it holds trigger 't'"),
    ("trigger on images", "CREATE TRIGGER t AFTER INSERT ON images BEGIN UPDATE images SET content_hash = 'x'; END",
     "it holds trigger 't'"),
    ("scores as a view", "ALTER TABLE scores RENAME TO real_scores; CREATE VIEW scores AS SELECT content_hash, "
                         "metric, x, y, w, h, 1e9 AS score, lower_better FROM real_scores", "it holds table "
                                                                                            "'real_scores'"),
    ("an extra view", "CREATE VIEW v AS SELECT 1", "it holds view 'v'"),
    ("an extra table", "CREATE TABLE notes (x)", "it holds table 'notes'"),
    ("an extra index", "CREATE INDEX i ON scores (score)", "it holds index 'i'"),
    ("a text score", "UPDATE scores SET score = 'high' WHERE rowid = 1", "table 'scores' has a row sr_iqa never "
                                                                         "writes"),
    ("an infinite score", "UPDATE scores SET score = 9e999 WHERE rowid = 1", "table 'scores' has a row"),
    ("a negative width", "UPDATE images SET width = -5 WHERE rowid = 1", "table 'images' has a row"),
    ("a short grid", "UPDATE grids SET scores = x'00' WHERE rowid = 1", "table 'grids' has a row"),
    ("scores without a column", "CREATE TABLE s2 AS SELECT content_hash, metric, x, y, w, h, score FROM scores; "
                                "DROP TABLE scores; ALTER TABLE s2 RENAME TO scores", "table 'scores' has columns"),
    ("images with another column", "ALTER TABLE images ADD COLUMN note TEXT", "table 'images' has columns"),
]


def _tampered_cache(bench: Bench, statement: str) -> tuple[Path, Path]:
    images, labels = bench.tree()
    cache = bench.cache(images)
    with sqlite3.connect(cache) as db:
        db.executescript(statement)
    db.close()
    return cache, images


def _cache_cases() -> list[Case]:
    cases = []
    for name, statement, words in CACHE_TAMPERING:
        def score(bench: Bench, statement=statement) -> list[str]:
            cache, images = _tampered_cache(bench, statement)
            return ["score", "--dataset", str(images), "--metric", "niqe", "--cache", str(cache), "--num-workers", "0"]

        def preview(bench: Bench, statement=statement) -> list[str]:
            cache, images = _tampered_cache(bench, statement)
            return ["sampler", "preview", "--dataset", str(images), "--cache", str(cache), "--sampler", "sma",
                    "--metric", "niqe", "--out", str(bench.folder / "p.csv")]

        def train(bench: Bench, statement=statement) -> list[str]:
            cache, images = _tampered_cache(bench, statement)
            return ["train", "-opt", str(bench.options(data=(images, images.parent / "labels"), sampler={
                "type": "sma", "metric": "niqe", "cache": str(cache)}))]

        def export(bench: Bench, statement=statement) -> list[str]:
            cache, images = _tampered_cache(bench, statement)
            return ["scores", "export", "--cache", str(cache), "--out", str(bench.folder / "s.csv")]

        for command, prepare in (("score", score), ("sampler preview", preview), ("train sma", train),
                                 ("scores export", export)):
            cases.append(Case("score caches", f"{command}: {name}", prepare, f"not a score cache written by sr_iqa "
                                                                             f"({words}"))
    return cases


# ----- packed stores ---------------------------------------------------------------------------------------------

def _packed(bench: Bench, tamper: Callable[[Path, dict], object]) -> tuple[Path, Path]:
    from sr_iqa.data.packed_store import pack_images

    images, labels = bench.tree()
    pack = bench.folder / "pack"
    pack_images(sorted(images.rglob("*.png")), pack)
    index = json.loads((pack / "index.json").read_text())
    tamper(pack, index)
    (pack / "index.json").write_text(json.dumps(index))
    return pack, images


def _originals(index: dict) -> list[list]:
    """The originals' entries (what training with sampler 'original' reads), by offset."""
    return sorted((entry for name, entry in index["images"].items() if name.startswith("original/")),
                  key=lambda entry: entry[0])


def _swap(index: dict) -> None:
    first, second = _originals(index)[:2]
    first[0], second[0] = second[0], first[0]


def _flip(pack: Path, index: dict) -> None:
    data = bytearray((pack / "pixels.u8").read_bytes())
    data[_originals(index)[0][0] + 7] ^= 1
    (pack / "pixels.u8").write_bytes(bytes(data))


PACK_TAMPERING: list[tuple[str, Callable[[Path, dict], object], str]] = [
    ("swapped offsets", lambda pack, index: _swap(index), "do not match their checksum"),
    ("a flipped bit", _flip, "do not match their checksum"),
    ("truncated pixels", lambda pack, index: os.truncate(pack / "pixels.u8", 999), "pixels.u8 holds 999 bytes"),
    ("a lying shape", lambda pack, index: next(iter(index["images"].values())).__setitem__(1, 9999), "start at byte"),
    ("a text offset", lambda pack, index: next(iter(index["images"].values())).__setitem__(0, "0"),
     "is not [offset, height"),
    ("an older pack", lambda pack, index: index.pop("version", None), "packed by an older sr_iqa"),
    ("an empty index", lambda pack, index: index.clear(), "is not a pack index"),
]


def _pack_cases() -> list[Case]:
    cases = []
    for name, tamper, words in PACK_TAMPERING:
        def check(bench: Bench, tamper=tamper) -> list[str]:
            pack, images = _packed(bench, tamper)
            return ["data", "check", str(images), "--quick", "--pack", str(pack)]

        def train(bench: Bench, tamper=tamper) -> list[str]:
            pack, images = _packed(bench, tamper)
            return ["train", "-opt", str(bench.options(data=(images, images.parent / "labels"),
                                                       **{"datasets.train.pack": str(pack)}))]

        code = 1 if "checksum" in words else 2  # data check lists checksum failures; a broken index stops it
        cases.append(Case("packed stores", f"data check: {name}", check, words, code=code))
        cases.append(Case("packed stores", f"train: {name}", train, words, found_in_the_run="checksum" in words))
    return cases


# ----- weight files ----------------------------------------------------------------------------------------------

def _weights_case(content: Callable[[Path], bytes]) -> Callable[[Bench], list[str]]:
    def prepare(bench: Bench) -> list[str]:
        images, _ = bench.tree()
        weights = bench.folder / "weights"
        weights.mkdir()
        (weights / "brisque_svm_weights.pth").write_bytes(content(bench.marker))
        import pyiqa.utils.download_util as pyiqa_download  # its cache: this case's, never the user's

        bench.undo.append(lambda cache=pyiqa_download.DEFAULT_CACHE_DIR: setattr(pyiqa_download, "DEFAULT_CACHE_DIR",
                                                                                 cache))
        pyiqa_download.DEFAULT_CACHE_DIR = str(bench.folder / "pyiqa")
        return ["score", "--dataset", str(images), "--metric", "brisque", "--cache", str(bench.folder / "s.db"),
                "--weights-dir", str(weights), "--num-workers", "0"]

    return prepare


def _torch_bytes(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


WEIGHT_FILES: list[tuple[str, Callable[[Path], bytes], str]] = [
    ("a torch file with a payload", lambda marker: _torch_bytes((Payload(marker), torch.zeros(2))),
     "holds pickled objects other than tensors"),
    ("a bare pickle with a payload", lambda marker: pickle.dumps(Payload(marker), protocol=2),
     "holds pickled objects other than tensors"),
    ("a framed pickle with a payload", lambda marker: pickle.dumps(Payload(marker)), "is not a weight file"),
    ("a pickled dict", lambda marker: pickle.dumps({"sv": 1}, protocol=2), "is not a weight file"),
    ("random bytes", lambda marker: bytes(range(256)) * 4, "is not a weight file"),
    ("a numpy object array", lambda marker: _npy_with_objects(marker), "is not a weight file"),
]


def _npy_with_objects(marker: Path) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def _weight_cases() -> list[Case]:
    return [Case("weight files", name, _weights_case(content), f"metric 'brisque': {{folder}}/weights/"
                                                                f"brisque_svm_weights.pth {words}")
            for name, content, words in WEIGHT_FILES]


# ----- flags -----------------------------------------------------------------------------------------------------

def _flag_case(*arguments: str) -> Callable[[Bench], list[str]]:
    def prepare(bench: Bench) -> list[str]:
        images, _ = bench.tree()
        (bench.folder / "text.db").write_text("not a database\n")
        return [part.format(images=images, folder=bench.folder) for part in arguments]

    return prepare


FLAGS: list[tuple[tuple[str, ...], str]] = [
    (("score", "--dataset", "{images}", "--metric", "niqe", "--cache", "{folder}/text.db"), "cannot be opened as a "
                                                                                            "score cache"),
    (("score", "--dataset", "{images}", "--metric", "nosuch", "--cache", "{folder}/n.db"), "nosuch"),
    (("score", "--dataset", "{images}", "--metric", "niqe", "--cache", "{folder}/n.db", "--grid", "16:8"),
     "NIQE needs crops of at least"),
    (("score", "--dataset", "{images}", "--metric", "niqe", "--cache", "{folder}/n.db", "--grid", "abc"), "--grid"),
    (("score", "--dataset", "{folder}/nowhere", "--metric", "niqe", "--cache", "{folder}/n.db"), "nowhere"),
    (("sampler", "preview", "--dataset", "{images}", "--cache", "{folder}/n.db", "--sampler", "sma", "--metric",
      "niqe", "--tau", "nan"), "argument --tau: must be a finite number above 0"),
    (("sampler", "preview", "--dataset", "{images}", "--cache", "{folder}/none.db", "--sampler", "sma", "--metric",
      "niqe"), "no score cache there"),
    (("sampler", "preview", "--dataset", "{images}", "--cache", "{folder}/n.db", "--sampler", "sma", "--metric",
      "niqe:0", "--metric", "piqe"), "argument --metric: must be a finite number above 0, got 0"),
    (("sampler", "preview", "--dataset", "{images}", "--cache", "{folder}/n.db", "--sampler", "sma", "--metric",
      ":2"), "argument --metric: expected NAME or NAME:WEIGHT"),
    (("sampler", "preview", "--dataset", "{images}", "--cache", "{folder}/n.db", "--sampler", "sma", "--metric",
      "niqe", "--metric", "niqe:2"), "--metric names a metric twice"),
    (("scores", "export", "--cache", "{folder}/text.db", "--out", "{folder}/o.csv"), "not a score cache"),
    (("data", "check", "{folder}/nowhere"), "nowhere"),
    (("data", "pack", "{folder}/nowhere", "--out", "{folder}/pack"), "nowhere"),
    (("infer", "--checkpoint", "{folder}/none.safetensors", "--input", "{images}/original", "--output",
      "{folder}/out"), "none.safetensors"),
    (("infer", "--checkpoint", "{folder}/text.db", "--input", "{images}/original", "--output", "{folder}/out"),
     "text.db"),
    (("eval", "--dataset", "{images}", "--checkpoint", "{folder}/none.safetensors", "--out", "{folder}/e"),
     "none.safetensors"),
    (("eval", "--dataset", "{images}", "--sr-dir", "{images}/original", "--metrics", "niqe", "--cache",
      "{folder}/text.db", "--out", "{folder}/e"), "not a score cache"),
    (("export", "--checkpoint", "{folder}/none.safetensors", "--adapter", "{folder}/a.safetensors", "--peft",
      "--format", "onnx", "--out", "{folder}/p"), "without --merge or --format"),
    (("export", "--checkpoint", "{folder}/none.safetensors", "--format", "tflite", "--out", "{folder}/m"),
     "argument --format: invalid choice"),
]


def _flag_cases() -> list[Case]:
    return [Case("flags", " ".join(arguments).replace("{folder}/", "").replace("{images}", "IMAGES"),
                 _flag_case(*arguments), words)
            for arguments, words in FLAGS]


# ----- output paths that are not a plain file's or a folder's place --------------------------------------------

def _output_case(obstacle: str, *arguments: str) -> Callable[[Bench], list[str]]:
    """``obstacle`` at {folder}/x before the command: "folder", "file" or "fifo"."""
    def prepare(bench: Bench) -> list[str]:
        images, _ = bench.tree()
        cache = bench.cache(images)
        target = bench.folder / "x"
        {"folder": target.mkdir, "file": lambda: target.write_text("mine\n"),
         "fifo": lambda: os.mkfifo(target)}[obstacle]()
        return [part.format(images=images, folder=bench.folder, cache=cache) for part in arguments]

    return prepare


OUTPUTS: list[tuple[str, tuple[str, ...], str]] = [
    ("fifo", ("scores", "export", "--cache", "{cache}", "--out", "{folder}/x"), "x is not a plain file"),
    ("folder", ("scores", "export", "--cache", "{cache}", "--out", "{folder}/x"), "x is a folder"),
    ("folder", ("sampler", "preview", "--dataset", "{images}", "--cache", "{cache}", "--sampler", "sma", "--metric",
                "niqe", "--out", "{folder}/x"), "x is a folder"),
    ("folder", ("export", "--checkpoint", "{folder}/none.safetensors", "--out", "{folder}/x"), "x is a folder"),
    ("file", ("export", "--checkpoint", "{folder}/none.safetensors", "--out", "{folder}/x/g.safetensors"),
     "x is a file, not a folder"),
    ("file", ("eval", "--dataset", "{images}", "--sr-dir", "{images}/original", "--metrics", "psnr", "--out",
              "{folder}/x"), "x is a file, not a folder"),
    ("file", ("eval", "--dataset", "{images}", "--sr-dir", "{images}/original", "--metrics", "psnr", "--out",
              "{folder}/e", "--save-sr", "{folder}/x/sr"), "x is a file, not a folder"),
    ("folder", ("eval", "--dataset", "{images}", "--sr-dir", "{images}/original", "--metrics", "psnr", "--out",
                "{folder}/e", "--save-sr", "{images}"), "would write over the inputs"),
    ("file", ("infer", "--checkpoint", "{folder}/none.safetensors", "--input", "{images}/original", "--output",
              "{folder}/x"), "x is a file, not a folder"),
    ("folder", ("infer", "--checkpoint", "{folder}/none.safetensors", "--input", "{images}/original", "--output",
                "{images}/original"), "would write over the inputs"),
    ("file", ("weights", "install", "brisque-svr", "--dir", "{folder}/x"), "x is a file, not a folder"),
]


def _output_cases() -> list[Case]:
    return [Case("output paths", f"{obstacle}: " + " ".join(arguments).replace("{folder}/", ""),
                 _output_case(obstacle, *arguments), words)
            for obstacle, arguments, words in OUTPUTS]


# ----- commands asked for what they cannot mean -------------------------------------------------------------------

TINY_RRDB = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 4,
             "scale": 4}


def _x4_checkpoint(bench: Bench) -> Path:
    """A tiny x4 RRDBNet saved as training saves its generator (weights + network_g metadata)."""
    from sr_iqa.models.generators import build_generator
    from sr_iqa.models.weight_files import generator_metadata
    from sr_iqa.tensor_files import save_tensors

    path = bench.folder / "net_g.safetensors"
    save_tensors(build_generator(TINY_RRDB, 4).state_dict(), path, generator_metadata(TINY_RRDB))
    return path


def _meaning_case(arguments: tuple[str, ...], setup: Callable[[Bench, Path], object] = lambda bench, images: None
                  ) -> Callable[[Bench], list[str]]:
    def prepare(bench: Bench) -> list[str]:
        images, _ = bench.tree()
        cache = bench.cache(images)
        setup(bench, images)
        checkpoint = _x4_checkpoint(bench) if any("{checkpoint}" in part for part in arguments) else None
        return [part.format(images=images, folder=bench.folder, cache=cache, checkpoint=checkpoint)
                for part in arguments]

    return prepare


def _unscored(bench: Bench, images: Path) -> None:
    with sqlite3.connect(bench.folder / "scores.db") as db:
        db.execute("UPDATE scores SET score = NULL")
    db.close()


def _latin1_name(bench: Bench, images: Path) -> None:
    """An original named in Latin-1 (\\xe9), as an old archive unpacks it."""
    os.rename(bytes(images / "original" / "img1-0-0.png"), bytes(images / "original") + b"/caf\xe9.png")


MEANINGS: list[tuple[str, tuple[str, ...], Callable[[Bench, Path], object], str]] = [
    ("a full-reference metric cached as Q", ("score", "--dataset", "{images}", "--metric", "psnr", "--cache",
                                            "{folder}/fr.db"), lambda bench, images: None, "psnr: full-reference"),
    ("eval at another scale than the network's", ("eval", "--dataset", "{images}", "--checkpoint", "{checkpoint}",
                                                 "--scale", "2", "--metrics", "psnr", "--out", "{folder}/e"),
     lambda bench, images: None, "upscales x4 but the evaluation runs at --scale 2; pass --scale 4"),
    ("two --sr-dir of one name", ("eval", "--dataset", "{images}", "--sr-dir", "a={images}/original", "--sr-dir",
                                  "a={images}/01", "--metrics", "psnr", "--out", "{folder}/e"),
     lambda bench, images: None, "method name(s) given twice: a"),
    ("a score cache whose every score is NULL", ("sampler", "preview", "--dataset", "{images}", "--cache", "{cache}",
                                                 "--sampler", "sma", "--metric", "niqe", "--out", "{folder}/p.csv"),
     _unscored, "every 'niqe' score of the training GTs is NaN"),
    ("file names that are not UTF-8", ("score", "--dataset", "{images}", "--metric", "niqe", "--cache",
                                       "{folder}/n.db"), _latin1_name, "the file name is not UTF-8"),
    ("an adapter strength of a million", ("eval", "--dataset", "{images}", "--checkpoint", "{checkpoint}",
                                          "--adapter", "{folder}/a.safetensors", "--lora-strength", "1e6", "--out",
                                          "{folder}/e"), lambda bench, images: None,
     "argument --lora-strength: must be a number from 0 to 10"),
]


def _weights_with(network_g: str, change: Callable[[dict], dict] = dict, adapter: dict | None = None
                  ) -> Callable[[Bench], list[str]]:
    """``infer`` with a tiny x4 checkpoint whose ``sr_iqa.network_g`` metadata is ``network_g`` and whose tensors
    are ``change``d; with ``adapter`` (tensors changed by ``change``, ``sr_iqa.lora`` from it) as well."""
    def prepare(bench: Bench) -> list[str]:
        from sr_iqa.models.generators import build_generator
        from sr_iqa.models.lora import AdapterSettings, adapter_state, add_adapters
        from sr_iqa.tensor_files import save_tensors

        images, _ = bench.tree()
        checkpoint, arguments = bench.folder / "net_g.safetensors", []
        net = build_generator(TINY_RRDB, 4)
        state = net.state_dict() if adapter is not None else change(net.state_dict())
        save_tensors(state, checkpoint, {"sr_iqa.network_g": network_g})
        if adapter is not None:
            settings = AdapterSettings(4, 4.0, 0.0, ("conv1",))
            lora_state = change(adapter_state(add_adapters(net, settings)))
            save_tensors(lora_state, bench.folder / "lora.safetensors", {
                "sr_iqa.network_g": network_g, "sr_iqa.lora": json.dumps(adapter)})
            arguments = ["--adapter", str(bench.folder / "lora.safetensors")]
        return ["infer", "--checkpoint", str(checkpoint), *arguments, "--input", str(images / "original"),
                "--output", str(bench.folder / "out")]

    return prepare


def _each(value: float) -> Callable[[dict], dict]:
    return lambda state: {name: torch.full_like(tensor, value) for name, tensor in state.items()}


TINY_JSON = json.dumps(TINY_RRDB)
LORA_JSON = {"rank": 4, "alpha": 4.0, "dropout": 0.0, "target_modules": ["conv1"]}
WEIGHT_METADATA: list[tuple[str, Callable[[Bench], list[str]], str]] = [
    ("empty network_g", _weights_with(""), "its 'sr_iqa.network_g' metadata is not a network_g block"),
    ("network_g not JSON", _weights_with("{type: RRDB"), "its 'sr_iqa.network_g' metadata is not a network_g block"),
    ("network_g nested deep", _weights_with("[" * 100_000 + "]" * 100_000),
     "its 'sr_iqa.network_g' metadata is not a network_g block"),
    ("network_g a list", _weights_with("[1, 2]"), "its 'sr_iqa.network_g' metadata is not a network_g block"),
    ("num_block 10^7", _weights_with(json.dumps({**TINY_RRDB, "num_block": 10**7})),
     "'network_g.num_block' must be at most 1024"),
    ("num_feat 2e5", _weights_with(json.dumps({**TINY_RRDB, "num_feat": 200_000})),
     "'network_g.num_feat' must be at most 1024"),
    ("scale lying", _weights_with(json.dumps({**TINY_RRDB, "scale": 2})), "does not fit network_g"),
    ("int64 weights", _weights_with(TINY_JSON, lambda state: {k: v.long() for k, v in state.items()}),
     "holds torch.int64 values, not floating-point weights"),
    ("weights of 1e38", _weights_with(TINY_JSON, _each(1e38)), "holds weights beyond +-1e+06"),
    ("adapter of NaN", _weights_with(TINY_JSON, _each(float("nan")), LORA_JSON), "holds NaN or infinite weights"),
    ("adapter of 1e30", _weights_with(TINY_JSON, _each(1e30), LORA_JSON), "holds weights beyond +-1e+06"),
    ("adapter of rank 10^9", _weights_with(TINY_JSON, dict, {**LORA_JSON, "rank": 10**9}),
     "rank must be a whole number from 1 to 1024"),
    ("adapter settings a list", _weights_with(TINY_JSON, dict, [1]),  # type: ignore[arg-type]
     "'sr_iqa.lora' metadata is not an adapter's settings"),
]


def _meaning_cases() -> list[Case]:
    cases = [Case("meaning", name, _meaning_case(arguments, setup), words)
             for name, arguments, setup, words in MEANINGS]
    return cases + [
        Case("meaning", "cached AMO without its score cache", _train(sampler={
            "type": "amo", "metric": "niqe", "cache": "/nowhere/scores.db"}),
             "sampler.cache: no score cache at /nowhere/scores.db; write it with `sr-iqa score -opt <this option "
             "file> --metric niqe --cache /nowhere/scores.db --grid 32:32`"),
        Case("meaning", "a manifest that is not there", _flag_case(
            "score", "--dataset", "{folder}/groups.jsonl", "--metric", "niqe", "--cache", "{folder}/n.db"),
             "groups.jsonl: manifest file is missing")]


def _metadata_cases() -> list[Case]:
    return [Case("weight metadata", name, prepare, words) for name, prepare, words in WEIGHT_METADATA]


CASES: list[Case] = [*_option_cases(), *_data_cases(), *_manifest_cases(), *_cache_cases(), *_pack_cases(),
                     *_weight_cases(), *_flag_cases(), *_output_cases(), *_meaning_cases(),
                     *_metadata_cases()]


def main() -> int:
    """Run every case in a temporary folder; print each that is not clear, then the counts."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sr_iqa_broken_") as scratch:
        counts: Counter = Counter()
        by_family: Counter = Counter()
        for number, case in enumerate(CASES):
            folder = Path(scratch) / f"case{number}"
            folder.mkdir()
            outcome = run(case, Bench(folder))
            counts[outcome.kind] += 1
            by_family[case.family, outcome.kind] += 1
            if outcome.kind != "clear":
                print(f"{outcome.kind}: [{case.family}] {case.name}\n  {outcome.output.strip()[-600:]}")
            shutil.rmtree(folder)
    print(f"\n{len(CASES)} cases: " + ", ".join(f"{counts[k]} {k}" for k in ("clear", "traceback", "silent",
                                                                             "payload", "unclear")))
    for family in dict.fromkeys(case.family for case in CASES):
        print(f"  {family}: " + ", ".join(f"{by_family[family, k]} {k}" for k in ("clear", "traceback", "silent",
                                                                                "payload", "unclear")
                                           if by_family[family, k]))
    return 0 if counts["clear"] == len(CASES) else 1


if __name__ == "__main__":
    sys.exit(main())
