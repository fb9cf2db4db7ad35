"""`data build` (patches and candidate GTs from photos), `label auto` (labels from a metric) and the annotators'
agreement (Fleiss' kappa) that `agree` prints."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from sr_iqa.data.check import discover_splits
from sr_iqa.data.demo_set import load_photo
from sr_iqa.data.groups import keep_positive_groups
from sr_iqa.data.image_io import read_rgb_array
from sr_iqa.iqa.agreement import fleiss_kappa
from sr_iqa.own_data.build import patch_starts
from sr_iqa.own_data.enhancers import read_enhancer_file
from tests.conftest import REPO, run_cli, tiny_options, write_options
from tests.own_data_sets import UNSHARP, enhancer_file, photo_folder

CLASSICAL = REPO / "options" / "data_build" / "classical.yml"


@pytest.mark.parametrize("path", sorted((REPO / "options" / "data_build").glob("*.yml")), ids=lambda p: p.name)
def test_the_shipped_enhancer_files_read_with_their_own_loader(path: Path):
    specs = read_enhancer_file(path)
    assert 1 <= len(specs) <= 4  # HGGT's candidate slots 01..04
    assert {spec.type for spec in specs} <= {"unsharp", "local_contrast", "network"}


def test_patch_positions_follow_basicsr_extract_subimages():
    # Hand-counted: a grid of the stride, then one patch flush with the end when the grid leaves pixels over.
    assert patch_starts(300, 128, 128) == [0, 128, 172]
    assert patch_starts(256, 128, 128) == [0, 128]
    assert patch_starts(256, 128, 64) == [0, 64, 128]
    assert patch_starts(100, 128, 128) == []


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """coffee (400x600) and chelsea (300x451) cut into 128-px patches with the classical enhancers."""
    folder = tmp_path_factory.mktemp("own")
    photos = photo_folder(folder / "photos", {"coffee": (256, 384), "chelsea": (200, 300)})
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(folder / "set"), "--enhancers",
                     str(CLASSICAL), "--patch-size", "128")
    assert result.returncode == 0, result.stderr
    return folder / "set"


def test_build_cuts_hggt_named_patches_and_records_each_enhancer(built: Path):
    images = built / "Train" / "images" / "own"
    names = sorted(p.stem for p in (images / "original").glob("*.png"))
    # coffee 256x384: 2 rows x 3 columns; chelsea 200x300: rows 0, 72 and columns 0, 128, 172.
    assert names == sorted([f"coffee-{x}-{y}" for y in (0, 128) for x in (0, 128, 256)]
                           + [f"chelsea-{x}-{y}" for y in (0, 72) for x in (0, 128, 172)])
    photo = load_photo("chelsea")[:200, :300]
    original = read_rgb_array(images / "original" / "chelsea-172-72.png")
    assert np.array_equal(original, photo[72:200, 172:300])  # NAME-x-y: x the left edge, y the top
    # Slot 02 is PIL's unsharp mask of the patch with the file's radius and percent.
    expected = np.array(Image.fromarray(original).filter(ImageFilter.UnsharpMask(2.0, 200, 0)))
    assert np.array_equal(read_rgb_array(images / "02" / "chelsea-172-72_02.png"), expected)
    record = json.loads((images / "02" / "enhancer.json").read_text())
    assert record == {"type": "unsharp", "radius": 2.0, "percent": 200, "threshold": 0}
    assert sorted(json.loads((images / "build.json").read_text())["enhancers"]) == ["01", "02", "03", "04"]
    assert (built / "Train" / "labels" / "own").is_dir()


def test_a_killed_build_resumes_to_the_same_files(tmp_path: Path, built: Path):
    photos = photo_folder(tmp_path / "photos", {"coffee": (256, 384), "chelsea": (200, 300)})
    out = tmp_path / "set"
    command = [sys.executable, "-m", "sr_iqa", "data", "build", "--photos", str(photos), "--out", str(out),
               "--enhancers", str(CLASSICAL), "--patch-size", "128"]
    build = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    originals = out / "Train" / "images" / "own" / "original"
    deadline = time.monotonic() + 60
    while not (originals.is_dir() and any(originals.glob("*.png"))) and time.monotonic() < deadline:
        time.sleep(0.01)
    build.send_signal(signal.SIGKILL)
    build.wait()
    killed_at = len(list(originals.glob("*.png")))
    assert 0 < killed_at < 12
    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ,
                                                                                      "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr
    assert f", {killed_at} already there" in resumed.stdout
    reference = {p.relative_to(built): p.read_bytes() for p in (built / "Train").rglob("*.png")}
    rebuilt = {p.relative_to(out): p.read_bytes() for p in (out / "Train").rglob("*.png")}
    assert rebuilt == reference
    assert not list(out.rglob("*.partial"))


def test_build_refuses_what_it_cannot_build_in_one_line(tmp_path: Path, built: Path):
    photos = photo_folder(tmp_path / "photos", {"coffee": (256, 256)})
    typo = enhancer_file(tmp_path / "typo.yml", {**UNSHARP, "radious": 2})
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(tmp_path / "a"), "--enhancers",
                     str(typo), "--patch-size", "128")
    assert result.returncode == 2 and "unknown key(s) ['radious'] for type unsharp" in result.stderr
    one = enhancer_file(tmp_path / "one.yml", UNSHARP)
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(built), "--enhancers", str(one),
                     "--patch-size", "128")
    assert result.returncode == 2 and "was built with other settings" in result.stderr
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(photos / "set"), "--enhancers", str(one))
    assert result.returncode == 2 and "lies inside --photos" in result.stderr
    (photos / "a_b.png").write_bytes((photos / "coffee.png").read_bytes())
    (photos / "a-b.png").write_bytes((photos / "coffee.png").read_bytes())
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(tmp_path / "b"), "--enhancers", str(one))
    assert result.returncode == 2 and "would name the same groups (a-b-x-y)" in result.stderr
    (photos / "a-b.png").unlink()
    (photos / "a_b.png").unlink()
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(tmp_path / "c"), "--enhancers", str(one))
    assert result.returncode == 2 and "broken.png: cannot decode image" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_photo_named_with_underscores_gives_groups_that_hggt_names_parse(tmp_path: Path):
    # '_' starts HGGT's candidate suffix (<group>_01), so IMG_0001.png's groups are IMG-0001-x-y, found by data check.
    photos = photo_folder(tmp_path / "photos", {"coffee": (128, 128)})
    (photos / "coffee.png").rename(photos / "IMG_0001.png")
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(tmp_path / "set"), "--enhancers",
                     str(enhancer_file(tmp_path / "one.yml", UNSHARP)), "--patch-size", "128")
    assert result.returncode == 0, result.stderr
    images = tmp_path / "set" / "Train" / "images" / "own"
    assert [p.name for p in (images / "original").iterdir()] == ["IMG-0001-0-0.png"]
    assert [p.name for p in (images / "01").glob("*.png")] == ["IMG-0001-0-0_01.png"]


def test_a_network_enhancer_runs_on_a_copy_downscaled_by_its_scale(tmp_path: Path, pretrained: Path):
    photos = photo_folder(tmp_path / "photos", {"chelsea": (64, 64)})
    network = enhancer_file(tmp_path / "net.yml", {"type": "network", "weights": "pretrained:realesrgan-x4plus"})
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(tmp_path / "set"), "--enhancers",
                     str(network), "--patch-size", "64")
    assert result.returncode == 0, result.stderr
    images = tmp_path / "set" / "Train" / "images" / "own"
    # What `sr-iqa infer` makes of the patch downscaled 4x with PIL's bicubic.
    small = tmp_path / "small"
    small.mkdir()
    Image.open(images / "original" / "chelsea-0-0.png").resize((16, 16), Image.Resampling.BICUBIC).save(
        small / "chelsea.png")
    inferred = run_cli("infer", "--checkpoint", "pretrained:realesrgan-x4plus", "--input", str(small), "--output",
                       str(tmp_path / "sr"))
    assert inferred.returncode == 0, inferred.stderr
    assert np.array_equal(read_rgb_array(images / "01" / "chelsea-0-0_01.png"),
                          read_rgb_array(tmp_path / "sr" / "chelsea.png"))
    record = json.loads((images / "01" / "enhancer.json").read_text())
    assert record["file"] == str(pretrained / "RealESRGAN_x4plus.pth") and len(record["sha256"]) == 64


@pytest.fixture(scope="module")
def auto_labelled(built: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    cache = tmp_path_factory.mktemp("auto") / "scores.db"
    result = run_cli("label", "auto", str(built), "--metric", "niqe", "--margin", "0.5", "--cache", str(cache))
    assert result.returncode == 0, result.stderr
    return built, cache


def test_label_auto_marks_candidates_by_q_against_the_original_with_the_margin(auto_labelled, tmp_path: Path):
    root, cache = auto_labelled
    assert run_cli("scores", "export", "--cache", str(cache), "--out", str(tmp_path / "s.csv")).returncode == 0
    rows = list(csv.DictReader((tmp_path / "s.csv").read_text().splitlines()))
    niqe = {Path(row["image"]).name: float(row["score"]) for row in rows
            if row["metric"] == "niqe" and row["w"] == row["h"] == "128"}  # the whole 128-px patch
    labels_folder = root / "Train" / "labels" / "own" / "metric-niqe"
    seen = set()
    for path in sorted(labels_folder.glob("*.json")):
        entries = json.loads(path.read_text())
        assert entries["Made_by"]["metric"] == "niqe" and entries["Made_by"]["margin"] == 0.5
        original = niqe[f"{path.stem}.png"]
        for k in range(2, 6):
            candidate = niqe[f"{path.stem}_{k - 1:02d}.png"]  # NIQE: lower is better
            expected = ("Positive" if original - candidate > 0.5 else "Negative" if candidate - original > 0.5
                        else "Similar")
            assert entries[f"Picture_{k}"]["Label"] == expected
            seen.add(expected)
    assert seen == {"Positive", "Similar", "Negative"}


def test_metric_labels_are_indexed_as_one_judgement_and_said_to_be_a_metrics(auto_labelled):
    root, cache = auto_labelled
    index = discover_splits(root)["Train/own"]
    assert not index.problems and any("made by the metric niqe" in note for note in index.notes)
    gts = [gt for group in index.groups for gt in group.gts[1:]]
    assert all(gt.label is not None and gt.votes == () for gt in gts)
    positive_groups = {group.name for group in index.groups if any(gt.label == "Positive" for gt in group.gts)}
    assert {group.name for group in keep_positive_groups(index).groups} == positive_groups
    check = run_cli("data", "check", str(root))
    assert check.returncode == 0 and "made by the metric niqe (sr-iqa label auto), not by annotators" in check.stdout
    agree = run_cli("agree", "--dataset", str(root), "--cache", str(cache))
    assert agree.returncode == 0 and "annotators' agreement: none to measure" in agree.stdout
    assert "agrees with its own labels by construction" in agree.stdout


def test_a_tiny_training_reads_the_metric_labels(auto_labelled, demo_set, tmp_path: Path):
    root, _ = auto_labelled
    labels = root / "Train" / "labels" / "own" / "metric-niqe"
    with_positive = [path for path in labels.glob("*.json") if any(
        entry["Label"] == "Positive" for key, entry in json.loads(path.read_text()).items() if key.startswith("Pic"))]
    options = tiny_options(demo_set, tmp_path / "runs")
    options["datasets"]["train"] |= {"dataroot_gt": str(root / "Train" / "images" / "own"),
                                     "dataroot_label": str(labels.parent), "positive_only": True}
    options["sampler"] = {"type": "upos"}
    trained = run_cli("train", "-opt", str(write_options(tmp_path / "train.yml", options)))
    assert trained.returncode == 0, trained.stderr
    log = (tmp_path / "runs" / "tiny" / "logs" / "train.log").read_text()
    assert f"training data: {len(with_positive)} groups" in log and 0 < len(with_positive) < 12
    assert (tmp_path / "runs" / "tiny" / "models" / "net_g_8.safetensors").is_file()


def test_label_auto_refuses_to_write_beside_annotators_labels(built: Path, tmp_path: Path):
    (built / "Train" / "labels" / "own" / "A").mkdir(parents=True, exist_ok=True)
    try:
        result = run_cli("label", "auto", str(built), "--metric", "niqe", "--margin", "0", "--cache",
                         str(tmp_path / "c.db"))
        assert result.returncode == 2 and "already holds labels of A" in result.stderr
    finally:
        (built / "Train" / "labels" / "own" / "A").rmdir()


def test_fleiss_kappa_reproduces_the_published_example():
    # Fleiss (1971) as Wikipedia's "Fleiss' kappa" article works it: 10 subjects, 14 raters, 5 categories,
    # P-bar 0.378, P_e 0.213, kappa 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa([[3, 0, 0], [0, 3, 0]]) == 1.0
    assert math.isnan(fleiss_kappa([[3, 0, 0], [3, 0, 0]]))  # one category only: chance agreement is total
    with pytest.raises(ValueError):
        fleiss_kappa([[3, 0, 0], [2, 0, 0]])


def test_a_held_out_build_is_a_test_split_that_label_auto_and_data_check_read(tmp_path: Path):
    photos = photo_folder(tmp_path / "photos", {"rocket": (128, 256)})
    root = tmp_path / "set"
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(root), "--enhancers",
                     str(enhancer_file(tmp_path / "one.yml", UNSHARP)), "--patch-size", "128", "--set", "val",
                     "--held-out")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (root / "Test" / "GT" / "val" / "images" / "original").iterdir()) == \
        ["rocket-0-0.png", "rocket-128-0.png"]
    assert run_cli("label", "auto", str(root), "--metric", "niqe", "--margin", "0", "--cache",
                   str(tmp_path / "s.db")).returncode == 0
    assert len(list((root / "Test" / "GT" / "val" / "labels" / "metric-niqe").glob("*.json"))) == 2
    check = run_cli("data", "check", str(root))
    assert check.returncode == 0 and "Test/val: 2 groups, 4 GTs" in check.stdout
