"""The multi-GT dataset: one crop box for every image, only the needed files, bad data refused at setup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, tiny_options, write_options
from hggt_tree import VOTES, write_hggt_split
from PIL import Image

from sr_iqa.config.schema import DataSourceOptions, ValDatasetOptions
from sr_iqa.data import datasets, image_io
from sr_iqa.data.datasets import EvalGroupDataset, MultiGTCropDataset, augment
from sr_iqa.data.degradations import bicubic_downsample
from sr_iqa.data.groups import index_hggt
from sr_iqa.data.sources import group_index
from sr_iqa.errors import DataError


@pytest.fixture
def split(tmp_path: Path) -> tuple[Path, Path]:
    images, labels = tmp_path / "images", tmp_path / "labels"
    write_hggt_split(images, labels, VOTES, size=24)
    return images, labels


class FixedGT:
    """A chooser that always picks the same GT."""

    box_stride = 1

    def __init__(self, index: int) -> None:
        self.index = index

    def choose(self, position, group, box, rng) -> int:
        return self.index

    def quality(self, position, group, box) -> None:
        return None


def _source(images: Path, labels: Path) -> DataSourceOptions:
    return DataSourceOptions(dataroot_gt=str(images), dataroot_label=str(labels))


def _expected_crop(path: Path, box: torch.Tensor, flips: np.ndarray) -> torch.Tensor:
    top, left, size = (int(v) for v in box)
    array = image_io.read_rgb_array(path)[top:top + size, left:left + size]
    return image_io.array_to_tensor(augment(array, flips.astype(bool), True, True))


def test_one_crop_box_for_original_chosen_gt_and_negative(split):
    images, labels = split
    index = index_hggt(images, labels)
    dataset = MultiGTCropDataset(index, gt_size=16, seed=1, choose_gt=FixedGT(2), with_negative=True)
    group = index.groups[0]  # img1-0-0: its Negative is slot 03
    sample = dataset[(0, 0)]
    # The flips are the sample's own; whichever of the 8 it drew, the same box and flips fit all three crops.
    candidates = [np.array(bits) for bits in np.ndindex(2, 2, 2)]
    fitting = [f for f in candidates
               if torch.equal(sample["original"], _expected_crop(group.gts[0].path, sample["box"], f))]
    assert len(fitting) == 1
    assert torch.equal(sample["gt"], _expected_crop(group.gts[2].path, sample["box"], fitting[0]))
    assert torch.equal(sample["negative"], _expected_crop(group.gts[3].path, sample["box"], fitting[0]))
    assert bool(sample["has_negative"]) and int(sample["gt_index"]) == 2
    assert sample["labels"].tolist() == [-1, 0, 0, 2, 1]  # original, P, P, N, S
    # HGGT's reference for the negative term: a Positive drawn on its own (01 or 02), at the same box; the
    # votes are those of the aggregated labels: 01 (P, P, S), 02 (P, S, P) and the Negative 03 (N, N, S) have 2.
    references = [i for i in (1, 2)
                  if torch.equal(sample["reference"], _expected_crop(group.gts[i].path, sample["box"], fitting[0]))]
    assert len(references) == 1 and bool(sample["has_positive"])
    assert int(sample["reference_votes"]) == 2 and int(sample["negative_votes"]) == 2


def test_the_negative_terms_reference_is_any_positive_independently_of_the_chosen_gt(split):
    images, labels = split
    dataset = MultiGTCropDataset(index_hggt(images, labels), gt_size=16, seed=3, choose_gt=FixedGT(1),
                                 with_negative=True)
    group = dataset.groups[0]
    seen = set()
    for epoch in range(40):
        sample = dataset[(epoch, 0)]
        flips = next(f for f in (np.array(b) for b in np.ndindex(2, 2, 2))
                     if torch.equal(sample["original"], _expected_crop(group.gts[0].path, sample["box"], f)))
        seen |= {i for i in (1, 2)
                 if torch.equal(sample["reference"], _expected_crop(group.gts[i].path, sample["box"], flips))}
    assert seen == {1, 2}  # not always the supervising GT (01)


@pytest.mark.parametrize(("chosen", "with_negative", "reads"), [(0, False, 1), (1, False, 2), (1, True, 3)])
def test_reads_only_the_images_the_sample_needs(split, monkeypatch, chosen, with_negative, reads):
    """With the negative term: the Negative, and the reference Positive unless it is the chosen GT."""
    images, labels = split
    opened: list[Path] = []
    real_read = image_io.read_rgb_array

    def counting_read(path: Path) -> np.ndarray:
        opened.append(path)
        return real_read(path)

    monkeypatch.setattr(datasets.image_io, "read_rgb_array", counting_read)
    dataset = MultiGTCropDataset(index_hggt(images, labels), gt_size=16, seed=0, choose_gt=FixedGT(chosen),
                                 with_negative=with_negative)
    sample = dataset[(0, 0)]
    extra = with_negative and not torch.equal(sample["reference"], sample["gt"])
    assert len(opened) == reads + extra


def test_kernels_come_from_the_sample_rng(split):
    from sr_iqa.data.degradations import HGGTDegradation

    images, labels = split
    dataset = MultiGTCropDataset(index_hggt(images, labels), 16, seed=4,
                                 sample_kernels=HGGTDegradation().sample_kernels)
    kernels = [dataset[(epoch, 2)]["kernel1"] for epoch in range(6)]
    assert all(torch.equal(k, dataset[(epoch, 2)]["kernel1"]) for epoch, k in enumerate(kernels))
    assert len({tuple(k.flatten().tolist()) for k in kernels}) > 1
    assert all(torch.isclose(k.sum(), torch.tensor(1.0), atol=1e-4) for k in kernels)


def test_test_mode_returns_whole_images_and_the_fixed_lr(demo_set):
    source = ValDatasetOptions(dataroot_gt=str(demo_set.test_images), dataroot_label=str(demo_set.test_labels),
                               dataroot_lq=str(demo_set.test_lr))
    item = EvalGroupDataset(group_index(source, 4, with_lr=True), 4)[0]
    with Image.open(item.group.original.path) as original:
        assert item.gt.shape[1:] == (original.height, original.width)
    assert torch.equal(item.lq, image_io.read_rgb_tensor(demo_set.test_lr / item.group.original.path.name))
    assert len(item.group.gts) == 5


def test_without_fixed_lr_the_eval_lr_is_matlab_bicubic(split):
    """The papers' convention, anchored on basicsr's MATLAB imresize itself; torch's own bicubic differs."""
    from basicsr.utils.matlab_functions import imresize

    images, labels = split
    item = EvalGroupDataset(index_hggt(images, labels), scale=4)[0]
    assert torch.equal(item.lq, imresize(item.gt, 1 / 4).clamp(0, 1))
    assert not torch.allclose(item.lq, bicubic_downsample(item.gt[None], 4)[0], atol=1e-3)


