"""Every folder of the HGGT release works where it makes sense: `data check` on each level gives the label counts
of HGGT's rule, the fixed LR of a test set is found (and its absence said), flat folders (Set5) are single-GT
groups paired with their LQ folder, and several set folders make one split."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from hggt_tree import SET5, write_hggt_release

from sr_iqa.cli import main
from sr_iqa.config.schema import TrainDatasetOptions, ValDatasetOptions
from sr_iqa.data.check import discover_splits
from sr_iqa.data.sources import group_index
from sr_iqa.errors import OptionsError

# HGGT's majority rule on tests/hggt_tree.VOTES (all three differ: Similar): img1 P P N S, img2 S S N P,
# img3 S S S N; the second training set holds img1 and img2 again.
FULL_SET = "3 groups, 15 GTs", "labels: Positive: 3, Similar: 6, Negative: 3"
SECOND_SET = "2 groups, 10 GTs", "labels: Positive: 3, Similar: 3, Negative: 2"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hggt_release(tmp_path_factory.mktemp("release") / "HGGT")


def _check(folder: Path, capsys: pytest.CaptureFixture) -> str:
    assert main(["data", "check", str(folder)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(("level", "splits"), [
    ("", ["Train/0-100", "Train/101-200", "Test/Set5", "Test/Test-100"]),
    ("Train", ["Train/0-100", "Train/101-200"]),
    ("Train/images", ["Train/0-100", "Train/101-200"]),
    ("Train/images/0-100", ["Train/0-100"]),
    ("Test", ["Test/Set5", "Test/Test-100"]),
    ("Test/GT", ["Test/Set5", "Test/Test-100"]),
    ("Test/GT/Test-100", ["Test/Test-100"]),
    ("Test/GT/Test-100/images", ["Test/Test-100"]),
    ("Test/GT/Set5", ["Test/Set5"]),
])
def test_data_check_on_every_level_of_the_release(release: Path, level: str, splits: list[str],
                                                  capsys: pytest.CaptureFixture):
    printed = _check(release / level, capsys)
    assert [line.split(":")[0] for line in printed.splitlines() if line and not line.startswith(" ")
            and ": " in line and "GTs" in line] == splits
    expected = {"Train/0-100": FULL_SET, "Train/101-200": SECOND_SET, "Test/Test-100": FULL_SET,
                "Test/Set5": ("5 groups, 5 GTs, 5 fixed LR images", "single-GT groups")}
    for split in splits:
        block = printed.split(f"{split}: ")[1]
        assert block.startswith(expected[split][0]) and expected[split][1] in block.split("\n\n")[0]
    if "Test/Test-100" in splits:
        assert "Test/Test-100: 3 groups, 15 GTs, 3 fixed LR images" in printed


def test_the_test_sets_fixed_lr_is_found_from_any_folder_and_its_absence_said(release: Path, tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture,
                                                                             capsys: pytest.CaptureFixture):
    lr = release / "Test" / "Blind_Degradation_Benchmark_LQ" / "Test-100" / "Blind_LR"
    for folder in (release / "Test" / "GT" / "Test-100", release / "Test" / "GT" / "Test-100" / "images"):
        groups = next(iter(discover_splits(folder).values())).groups
        assert [group.lr_path for group in groups] == [lr / group.original.path.name for group in groups]
    with caplog.at_level(logging.INFO, logger="sr_iqa"):
        index = group_index(ValDatasetOptions(dataroot_gt=str(release / "Test" / "GT" / "Test-100" / "images")), 4,
                            with_lr=True)
    assert all(group.lr_path == lr / group.original.path.name for group in index.groups)
    assert f"evaluated on the release's fixed LR images in {lr}" in caplog.text

    copy = tmp_path / "HGGT"
    shutil.copytree(release, copy)
    shutil.rmtree(copy / "Test" / "Blind_Degradation_Benchmark_LQ" / "Test-100")
    printed = _check(copy / "Test" / "GT" / "Test-100", capsys)
    assert "note:" in printed and "no fixed LR images at" in printed and "bicubic" in printed
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sr_iqa"):
        index = group_index(ValDatasetOptions(dataroot_gt=str(copy / "Test" / "GT" / "Test-100" / "images")), 4,
                            with_lr=True)
    assert all(group.lr_path is None for group in index.groups) and "no fixed LR images at" in caplog.text


def test_a_flat_folder_is_a_paired_set_of_single_gt_groups(release: Path):
    set5, lq = release / "Test" / "GT" / "Set5", release / "Test" / "Blind_Degradation_Benchmark_LQ" / "Set5"
    for source in (ValDatasetOptions(dataroot_gt=str(set5), dataroot_lq=str(lq)),  # as HGGT's val block says
                   ValDatasetOptions(dataroot_gt=str(set5))):  # found where the release keeps it
        groups = group_index(source, 4, with_lr=True).groups
        assert [group.name for group in groups] == sorted(SET5)
        assert all(len(group.gts) == 1 and group.lr_path == lq / f"{group.name}.png" for group in groups)


def test_several_set_folders_make_one_split(release: Path):
    images, labels = release / "Train" / "images", release / "Train" / "labels"
    source = TrainDatasetOptions(dataroot_gt=[str(images / "0-100"), str(images / "101-200")],
                                 dataroot_label=[str(labels / "0-100"), str(labels / "101-200")])
    index = group_index(source, 4)
    assert sorted(group.name for group in index.groups) == ["img1-0-0", "img1-1-1", "img2-0-0", "img2-1-1",
                                                            "img3-0-0"]
    assert sum(len(group.indices_labelled("Positive")) for group in index.groups) == 6
    with pytest.raises(OptionsError, match="dataroot_label names 1 folder.*dataroot_gt names 2"):
        group_index(TrainDatasetOptions(dataroot_gt=source.dataroot_gt, dataroot_label=str(labels / "0-100")), 4)
