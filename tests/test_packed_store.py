"""The packed store gives the same crops as the PNG files, refuses stale entries, and trains identically."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_cli, tiny_options, write_options
from safetensors.torch import load_file

from sr_iqa.checked_options import load_options
from sr_iqa.data.check import discover_splits
from sr_iqa.data.datasets import MultiGTCropDataset
from sr_iqa.data.packed_store import PackedStore
from sr_iqa.errors import DataError
from sr_iqa.train.trainer import Trainer


@pytest.fixture
def copied_set(tmp_path: Path, demo_set) -> Path:
    """A private copy of the demo set (the tests touch files) and its pack."""
    root = tmp_path / "demo"
    shutil.copytree(demo_set.root, root)
    result = run_cli("data", "pack", str(root), "--out", str(tmp_path / "pack"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "packed" in result.stdout
    return root


def test_packed_and_png_datasets_give_identical_crops(copied_set: Path, tmp_path: Path):
    index = discover_splits(copied_set)["Train/demo"]
    store = PackedStore(tmp_path / "pack")
    arguments = dict(index=index, gt_size=64, seed=3, with_negative=True, with_candidates=True)
    from_files, from_pack = MultiGTCropDataset(**arguments), MultiGTCropDataset(**arguments, images=store)
    for key in [(0, 0), (0, 5), (1, 5), (2, len(index.groups) - 1)]:
        a, b = from_files[key], from_pack[key]
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), (key, name)


def test_a_changed_source_file_makes_the_pack_stale(copied_set: Path, tmp_path: Path):
    changed = next((copied_set / "Train" / "images" / "demo" / "01").glob("*.png"))
    status = changed.stat()
    os.utime(changed, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    assert PackedStore(tmp_path / "pack").stale() == [f"{changed.resolve()}: changed after packing; run "
                                                      "`sr-iqa data pack` again"]
    result = run_cli("data", "check", str(copied_set), "--quick", "--pack", str(tmp_path / "pack"))
    assert result.returncode == 1 and changed.name in result.stdout
    with pytest.raises(DataError, match="not a packed store"):
        PackedStore(tmp_path)


def test_training_from_the_pack_equals_training_from_the_files(copied_set: Path, tmp_path: Path, demo_set):
    options = tiny_options(demo_set, tmp_path / "experiments")
    images = copied_set / "Train" / "images" / "demo"
    options["datasets"]["train"] |= {"dataroot_gt": str(images),
                                     "dataroot_label": str(copied_set / "Train" / "labels" / "demo")}
    options["train"]["total_iter"] = 4
    options_file = write_options(tmp_path / "t.yml", options)
    files = Trainer(load_options(options_file, ["name=files"])).train().root
    packed = Trainer(load_options(options_file, ["name=packed", f"datasets.train.pack={tmp_path / 'pack'}"])).train()
    a, b = (load_file(str(run / "models" / "net_g_4.safetensors")) for run in (files, packed.root))
    assert all(torch.equal(a[k], b[k]) for k in a)
