"""The demo set follows the HGGT release layout and its documented label rule; the demo prints its table."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, SMALL_SPEC, run_cli
from PIL import Image

from sr_iqa.data.demo_set import ANNOTATORS, SLOTS, annotator_label, build_demo_set, sharpness_gain
from sr_iqa.data.image_io import read_rgb_array


def _majority(votes: list[str]) -> str:
    label, count = Counter(votes).most_common(1)[0]
    return label if count > 1 else "Similar"


def test_layout_matches_the_hggt_release(demo_set):
    for images, labels in ((demo_set.train_images, demo_set.train_labels),
                           (demo_set.test_images, demo_set.test_labels)):
        groups = sorted(p.stem for p in (images / "original").glob("*.png"))
        assert groups
        for slot in SLOTS[1:]:
            assert sorted(p.name for p in (images / slot).iterdir()) == [f"{g}_{slot}.png" for g in groups]
        for annotator in ANNOTATORS:
            assert sorted(p.stem for p in (labels / annotator).iterdir()) == groups
    assert (demo_set.root / "README.md").read_text().count("SYNTHETIC") == 1
    assert (demo_set.root / "Train" / "images" / "demo" / "original").is_dir()
    assert (demo_set.root / "Test" / "GT" / "Test-demo" / "images" / "original").is_dir()


def test_label_files_follow_the_documented_rule(demo_set):
    """Each annotator's label by the sharpness rule; the label the index reads is HGGT's vote (two of three, all
    three different: Similar), worked out here from the files."""
    from sr_iqa.data.groups import index_hggt

    labels_read = {group.name: {gt.slot: gt.label for gt in group.gts}
                   for group in index_hggt(demo_set.train_images, demo_set.train_labels).groups}
    disagreements = three_way = 0
    for label_file in sorted((demo_set.train_labels / "A").glob("*.json")):
        group = label_file.stem
        original = read_rgb_array(demo_set.train_images / "original" / f"{group}.png")
        votes_by_slot: dict[str, list[str]] = {}
        for annotator in ANNOTATORS:
            entries = json.loads((demo_set.train_labels / annotator / f"{group}.json").read_text())
            assert entries["Picture_1"] == {"Name": "original", "File": f"original/{group}.png", "Label": None}
            for number, slot in enumerate(SLOTS[1:], start=2):
                entry = entries[f"Picture_{number}"]
                assert entry["Name"] == slot and entry["File"] == f"{slot}/{group}_{slot}.png"
                enhanced = read_rgb_array(demo_set.train_images / entry["File"])
                assert entry["Label"] == annotator_label(annotator, sharpness_gain(enhanced, original))
                votes_by_slot.setdefault(slot, []).append(entry["Label"])
        for slot, votes in votes_by_slot.items():
            disagreements += len(set(votes)) > 1
            three_way += len(set(votes)) == 3
            assert labels_read[group][slot] == _majority(votes)
    assert disagreements > 0, "the majority vote is never exercised"
    assert three_way > 0, "the all-three-differ rule is never exercised"


def test_fixed_lr_images_are_gt_size_over_scale(demo_set):
    for original in (demo_set.test_images / "original").glob("*.png"):
        with Image.open(original) as gt, Image.open(demo_set.test_lr / original.name) as lr:
            assert (lr.width * SMALL_SPEC.scale, lr.height * SMALL_SPEC.scale) == gt.size


def test_second_build_reuses_the_complete_set(demo_set):
    marker_time = demo_set.marker.stat().st_mtime_ns
    build_demo_set(demo_set.root, SMALL_SPEC)
    assert demo_set.marker.stat().st_mtime_ns == marker_time


def test_data_demo_takes_the_sets_sizes(tmp_path: Path):
    from sr_iqa.data.demo_set import TRAIN_PHOTOS, photo_of

    result = run_cli("data", "demo", str(tmp_path / "demo"), "--crop-size", "64", "--train-crops-per-photo", "1",
                     "--test-crop-size", "80", "--test-crops-per-photo", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    originals = sorted((tmp_path / "demo" / "Train" / "images" / "demo" / "original").glob("*.png"))
    assert len(originals) == len(TRAIN_PHOTOS) and {Image.open(p).size for p in originals} == {(64, 64)}
    tests = list((tmp_path / "demo" / "Test" / "GT" / "Test-demo" / "images" / "original").glob("*.png"))
    assert tests and {Image.open(p).size for p in tests} == {(80, 80)}
    # The smallest photo (scikit-image's chelsea, 300 x 451) bounds the sizes; 4 x 8 LR pixels the other end.
    for flags, words in ((["--crop-size", "2"], "crop_size (--crop-size) must be a multiple of the scale 4 from 32 "
                                                "to 300 (the smallest photo's side), got 2"),
                         (["--test-crop-size", "100000"], "test_crop_size (--test-crop-size) must be a multiple of "
                                                          "the scale 4 from 32 to 300"),
                         (["--crop-size", "66"], "got 66")):
        result = run_cli("data", "demo", str(tmp_path / "bad"), *flags)
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "bad").exists()
    # chelsea, 451 x 300, holds 4 x 3 crops of 96 px on the builder's non-overlapping grid: 13 asked, 12 cut, said.
    result = run_cli("data", "demo", str(tmp_path / "few"), "--crop-size", "64", "--train-crops-per-photo", "1",
                     "--test-crop-size", "96", "--test-crops-per-photo", "13")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "chelsea holds 12 crops of 96 px on its grid, fewer than the 13 asked" in result.stderr
    tests = list((tmp_path / "few" / "Test" / "GT" / "Test-demo" / "images" / "original").glob("*.png"))
    assert sum(photo_of(p.stem) == "chelsea" for p in tests) == 12


def test_demo_trains_both_stages_and_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      caplog: pytest.LogCaptureFixture, pretrained: Path):
    from sr_iqa.demo import run_demo

    arguments = dict(
        dataset_root=tmp_path / "demo",
        options_file=REPO / "options" / "demo" / "train_rrdb_demo.yml",
        finetune_file=REPO / "options" / "demo" / "finetune_rrdb_demo.yml",
        overrides=[f"path.experiments_root={tmp_path / 'experiments'}", "train.total_iter=2",
                   "network_g.num_block=1", "datasets.train.batch_size_per_gpu=2",
                   "datasets.train.num_worker_per_gpu=0", "val.val_freq=0", "logger.save_checkpoint_freq=2"],
        spec=SMALL_SPEC,
    )
    with caplog.at_level(logging.INFO, logger="sr_iqa"):
        table = run_demo(**arguments)
    first_table = table.split("\n\n")[1]
    rows = [line for line in first_table.splitlines() if line.startswith("| ") and "**" not in line
            and "FR |" not in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "Bicubic", "Real-ESRGAN x4plus (pretrained, 23 blocks)",
        "Stage 1 start: RRDBNet 64 feat, 1 block (pretrained, untrained)",
        "Stage 1: RRDBNet 64 feat, 1 block, AMO (iter 2)",
        "Stage 2: + LoRA rank 4 FT vs NIQE (iter 2)", "Stage 2: + full FT vs NIQE (iter 2)", "Original GT",
        "Gold Standard"]
    header = first_table.splitlines()[2]
    assert all(f"{name} ↑" in header for name in ("psnr", "ssim"))
    assert all(f"{name} ↓" in header for name in ("niqe", "piqe", "vgg_dist"))
    bicubic_psnr = float(rows[0].split("|")[2])
    assert 15 < bicubic_psnr < 45
    assert rows[-1].split("|")[2].strip() == "—"  # no Gold Standard for FR metrics
    printed = capsys.readouterr().out
    assert table in printed and "gaming gap" in printed and printed.count("structured noise") == 2
    assert "How to read it:" in printed and "- vgg_dist: the distance to the GT" in printed
    # The held-out GTs' NIQE comes from the sampler's score cache (every split was scored); PIQE is scored here.
    gt_scores = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("GT scores: "))
    held_out_gts = len(list((tmp_path / "demo" / "Test" / "GT" / "Test-demo" / "images").glob("*/*.png")))
    assert gt_scores.startswith(f"GT scores: {held_out_gts} of {2 * held_out_gts} from ")
    assert "NR metrics that rank the original GTs above bicubic:" in printed
    results = (tmp_path / "experiments" / "demo" / "demo_results.md").read_text()
    assert "Stage 2: + LoRA rank 4 FT vs stage 1" in results and "Stage 2: + full FT vs stage 1" in results
    assert (tmp_path / "experiments" / "demo" / "eval" / "summary.csv").is_file()
    assert (tmp_path / "experiments" / "demo_ft" / "models" / "lora_2.safetensors").is_file()
    assert (tmp_path / "experiments" / "demo_ft_full" / "models" / "net_g_2.safetensors").is_file()
    # Again with nothing changed: the saved table, without validating or evaluating anything again.
    summary, log = tmp_path / "experiments" / "demo" / "eval" / "summary.json", tmp_path / "experiments" / "demo" / \
        "logs" / "train.log"
    before = (summary.stat().st_mtime_ns, log.read_text())
    assert run_demo(**arguments) == table
    assert (summary.stat().st_mtime_ns, log.read_text()) == before
    assert results in capsys.readouterr().out


def test_a_changed_option_or_weights_file_changes_the_fingerprint(tmp_path: Path, demo_set):
    from sr_iqa.checked_options import load_options
    from sr_iqa.demo_rerun import fingerprint

    data = demo_set.option_overrides()
    options_file = REPO / "options" / "demo" / "train_rrdb_demo.yml"
    base = load_options(options_file, [*data, f"path.experiments_root={tmp_path}"])
    first = fingerprint([base], demo_set.marker)
    assert fingerprint([load_options(options_file, [*data, f"path.experiments_root={tmp_path}"])],
                       demo_set.marker) == first
    changed = load_options(options_file, [*data, f"path.experiments_root={tmp_path}", "train.total_iter=41"])
    assert fingerprint([changed], demo_set.marker) != first
    models = tmp_path / base.name / "models"
    models.mkdir(parents=True)
    (models / "net_g_ema_40.safetensors").write_bytes(b"x")
    assert fingerprint([base], demo_set.marker) != first


def test_the_reading_notes_say_what_vgg_dist_is_and_who_beats_the_gold_standard():
    """Hand-made: two of four rows beat the best GT's PIQE (30 < 35 and 20 < 35; lower is better), none its NIQE."""
    from sr_iqa.demo import reading_notes
    from sr_iqa.evaluate.tables import EvaluationSummary

    rows = {"Bicubic": {"niqe": 6.0, "piqe": 40.0, "vgg_dist": 0.3}, "S1": {"niqe": 5.0, "piqe": 30.0},
            "Full": {"niqe": 7.0, "piqe": 20.0}, "Original": {"niqe": 4.5, "piqe": 50.0},
            "Gold Standard": {"niqe": 4.0, "piqe": 35.0}}
    summary = EvaluationSummary(rows, {}, {}, {"niqe": True, "piqe": True, "vgg_dist": True}, ["niqe", "piqe"])
    lines = reading_notes(summary)
    assert lines[1].startswith("- vgg_dist: the distance to the GT in the features of the original VGG19")
    assert len(lines) == 3 and lines[2].startswith("- 2 of 4 rows score better than the Gold Standard on piqe "
                                                   "(the best GT of each group, 35.00)")


