"""The group index: HGGT's label rules, the manifest format, and `sr-iqa data check`."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_cli
from hggt_tree import VOTES, N, P, S, write_hggt_split
from PIL import Image

from sr_iqa.data.groups import aggregate_votes, index_hggt, index_manifest, keep_positive_groups


@pytest.fixture
def release(tmp_path: Path) -> Path:
    root = tmp_path / "HGGT"
    write_hggt_split(root / "Train" / "images" / "set1", root / "Train" / "labels" / "set1", VOTES)
    return root


def _split(release: Path):
    return index_hggt(release / "Train" / "images" / "set1", release / "Train" / "labels" / "set1")


def test_majority_vote_and_all_differ_rule(release: Path):
    index = _split(release)
    assert index.problems == []
    by_name = {group.name: [gt.label for gt in group.gts[1:]] for group in index.groups}
    assert by_name["img1-0-0"] == [P, P, N, S]
    assert by_name["img2-0-0"] == [S, S, N, P]
    assert by_name["img3-0-0"] == [S, S, S, N]
    first = index.groups[0]
    assert first.gts[0].slot == "original" and first.gts[0].label is None
    assert first.gts[1].votes == (P, P, S) and first.gts[1].positive_votes == 2


@pytest.mark.parametrize(("votes", "label"), [((P, P, S), P), ((N, S, N), N), ((P, S, N), S), ((S, S, S), S)])
def test_aggregate_votes(votes, label):
    assert aggregate_votes(votes) == label


def test_positive_only_filter_drops_groups_without_a_doubly_positive_gt(release: Path):
    filtered = keep_positive_groups(_split(release))
    assert [group.name for group in filtered.groups] == ["img1-0-0", "img2-0-0"]
    assert filtered.dropped == {"img3-0-0": "no enhanced GT has more than one Positive vote"}


def test_fewer_than_three_annotators_is_a_reported_problem(release: Path):
    labels = release / "Train" / "labels" / "set1"
    for path in (labels / "C").iterdir():
        path.unlink()
    (labels / "C").rmdir()
    index = _split(release)
    assert any("holds 2 annotator folder(s)" in problem for problem in index.problems)
    assert all(gt.label is None for group in index.groups for gt in group.gts)


def test_manifest_with_labels_votes_and_errors(tmp_path: Path):
    for name in ("a.png", "a1.png", "a2.png", "lr.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    lines = [
        {"name": "g1", "original": "a.png", "gts": ["a1.png", "a2.png"], "votes": [[P, P, N], [N, S, P]]},
        {"original": "a.png", "gts": ["a1.png"], "labels": [N], "lr": "lr.png"},
        {"original": "a.png", "gts": ["a1.png"], "labels": ["Great"]},
        {"original": "a.png", "gts": ["missing.png"]},
        {"original": "a.png", "colour": "red"},
        {"original": "a.png", "gts": ["a1.png"], "votes": [[P, P]]},
    ]
    manifest = tmp_path / "groups.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    index = index_manifest(manifest)
    assert [g.name for g in index.groups] == ["g1", "a"]  # line 4's group would also be "a": refused
    assert [gt.label for gt in index.groups[0].gts] == [None, P, S]
    assert index.groups[1].gts[1].label == N and index.groups[1].lr_path == tmp_path / "lr.png"
    problems = "\n".join(index.problems)
    assert f"{manifest}:3: unknown label 'Great'" in problems
    assert f"{tmp_path / 'missing.png'}: image is missing ({manifest}:4)" in problems
    assert f"{manifest}:5: unknown key(s) ['colour']" in problems
    assert f"{manifest}:6: every 'votes' entry needs at least 3 annotators' labels" in problems
    assert f"{manifest}:7: not valid JSON" in problems
    assert f"{manifest}:4: group name 'a' is already used on line 2" in problems


@pytest.mark.parametrize(("entry", "expected"), [
    ({"name": "../escape"}, "'name' must be a plain file name (no folders, printable, at most 200 bytes), not "
                            "'../escape'"),
    ({"name": "/abs/x"}, "'name' must be a plain file name (no folders, printable, at most 200 bytes), not '/abs/x'"),
    ({"name": ".."}, "'name' must be a plain file name (no folders, printable, at most 200 bytes), not '..'"),
    ({"name": 3}, "'name' must be a plain file name (no folders, printable, at most 200 bytes), not 3"),
    # These passed `data check` and crashed `eval --save-sr` and the validation image save.
    ({"name": "x" * 300}, "'name' must be a plain file name (no folders, printable, at most 200 bytes)"),
    ({"name": "a\u0000b"}, "'name' must be a plain file name (no folders, printable, at most 200 bytes), not "
                           "'a\\x00b'"),
    ({"name": "a\nb"}, "'name' must be a plain file name"),
    ({"gts": "a1.png"}, "'gts' must be a list of paths (strings)"),
    ({"gts": [["a1.png"]]}, "'gts' must be a list of paths (strings)"),
    ({"gts": ["a1.png"], "labels": "Positive"}, "'labels' must be a list of label strings"),
    ({"gts": ["a1.png"], "votes": ["PPP"]}, "'votes' must be a list of lists of label strings"),
    ({"lr": 5}, "'lr' must be a path (string)"),
    ({"gts": ["../outside.png"]}, "'../outside.png' lies outside the manifest's folder"),
    ({"gts": ["/etc/hostname"]}, "'/etc/hostname' lies outside the manifest's folder"),
    ({"lr": "sub/../../lr.png"}, "'sub/../../lr.png' lies outside the manifest's folder"),
])
def test_manifest_fields_of_the_wrong_type_or_unsafe_names_are_one_line(tmp_path: Path, entry: dict, expected: str):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path.parent / "outside.png")  # exists, but is not the manifest's to read
    manifest = tmp_path / "groups.jsonl"
    manifest.write_text(json.dumps({"original": "a.png", **entry}) + "\n")
    index = index_manifest(manifest)
    assert index.groups == [] and len(index.problems) == 1
    assert index.problems[0].startswith(f"{manifest}:1: {expected}")


def _truth_from_label_files(labels: Path) -> Counter:
    """Label counts recomputed straight from the JSON files, with HGGT's rule written out here."""
    counts: Counter = Counter()
    for group_file in (labels / "A").glob("*.json"):
        files = [json.loads((labels / a / group_file.name).read_text()) for a in ("A", "B", "C")]
        for number in range(2, 6):
            votes = Counter(f[f"Picture_{number}"]["Label"] for f in files)
            label, count = votes.most_common(1)[0]
            counts[label if count >= 2 else S] += 1
    return counts


