"""The data index kept between runs: a start whose folders are unchanged reads no label file and opens no image;
a change re-reads what changed (and finds what is now wrong); a damaged index is rebuilt with a line saying so."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytest
from hggt_tree import VOTES, write_hggt_split

from sr_iqa.config.schema import TrainDatasetOptions
from sr_iqa.data import index_cache
from sr_iqa.data.sources import group_index
from sr_iqa.errors import DataError


@pytest.fixture
def split(tmp_path: Path) -> TrainDatasetOptions:
    """Three groups whose folders were last changed a minute ago (data at rest, outside the racy window)."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    write_hggt_split(images, labels, VOTES, size=32)
    _age(tmp_path)
    return TrainDatasetOptions(dataroot_gt=str(images), dataroot_label=str(labels))


def _age(root: Path, seconds: float = 60) -> None:
    """Folders and label files last changed ``seconds`` ago."""
    past = time.time_ns() - int(seconds * 1e9)
    for path in [root, *(p for p in root.rglob("*") if p.is_dir() or p.suffix == ".json")]:
        os.utime(path, ns=(past, past))


class Opened:
    """Files opened and folders listed under ``root`` while the block runs (Python's audit events)."""

    def __init__(self, root: Path) -> None:
        self.root, self.paths, self.active = str(root), [], False
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if self.active and event in ("open", "os.listdir", "os.scandir") and args and isinstance(
                args[0], (str, os.PathLike)) and os.fspath(args[0]).startswith(self.root):
            self.paths.append(os.fspath(args[0]))

    def __enter__(self) -> Opened:
        self.paths, self.active = [], True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False


def test_an_unchanged_split_is_read_from_the_index_without_opening_the_data(split: TrainDatasetOptions,
                                                                           tmp_path: Path, caplog):
    watcher = Opened(tmp_path)
    with watcher:
        built = group_index(split, 4, min_size=16)
    assert any(path.endswith(".png") for path in watcher.paths)  # the cold build opens images and labels
    with watcher, caplog.at_level(logging.INFO, logger="sr_iqa"):
        kept = group_index(split, 4, min_size=16)
    assert watcher.paths == []  # no image, label file or folder listing: only stats of the watched folders
    assert kept.groups == built.groups and len(kept.groups) == 3
    assert [gt.label for gt in kept.groups[0].gts] == [gt.label for gt in built.groups[0].gts]
    assert "data index: 3 groups from" in caplog.text and "folders unchanged" in caplog.text


def test_a_change_re_reads_what_changed_and_finds_what_is_wrong(split: TrainDatasetOptions, tmp_path: Path, caplog):
    group_index(split, 4)
    removed = tmp_path / "images" / "04" / "img2-0-0_04.png"
    saved = removed.read_bytes()
    removed.unlink()  # the folder's time changes: the index no longer vouches for it
    with pytest.raises(DataError, match=f"{removed}: enhanced GT is missing"):
        group_index(split, 4)
    removed.write_bytes(saved)
    _age(tmp_path / "images" / "04")
    watcher = Opened(tmp_path / "images" / "original")
    with watcher, caplog.at_level(logging.INFO, logger="sr_iqa"):
        index = group_index(split, 4)
    assert len(index.groups) == 3
    assert not [path for path in watcher.paths if path.endswith(".png")]  # images of unchanged folders not opened
    assert "folders changed since" in caplog.text


def test_a_label_file_rewritten_in_place_is_read_again(split: TrainDatasetOptions, tmp_path: Path, caplog):
    """Issue 37 item 1: an editor rewrites labels/<annotator>/<group>.json under the same name, which changes no
    folder's time. Here A's and B's first vote of img1-0-0 go from Positive to Negative (same size, the folders'
    times put back): the next start must serve the new labels, not the kept ones."""
    import json

    assert group_index(split, 4).groups[0].gts[1].label == "Positive"  # 01 of img1-0-0: P, P, S
    folders = {p: p.stat().st_mtime_ns for p in (tmp_path / "labels").iterdir()}
    for annotator in ("A", "B"):
        file = tmp_path / "labels" / annotator / "img1-0-0.json"
        entries = json.loads(file.read_text())
        before = file.stat().st_size
        entries["Picture_2"]["Label"] = "Negative"
        file.write_text(json.dumps(entries))
        assert file.stat().st_size == before
    for folder, mtime_ns in folders.items():
        os.utime(folder, ns=(mtime_ns, mtime_ns))
    with caplog.at_level(logging.INFO, logger="sr_iqa"):
        relabelled = group_index(split, 4)
    assert relabelled.groups[0].gts[1].label == "Negative"
    assert "folders changed since" in caplog.text


def test_a_folder_changed_just_before_the_index_was_written_is_checked_again(split: TrainDatasetOptions,
                                                                            tmp_path: Path, caplog):
    """Coarse file-system clocks: a change in the tick the index was written could leave the time unchanged."""
    group_index(split, 4)
    now = time.time_ns()
    os.utime(tmp_path / "labels" / "B", ns=(now, now))  # within the racy window of the index just written
    group_index(split, 4)  # this rebuild writes a new index, still racy for that folder
    with caplog.at_level(logging.INFO, logger="sr_iqa"):
        group_index(split, 4)
    assert "1 of" in caplog.text and "folders changed since" in caplog.text


def test_a_damaged_index_is_rebuilt_with_a_line_saying_so(split: TrainDatasetOptions, caplog):
    built = group_index(split, 4)
    (kept,) = [path for path in index_cache.index_folder().glob("*.json") if split.dataroot_gt in path.read_text()]
    kept.write_text('{"key": ' + "[" * 100_000)
    with caplog.at_level(logging.WARNING, logger="sr_iqa"):
        rebuilt = group_index(split, 4)
    assert rebuilt.groups == built.groups
    assert f"data index {kept} is damaged" in caplog.text and "indexing the data set again" in caplog.text


@pytest.mark.parametrize("bogus", ["Great", 7, None])
def test_an_index_holding_labels_no_label_file_can_hold_is_rebuilt(split: TrainDatasetOptions, caplog, bogus):
    """An edited index must not train on votes nobody gave: its labels are those of the label files, or it is
    built again from them."""
    import json

    built = group_index(split, 4)
    (kept,) = [path for path in index_cache.index_folder().glob("*.json") if split.dataroot_gt in path.read_text()]
    record = json.loads(kept.read_text())
    record["groups"][0][2][1][3][0] = bogus  # the first annotator's vote on the group's first enhanced GT
    kept.write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="sr_iqa"):
        rebuilt = group_index(split, 4)
    assert rebuilt.groups == built.groups and rebuilt.groups[0].gts[1].votes == built.groups[0].gts[1].votes
    assert f"data index {kept} is damaged" in caplog.text


def test_other_options_or_another_scale_use_their_own_index(split: TrainDatasetOptions, tmp_path: Path):
    group_index(split, 4)
    positive = TrainDatasetOptions(dataroot_gt=split.dataroot_gt, dataroot_label=split.dataroot_label,
                                   positive_only=True)
    assert [group.name for group in group_index(positive, 4).groups] == ["img1-0-0", "img2-0-0"]  # not all three
    with pytest.raises(DataError, match="is smaller than the training crop"):
        group_index(split, 4, min_size=64)
