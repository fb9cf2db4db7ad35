"""``sr-iqa data check``: find the splits under a root, index them, validate, summarise."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sr_iqa.data.groups import LABEL_VALUES, GroupIndex, index_hggt, index_manifest, keep_positive_groups
from sr_iqa.data.validation import check_images
from sr_iqa.errors import DataError


def discover_splits(root: Path, layout: str | None = None) -> dict[str, GroupIndex]:
    """Split name -> index. A ``.jsonl`` file is a manifest; a folder is an HGGT release (or one images folder)."""
    if layout == "manifest" or (layout is None and root.is_file()):
        return {root.name: index_manifest(root)}
    if not root.is_dir():
        raise DataError(f"{root}: no such folder or manifest")
    splits = {}
    for images in sorted((root / "Train" / "images").glob("*/")):
        splits[f"Train/{images.name}"] = index_hggt(images, root / "Train" / "labels" / images.name)
    for split in sorted((root / "Test" / "GT").glob("*/")):
        lr = root / "Test" / "Blind_Degradation_Benchmark_LQ" / split.name / "Blind_LR"
        splits[f"Test/{split.name}"] = index_hggt(split / "images", split / "labels", lr if lr.is_dir() else None)
    if not splits and (root / "original").is_dir():  # one images folder; its labels where HGGT puts them
        candidates = (root.parent / "labels", root.parent.parent / "labels" / root.name)
        splits[root.name] = index_hggt(root, next((c for c in candidates if c.is_dir()), None))
    if not splits:
        raise DataError(f"{root}: found no HGGT split (Train/images/<set>, Test/GT/<set>/images, or original/); "
                        "pass a manifest .jsonl with --layout manifest for other data")
    return splits


def summarize(name: str, index: GroupIndex, positive_only: bool) -> list[str]:
    gts = [gt for group in index.groups for gt in group.gts]
    labels = Counter(gt.label for group in index.groups for gt in group.gts[1:])
    positives = Counter(len(group.indices_labelled("Positive")) for group in index.groups)
    lines = [f"{name}: {len(index.groups)} groups, {len(gts)} GTs",
             "  labels: " + ", ".join(f"{label}: {labels.get(label, 0)}" for label in LABEL_VALUES)
             + (f", unlabelled: {labels[None]}" if labels.get(None) else ""),
             "  Positives per group: " + ", ".join(f"{k}: {positives[k]}" for k in sorted(positives))]
    if positive_only:
        dropped = keep_positive_groups(index).dropped
        lines.append(f"  dropped by the positive-only filter: {len(dropped)}")
        for reason, count in Counter(dropped.values()).items():
            lines.append(f"    {count} group(s): {reason}")
    return lines


def pack_problems(pack: Path, groups: list) -> list[str]:
    """Stale pack entries, and images of the data set the pack does not hold."""
    from sr_iqa.data.packed_store import PackedStore

    store = PackedStore(pack)
    problems = store.stale()
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
        print("\n".join(summarize(name, index, positive_only)))
        problems += index.problems + check_images(index.groups, scale, decode=decode)
        if pack is not None:
            problems += pack_problems(pack, index.groups)
    if problems:
        print(f"\n{len(problems)} problem(s):")
        print("\n".join(problems))
        return 1
    print("\nno problems found")
    return 0