def test_findings_say_what_the_numbers_show():
    """Hand-made table: NIQE ranks the originals above bicubic (4 < 6), PIQE does not (50 > 40); stage 1 beats
    bicubic on NIQE (5 < 6); the LoRA row lowers NIQE (5 -> 4.5), the full row raises it (5 -> 7)."""
    from sr_iqa.demo import findings
    from sr_iqa.evaluate.tables import EvaluationSummary

    rows = {"Bicubic": {"niqe": 6.0, "piqe": 40.0}, "S1": {"niqe": 5.0, "piqe": 45.0},
            "LoRA": {"niqe": 4.5, "piqe": 44.0}, "Full": {"niqe": 7.0, "piqe": 30.0},
            "Original": {"niqe": 4.0, "piqe": 50.0}}
    against_original = {"Bicubic": {"psnr": 26.0}, "S1": {"psnr": 24.5}}
    summary = EvaluationSummary(rows, against_original, {}, {"niqe": True, "piqe": True, "psnr": False},
                                ["niqe", "piqe"])
    lines = findings(summary, "Bicubic", "S1", "Original", [("LoRA", "niqe"), ("Full", "niqe")])
    assert lines[1:] == [
        "- NR metrics that rank the original GTs above bicubic: niqe (4.00 vs 6.00); not: piqe",
        "- Stage 1 better than bicubic on niqe: 5.00 vs 6.00",
        "- Stage 1 PSNR against the original: 24.50 dB, bicubic 26.00 dB (-1.50 dB)",
        "- LoRA improves the niqe it optimises on the held-out groups: 5.00 -> 4.50",
        "- Full does NOT improve the niqe it optimises on the held-out groups: 5.00 -> 7.00",
    ]