def test_data_check_reports_the_label_counts_of_hggts_rule(demo_set):
    result = run_cli("data", "check", str(demo_set.root), "--positive-only")
    assert result.returncode == 0, result.stdout + result.stderr
    train_block = result.stdout.split("Test/")[0]
    printed = dict(re.findall(r"(Positive|Similar|Negative): (\d+)", train_block.split("labels:")[1].splitlines()[0]))
    truth = _truth_from_label_files(demo_set.train_labels)
    assert {label: int(count) for label, count in printed.items()} == {label: truth[label] for label in (P, S, N)}
    groups = len(list((demo_set.train_images / "original").iterdir()))
    assert f"Train/demo: {groups} groups, {groups * 5} GTs" in result.stdout
    assert "dropped by the positive-only filter" in result.stdout


def test_data_check_lists_every_problem_and_exits_1(release: Path):
    images, labels = release / "Train" / "images" / "set1", release / "Train" / "labels" / "set1"
    truncated = images / "01" / "img1-0-0_01.png"
    truncated.write_bytes(truncated.read_bytes()[:100])
    (labels / "B" / "img2-0-0.json").unlink()
    unknown = labels / "A" / "img3-0-0.json"
    unknown.write_text(unknown.read_text().replace('"Negative"', '"Awful"'))
    resized = images / "02" / "img2-0-0_02.png"
    Image.new("RGB", (30, 24)).save(resized)
    result = run_cli("data", "check", str(release))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    report = result.stdout
    assert f"{truncated}: " in report
    assert f"{labels / 'B' / 'img2-0-0.json'}: label file is missing" in report
    assert f"{unknown}: unknown label 'Awful'" in report
    assert "GTs of group img2-0-0 differ in size" in report and "img2-0-0_02.png 30x24" in report
    assert "4 problem(s)" in report


def test_an_empty_manifest_or_originals_folder_is_a_problem(tmp_path: Path):
    manifest = tmp_path / "groups.jsonl"
    manifest.write_text("\n")
    assert index_manifest(manifest).problems == [f"{manifest}: holds no groups (one JSON object per line)"]
    (tmp_path / "set" / "original").mkdir(parents=True)
    assert index_hggt(tmp_path / "set").problems == [f"{tmp_path / 'set' / 'original'}: holds no images"]


def test_a_group_whose_original_is_missing_is_named_not_dropped(release: Path):
    images = release / "Train" / "images" / "set1"
    original = images / "original" / "img2-0-0.png"
    original.unlink()
    index = index_hggt(images, release / "Train" / "labels" / "set1")
    assert "img2-0-0" not in [group.name for group in index.groups]
    orphans = [problem for problem in index.problems if "enhanced GT without its original" in problem]
    assert len(orphans) == 4 and all(f"({original} is missing)" in problem for problem in orphans)
    result = run_cli("data", "check", str(release))
    assert result.returncode == 1 and f"{images / '01' / 'img2-0-0_01.png'}: enhanced GT without its original" \
        in result.stdout