def test_a_folder_without_images_is_named(tmp_path: Path):
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path / 'nowhere'}: holds no images"):
        group_index(_source(tmp_path / "nowhere", tmp_path), scale=4)


def test_corrupt_image_and_too_small_originals_are_listed_together(split):
    images, labels = split
    (images / "03" / "img1-0-0_03.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError) as caught:
        group_index(_source(images, labels), scale=4, min_size=32)
    message = str(caught.value)
    assert "img1-0-0_03.png: corrupt or truncated image" in message
    assert all(f"{name}.png: 24x24 is smaller than the training crop" in message for name in VOTES)


def test_fixed_lr_of_the_wrong_size_and_missing_lr_are_listed(tmp_path: Path, demo_set):
    import shutil

    lq_root = tmp_path / "lq"
    shutil.copytree(demo_set.test_lr, lq_root)
    names = sorted(p.name for p in lq_root.iterdir())
    Image.new("RGB", (10, 10)).save(lq_root / names[0])
    (lq_root / names[1]).unlink()
    with pytest.raises(DataError) as caught:
        group_index(ValDatasetOptions(dataroot_gt=str(demo_set.test_images), dataroot_label=str(demo_set.test_labels),
                                      dataroot_lq=str(lq_root)), 4, with_lr=True)
    message = str(caught.value)
    assert f"{lq_root / names[0]}: LR is 10x10" in message
    assert f"{lq_root / names[1]}: fixed LR image is missing" in message


def test_truncated_image_is_named_when_read(split, monkeypatch: pytest.MonkeyPatch):
    images, _ = split
    image = images / "original" / "img1-0-0.png"
    image.write_bytes(image.read_bytes()[:200])
    with pytest.raises(DataError, match="img1-0-0.png"):
        image_io.read_rgb_tensor(image)
    # pyiqa's AVA dataset module sets PIL's process-wide LOAD_TRUNCATED_IMAGES when imported; still an error here.
    from importlib.util import find_spec

    from PIL import ImageFile

    assert "ImageFile.LOAD_TRUNCATED_IMAGES = True" in Path(find_spec("pyiqa.data.ava_dataset").origin).read_text()
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as that import does; put back after the test
    with pytest.raises(DataError, match="img1-0-0.png: cannot decode image"):
        image_io.read_rgb_tensor(image)
    assert ImageFile.LOAD_TRUNCATED_IMAGES  # left as pyiqa set it


def test_cli_refuses_a_missing_dataset_with_one_message(tmp_path: Path, demo_set):
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["datasets"]["train"]["dataroot_gt"] = str(tmp_path / "missing")
    result = run_cli("train", "-opt", str(write_options(tmp_path / "o.yml", options)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"'datasets.train.dataroot_gt': no such folder {tmp_path / 'missing'}" in result.stderr
    assert not (tmp_path / "experiments" / "tiny").exists()
