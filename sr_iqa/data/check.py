"""``sr-iqa data check``: find the splits under a root, index them, validate, summarise."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sr_iqa.data.groups import LABEL_VALUES, GroupIndex, index_manifest, keep_positive_groups
from sr_iqa.data.release_layout import find_splits
from sr_iqa.data.validation import check_images
from sr_iqa.errors import DataError


def discover_splits(root: Path, layout: str | None = None) -> dict[str, GroupIndex]:
    """Split name -> index. A ``.jsonl`` file is a manifest; a folder is any level of an HGGT release, one set,
    or a flat folder of images (``release_layout.find_splits``)."""
    if layout == "manifest" or (layout is None and (root.is_file() or root.suffix == ".jsonl")):
        return {root.name: index_manifest(root)}
    return {split.name: split.index() for split in find_splits(root)}


def summarize(name: str, index: GroupIndex, positive_only: bool) -> list[str]:
    gts = [gt for group in index.groups for gt in group.gts]
    labels = Counter(gt.label for group in index.groups for gt in group.gts[1:])
    positives = Counter(len(group.indices_labelled("Positive")) for group in index.groups)
    with_lr = sum(group.lr_path is not None for group in index.groups)
    lines = [f"{name}: {len(index.groups)} groups, {len(gts)} GTs"
             + (f", {with_lr} fixed LR images" if with_lr else "")]
    if len(gts) == len(index.groups):
        lines.append("  single-GT groups (a flat folder of images): no enhanced GTs, no labels")
        return lines
    lines += ["  labels: " + ", ".join(f"{label}: {labels.get(label, 0)}" for label in LABEL_VALUES)
              + (f", unlabelled: {labels[None]}" if labels.get(None) else ""),
              "  Positives per group: " + ", ".join(f"{k}: {positives[k]}" for k in sorted(positives))]
    if positive_only:
        dropped = keep_positive_groups(index).dropped
        lines.append(f"  dropped by the positive-only filter: {len(dropped)}")
        for reason, count in Counter(dropped.values()).items():
            lines.append(f"    {count} group(s): {reason}")
    return lines


def pack_problems(pack: Path, groups: list) -> list[str]:
    """Stale pack entries, pixels that fail their checksum, and images of the data set the pack does not hold."""
    from sr_iqa.data.packed_store import PackedStore

    store = PackedStore(pack)
    problems = store.stale() + store.verify()
    for gt in (gt for group in groups for gt in group.gts):
        try:
            store.shape(gt.path)
        except DataError as error:
            problems.append(str(error))
    return problems


def run_data_check(root: Path, layout: str | None, scale: int, positive_only: bool, decode: bool = True,
                   pack: Path | None = None) -> int:
    """Print the summary and every problem (with ``pack``, also the pack's); 1 when there is any problem."""
    problems = []
    for name, index in discover_splits(root, layout).items():
        print("\n".join(summarize(name, index, positive_only) + [f"  note: {note}" for note in index.notes]))
        problems += index.problems + check_images(index.groups, scale, decode=decode)
        if pack is not None:
            problems += pack_problems(pack, index.groups)
    if problems:
        print(f"\n{len(problems)} problem(s):")
        print("\n".join(problems))
        return 1
    print("\nno problems found")
    return 0
