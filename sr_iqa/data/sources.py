"""Options -> a validated group index: the one path by which training, evaluation and scoring read data.

``dataroot_gt`` names one folder or a list of them (several sets of a release, as one split); each is an
HGGT images folder (holding ``original/``), a release set folder (``Test/GT/<set>``) or a flat folder of
single images. ``dataroot_label`` and ``dataroot_lq`` follow it, one entry per folder.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sr_iqa.config.schema import DatasetLayout, DataSourceOptions
from sr_iqa.data.groups import (
    GroupIndex,
    index_flat,
    index_hggt,
    index_manifest,
    keep_effective_groups,
    keep_positive_groups,
)
from sr_iqa.data.index_cache import validated_index
from sr_iqa.data.release_layout import fixed_lr_of, release_images_folder, split_of_original
from sr_iqa.errors import OptionsError

log = logging.getLogger("sr_iqa.data")


def folder_list(value: Any) -> list[str]:
    """``dataroot_*`` as a list: one folder, a list of folders, or nothing."""
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(item) for item in value]


def _entries(source: DataSourceOptions, lr: Any) -> list[tuple[Path, Path | None, Path | None]]:
    """(images, labels, LR) per ``dataroot_gt`` folder; label and LR lists must match it in length. The
    ``original/`` folder of a multi-GT split stands for the split (HGGT's test files name it so): evaluation then
    uses HGGT's protocol over the Positive GTs, training the split's GTs and labels, not single originals that the
    label filters would all drop."""
    folders, labels, lrs = folder_list(source.dataroot_gt), folder_list(source.dataroot_label), folder_list(lr)
    for key, values in (("dataroot_label", labels), ("dataroot_lq", lrs)):
        if values and len(values) != len(folders):
            raise OptionsError(f"datasets.{source.name}.{key} names {len(values)} folder(s) but dataroot_gt names "
                               f"{len(folders)}; give one per dataroot_gt folder, in the same order")
    entries = []
    for i, folder in enumerate(folders):
        images, label = Path(folder), Path(labels[i]) if labels else None
        split = split_of_original(images)
        if split is not None:
            images, label = split[0], label or split[1]
            log.info("datasets.%s: %s is the original/ of the multi-GT split %s, read as that split (labels %s)",
                     source.name, folder, images, label or "missing")
        entries.append((images, label, Path(lrs[i]) if lrs else None))
    return entries


def _folder_index(images: Path, labels: Path | None, lr: Path | None, find_lr: bool) -> GroupIndex:
    if not images.is_dir():
        return GroupIndex([], [f"{images}: no such folder (datasets.*.dataroot_gt)"])
    images = release_images_folder(images)
    notes: tuple[str, ...] = ()
    if find_lr and lr is None:
        lr, notes = fixed_lr_of(images)
        if lr is not None:
            log.info("%s: evaluated on the release's fixed LR images in %s", images, lr)
    elif find_lr:
        log.info("%s: evaluated on the fixed LR images in %s (dataroot_lq)", images, lr)
    index = index_hggt(images, labels, lr) if (images / "original").is_dir() else index_flat(images, lr)
    index.notes += notes
    return index


def _concatenated(indexes: Sequence[GroupIndex]) -> GroupIndex:
    merged = GroupIndex([group for index in indexes for group in index.groups],
                        [problem for index in indexes for problem in index.problems],
                        {name: why for index in indexes for name, why in index.dropped.items()},
                        [note for index in indexes for note in index.notes])
    repeated = [name for name, count in Counter(group.name for group in merged.groups).items() if count > 1]
    merged.problems += [f"group name {name} occurs in more than one dataroot_gt folder; names must be unique"
                        for name in repeated]
    return merged


def group_index(source: DataSourceOptions, scale: int, min_size: int = 0, with_lr: bool = False) -> GroupIndex:
    """Index the split, apply its filters, run the quick image checks; raises one DataError listing every problem.
    ``with_lr``: evaluation data, with the fixed LR of ``dataroot_lq`` or, when it is not given, the release's.
    A start whose data folders have not changed reads the index kept by the last one (``data.index_cache``)."""
    lr = getattr(source, "dataroot_lq", None) if with_lr else None

    entries = _entries(source, lr) if source.type is not DatasetLayout.manifest else []

    def build() -> GroupIndex:
        if source.type is DatasetLayout.manifest:
            index = index_manifest(Path(source.manifest))
        else:
            index = _concatenated([_folder_index(images, labels, lr_folder, with_lr)
                                   for images, labels, lr_folder in entries])
        if source.positive_only:
            index = keep_positive_groups(index)
        if source.effective_only:
            index = keep_effective_groups(index)
        return index

    def absolute(folders: list[str]) -> list[str]:  # relative folders mean other data from another directory
        return [os.path.abspath(folder) for folder in folders]

    key = {"type": source.type.value, "dataroot_gt": absolute(folder_list(source.dataroot_gt)),
           "dataroot_label": absolute(folder_list(source.dataroot_label)), "dataroot_lq": absolute(folder_list(lr)),
           "manifest": absolute(folder_list(source.manifest)), "with_lr": with_lr,
           "positive_only": source.positive_only, "effective_only": source.effective_only}
    roots = ([Path(source.manifest)] if source.type is DatasetLayout.manifest else
             [folder for entry in entries for folder in entry if folder is not None])
    index = validated_index(key, build, roots, scale, min_size)
    for note in index.notes:
        log.warning("%s", note)
    return index

