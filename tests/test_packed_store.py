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


def _swap_two_offsets(index: dict) -> None:
    """Two entries of the same size trade places: every offset still tiles the file."""
    entries = sorted(index["images"].values(), key=lambda entry: entry[0])
    first, second = next((a, b) for a in entries for b in entries if a is not b and a[1:3] == b[1:3])
    first[0], second[0] = second[0], first[0]


def _flip_a_bit(pack: Path) -> None:
    data = bytearray((pack / "pixels.u8").read_bytes())
    data[len(data) // 2] ^= 1
    (pack / "pixels.u8").write_bytes(bytes(data))


# (what is done to a good pack, the words of the one line). Each passed `data check --pack` or trained wrongly.
TAMPERED_PACKS = [
    ("swapped-offsets", lambda pack, index: _swap_two_offsets(index), "do not match their checksum"),
    ("bit-flip", lambda pack, index: _flip_a_bit(pack), "do not match their checksum"),
    ("truncated", lambda pack, index: os.truncate(pack / "pixels.u8", 1000), "pixels.u8 holds 1000 bytes"),
    ("lying-shape", lambda pack, index: next(iter(index["images"].values())).__setitem__(1, 5000),
     "start at byte"),
    ("negative-offset", lambda pack, index: next(iter(index["images"].values())).__setitem__(0, -3),
     "is not [offset, height, width, size, mtime, checksum]"),
    ("no-checksum", lambda pack, index: next(iter(index["images"].values())).pop(), "is not [offset, height"),
    ("outside-root", lambda pack, index: index["images"].__setitem__("../x.png", index["images"].popitem()[1]),
     "is not a path below the packed root"),
    ("older-version", lambda pack, index: index.pop("version"), "packed by an older sr_iqa"),
    ("not-an-index", lambda pack, index: index.clear(), "is not a pack index"),
]


@pytest.fixture(scope="module")
def good_pack(tmp_path_factory: pytest.TempPathFactory, demo_set) -> Path:
    from sr_iqa import cli

    pack = tmp_path_factory.mktemp("packed") / "pack"
    assert cli.main(["data", "pack", str(demo_set.root), "--out", str(pack)]) == 0
    return pack


@pytest.mark.parametrize(("tamper", "expected"), [case[1:] for case in TAMPERED_PACKS],
                         ids=[case[0] for case in TAMPERED_PACKS])
def test_a_tampered_pack_is_one_line_from_data_check_and_from_training(good_pack: Path, tmp_path: Path, demo_set,
                                                                      tamper, expected: str, capsys):
    import json

    from sr_iqa import cli

    pack = tmp_path / "pack"
    shutil.copytree(good_pack, pack)
    index = json.loads((pack / "index.json").read_text())
    tamper(pack, index)
    (pack / "index.json").write_text(json.dumps(index))

    code = cli.main(["data", "check", str(demo_set.root), "--quick", "--pack", str(pack)])
    out, err = capsys.readouterr()
    assert code in (1, 2) and "no problems found" not in out and "Traceback" not in err
    assert expected in out + err and "run `sr-iqa data pack` again" in out + err

    def every_crop() -> None:  # what training reads: each GT's crop through the store
        store = PackedStore(pack)
        for split in discover_splits(demo_set.root).values():
            for gt in (gt for group in split.groups for gt in group.gts):
                store.crop(gt.path, 0, 0, 8)

    with pytest.raises(DataError, match="damaged packed store|packed by an older sr_iqa") as refused:
        every_crop()
    assert expected in str(refused.value)


def test_a_good_pack_verifies_and_a_deeply_nested_index_is_one_line(good_pack: Path, tmp_path: Path):
    assert PackedStore(good_pack).verify() == []
    shutil.copytree(good_pack, tmp_path / "pack")
    (tmp_path / "pack" / "index.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(DataError, match="index.json is not valid JSON: nested deeper than the parser allows"):
        PackedStore(tmp_path / "pack")
