"""A tiny HGGT-layout tree written by the tests, in the exact label-file format of the release."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SLOTS = ("original", "01", "02", "03", "04")


def write_label_file(path: Path, group: str, labels: list[str]) -> None:
    """One annotator's file: Picture_1 is the original (Label null), Picture_2..5 the enhanced GTs."""
    entries: dict = {"Picture_1": {"Name": group, "File": f"original/{group}.png", "Label": None}}
    for number, (slot, label) in enumerate(zip(SLOTS[1:], labels, strict=True), start=2):
        entries[f"Picture_{number}"] = {"Name": f"{group}_{slot}", "File": f"{slot}/{group}_{slot}.png",
                                        "Label": label}
    entries["Time_cost"] = 12.5
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))


def write_hggt_split(images: Path, labels: Path, votes: dict[str, dict[str, list[str]]], size: int = 24,
                     seed: int = 0) -> None:
    """``votes[group][annotator]`` lists the labels of 01..04; every image is random noise of ``size`` pixels."""
    rng = np.random.default_rng(seed)
    for group, by_annotator in votes.items():
        for slot in SLOTS:
            name = f"{group}.png" if slot == "original" else f"{group}_{slot}.png"
            (images / slot).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(images / slot / name)
        for annotator, labels_of_slots in by_annotator.items():
            write_label_file(labels / annotator / f"{group}.json", group, labels_of_slots)


P, S, N = "Positive", "Similar", "Negative"
# Per group and annotator, the labels of 01..04. Expected aggregates are spelt out in the tests.
VOTES = {
    "img1-0-0": {"A": [P, P, N, S], "B": [P, S, N, S], "C": [S, P, S, S]},  # majorities: P P N S
    "img2-0-0": {"A": [P, S, N, P], "B": [S, N, N, P], "C": [N, P, S, S]},  # all differ, all differ, N, P
    "img3-0-0": {"A": [P, S, S, N], "B": [S, P, S, N], "C": [S, S, P, N]},  # no GT with >1 Positive vote
}


SET5 = ("baby", "bird", "butterfly", "head", "woman")


def write_hggt_release(root: Path, size: int = 24, scale: int = 4) -> Path:
    """A small copy of the HGGT release as its README lays it out: two training sets, Test-100 with labels and
    fixed LR images, and the flat Set5 validation folders (GT and LQ, same file names)."""
    rng = np.random.default_rng(7)
    write_hggt_split(root / "Train" / "images" / "0-100", root / "Train" / "labels" / "0-100", VOTES, size)
    second = {f"img{n}-1-1": VOTES[f"img{n}-0-0"] for n in (1, 2)}
    write_hggt_split(root / "Train" / "images" / "101-200", root / "Train" / "labels" / "101-200", second, size, 1)
    test = root / "Test" / "GT" / "Test-100"
    write_hggt_split(test / "images", test / "labels", VOTES, size, 2)
    lr = root / "Test" / "Blind_Degradation_Benchmark_LQ" / "Test-100" / "Blind_LR"
    lr.mkdir(parents=True)
    for original in sorted((test / "images" / "original").glob("*.png")):
        with Image.open(original) as image:
            image.resize((size // scale, size // scale), Image.BICUBIC).save(lr / original.name)
    set5_gt, set5_lq = root / "Test" / "GT" / "Set5", root / "Test" / "Blind_Degradation_Benchmark_LQ" / "Set5"
    set5_gt.mkdir(parents=True)
    set5_lq.mkdir(parents=True)
    for name in SET5:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(set5_gt / f"{name}.png")
        Image.fromarray(rng.integers(0, 256, (size // scale, size // scale, 3), dtype=np.uint8)).save(
            set5_lq / f"{name}.png")
    return root
