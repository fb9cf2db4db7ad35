"""Options -> a validated group index: the one path by which training, evaluation and scoring read data."""

from __future__ import annotations

from pathlib import Path

from sr_iqa.config.schema import DatasetLayout, DataSourceOptions
from sr_iqa.data.groups import GroupIndex, index_hggt, index_manifest, keep_positive_groups
from sr_iqa.data.validation import validated


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def group_index(source: DataSourceOptions, scale: int, lr_root: str | None = None, min_size: int = 0) -> GroupIndex:
    """Index the split, apply its filters, run the quick image checks; raises one DataError listing every problem."""
    if source.type is DatasetLayout.manifest:
        index = index_manifest(Path(source.manifest))
    else:
        index = index_hggt(Path(source.dataroot_gt), _path(source.dataroot_label), _path(lr_root))
    if source.positive_only:
        index = keep_positive_groups(index)
    return validated(index, scale, min_size)
