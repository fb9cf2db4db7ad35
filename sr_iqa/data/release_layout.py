"""Which splits a folder holds, at whatever level of the HGGT release a user points: the root, ``Train/``,
``Train/images``, ``Train/images/<set>``, ``Test/``, ``Test/GT``, ``Test/GT/<set>`` or its ``images/``; and
flat folders of images such as HGGT's Set5 validation set (``Test/GT/Set5/*.png``), whose groups are the
single images, paired with their LR folder when there is one.

Each split knows its labels (``Train/labels/<set>``, ``Test/GT/<set>/labels``) and its fixed LR images
(``Test/Blind_Degradation_Benchmark_LQ/<set>/Blind_LR``, or for a flat set the folder of that name itself).
What the release would have and this copy lacks is said in ``notes`` rather than silently replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sr_iqa.data.groups import GroupIndex, index_flat, index_hggt
from sr_iqa.data.image_io import list_images
from sr_iqa.errors import DataError

LR_FOLDER = "Blind_Degradation_Benchmark_LQ"


@dataclass(frozen=True)
class Split:
    """One split on disk: ``images`` holds ``original/`` (multi-GT), or is a flat folder of images."""

    name: str
    images: Path
    labels: Path | None = None
    lr: Path | None = None
    flat: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)

    def index(self) -> GroupIndex:
        index = index_flat(self.images, self.lr) if self.flat else index_hggt(self.images, self.labels, self.lr)
        index.notes += self.notes
        return index


def _is_multi_gt(folder: Path) -> bool:
    return (folder / "original").is_dir()


def _is_flat(folder: Path) -> bool:
    return folder.is_dir() and bool(list_images(folder))


def _test_root_of(set_folder: Path) -> Path | None:
    """``Test`` for ``Test/GT/<set>``; None outside the release layout."""
    return set_folder.parent.parent if set_folder.parent.name == "GT" else None


def release_images_folder(folder: Path) -> Path:
    """The images a set folder names: ``Test/GT/<set>`` holds them in ``images/``; others are their own."""
    return folder / "images" if _is_multi_gt(folder / "images") else folder


def split_of_original(folder: Path) -> tuple[Path, Path | None] | None:
    """For the ``original/`` folder of a multi-GT split (HGGT's test files name ``Test/GT/<set>/images/original``
    as a plain GT folder), that split's images folder and its labels (None when the copy has none); None for any
    other folder."""
    images = folder.parent
    if folder.name.lower() != "original" or not _is_multi_gt(images):
        return None
    if not any(child.is_dir() and child.name.isdigit() for child in images.iterdir()):
        return None  # an original/ without enhanced GTs beside it: a plain folder after all
    split = _images_folder_split(images)  # Train/labels/<set> or Test/GT/<set>/labels
    return split.images, split.labels


def fixed_lr_of(images: Path) -> tuple[Path | None, tuple[str, ...]]:
    """The release's fixed LR folder for an images folder (``Test/GT/<set>/images`` or a flat ``Test/GT/<set>``),
    and a note when the release layout says there should be one and there is none."""
    set_folder = images.parent if images.name == "images" and not _is_flat(images) else images
    return _fixed_lr(set_folder)


def _fixed_lr(set_folder: Path) -> tuple[Path | None, tuple[str, ...]]:
    """The release's fixed LR folder of ``Test/GT/<set>``, and a note when the layout says it should exist."""
    test_root = _test_root_of(set_folder)
    if test_root is None:
        return None, ()
    lr_set = test_root / LR_FOLDER / set_folder.name
    for candidate in (lr_set / "Blind_LR", lr_set):
        if _is_flat(candidate):
            return candidate, ()
    return None, (f"{set_folder}: no fixed LR images at {lr_set / 'Blind_LR'} (nor flat in {lr_set}); "
                  "evaluation synthesises the LR by bicubic downsampling instead",)


def _set_folder_split(set_folder: Path) -> Split:
    """``Test/GT/<set>`` (holding ``images/`` and ``labels/``) or a flat set folder."""
    lr, notes = _fixed_lr(set_folder)
    name = f"Test/{set_folder.name}" if _test_root_of(set_folder) is not None else set_folder.name
    if _is_multi_gt(set_folder / "images"):
        labels = set_folder / "labels"
        return Split(name, set_folder / "images", labels if labels.is_dir() else None, lr, notes=notes)
    return Split(name, set_folder, None, lr, flat=True, notes=notes)


def _images_folder_split(images: Path) -> Split:
    """A folder holding ``original/``: ``Train/images/<set>`` or ``Test/GT/<set>/images`` (or a copy elsewhere)."""
    if _test_root_of(images.parent) is not None or (images.name == "images" and (images.parent / "labels").is_dir()):
        return _set_folder_split(images.parent)  # Test/GT/<set>/images: the set folder knows labels and LR
    train_labels = images.parent.parent / "labels" / images.name
    in_train = images.parent.name == "images"
    return Split(f"Train/{images.name}" if in_train else images.name, images,
                 train_labels if train_labels.is_dir() else None)


def _train_splits(train_images: Path) -> list[Split]:
    return [_images_folder_split(folder) for folder in sorted(train_images.iterdir())
            if folder.is_dir() and _is_multi_gt(folder)]


def _test_splits(gt_folder: Path) -> list[Split]:
    return [_set_folder_split(folder) for folder in sorted(gt_folder.iterdir())
            if folder.is_dir() and (_is_multi_gt(folder / "images") or _is_flat(folder))]


def find_splits(folder: Path) -> list[Split]:
    """Every split under ``folder``; a DataError naming what was expected when there is none."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    if _is_multi_gt(folder):
        splits = [_images_folder_split(folder)]
    elif _is_multi_gt(folder / "images") or (_test_root_of(folder) is not None and _is_flat(folder)):
        splits = [_set_folder_split(folder)]
    elif (folder / "Train").is_dir() or (folder / "Test").is_dir():  # the release root
        splits = _train_splits(folder / "Train" / "images") if (folder / "Train" / "images").is_dir() else []
        splits += _test_splits(folder / "Test" / "GT") if (folder / "Test" / "GT").is_dir() else []
    elif (folder / "images").is_dir() and folder.name == "Train":
        splits = _train_splits(folder / "images")
    elif folder.name == "images" and any(_is_multi_gt(child) for child in folder.iterdir()):
        splits = _train_splits(folder)
    elif (folder / "GT").is_dir():  # Test/
        splits = _test_splits(folder / "GT")
    elif folder.name == "GT":
        splits = _test_splits(folder)
    elif _is_flat(folder):
        splits = [_set_folder_split(folder)]
    else:
        splits = []
    if not splits:
        raise DataError(f"{folder}: found no data: expected an HGGT release folder (the root, Train/, "
                        "Train/images/<set>, Test/, Test/GT/<set> or its images/, each set holding original/ and "
                        "01..04/), a flat folder of images, or a manifest .jsonl (--layout manifest)")
    return splits


def labels_folder_of(split: Split) -> Path:
    """Where a multi-GT split's label files go, existing or not: ``Train/labels/<set>`` for ``Train/images/<set>``,
    ``Test/GT/<set>/labels`` for ``Test/GT/<set>/images`` (and ``labels`` beside any other ``images`` folder)."""
    if split.labels is not None:
        return split.labels
    if split.images.name == "images":
        return split.images.parent / "labels"
    return split.images.parent.parent / "labels" / split.images.name
