"""The validated group index of a data set, kept between runs so that a start does not read it again.

Indexing a split reads every label file and opens every image (its header and its end-of-file marker): at
HGGT's size (20k groups, 100k GTs, 60k label files) that is about 560,000 file-system calls and 21 s on a local
disk before the first step (benchmarks/startup_benchmark.py), on every run and every resume, and far longer on a
network file system. The index written after a successful build records the modification time of
every folder it read from (each image's folder, each label folder and the folders above them). A later start
stats those folders (about ten per split) and, when none changed, reads the index instead of the data set.

A folder's modification time changes when a file in it is created, removed or renamed (what copying, syncing or
deleting data does), not when a file is rewritten in place under the same name. Label files are small and an
editor or a script rewrites them in place, so each one's size and modification time is recorded too and stat'ed
at start (60k stats at HGGT's size, a fraction of a second on a local disk); an image rewritten in place under the
same name is seen by ``sr-iqa data check``, which reads everything, or after removing the index (its path is
logged). When a folder or a label file changed, the split is indexed again, but images in unchanged folders are
not opened again. A folder changed
within two seconds of the index being written counts as changed on the next start (file systems with coarse
timestamps could otherwise hide a change made in that tick). A damaged index is rebuilt, with a line saying so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.data.groups import LABEL_VALUES, GroundTruth, Group, GroupIndex
from sr_iqa.data.validation import checked_images, image_paths, validated
from sr_iqa.json_text import parse_json
from sr_iqa.user_cache import cache_dir

log = logging.getLogger("sr_iqa.data")

VERSION = 3  # 2: an evaluation split named by its original/ folder is the multi-GT split; 3: label files watched
RACY_NS = 2_000_000_000  # a folder changed this close to the index's writing is checked again next time


def index_folder() -> Path:
    return cache_dir() / "indexes"


def validated_index(key: dict[str, Any], build: Callable[[], GroupIndex], roots: Sequence[Path], scale: int,
                    min_size: int) -> GroupIndex:
    """The split's validated index: from the kept index when no watched folder changed, else built (``build``:
    the unvalidated index), checked (images in unchanged folders not opened again) and kept. ``key``: what the
    index depends on (the source's options); ``roots``: the folders named by the options, watched with their
    subfolders."""
    key = {**key, "scale": scale, "min_size": min_size, "version": VERSION}
    path = index_folder() / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]}.json"
    kept, kept_index = _read(path, key)
    changed = (_changed_folders(kept["folders"], kept["written_ns"]) | _changed_label_files(kept)
               if kept is not None else None)
    if kept_index is not None and not changed:
        log.info("data index: %d groups from %s (its %d folders unchanged)", len(kept_index.groups), path,
                 len(kept["folders"]))
        return kept_index
    started_ns = time.time_ns()
    index = build()
    known = {}
    if kept is not None:
        log.info("data index: %d of %d folders changed since %s; indexing again (images in the others are not "
                 "opened again)", len(changed), len(kept["folders"]), path)
        known = {Path(name): tuple(size) for name, size in kept["sizes"].items()
                 if os.path.dirname(name) not in changed}
    results = checked_images(image_paths(index.groups), known=known)
    validated(index, scale, min_size, results)
    folders = _watched_folders(roots, results)
    _write(path, key, index, {str(p): size for p, (size, _) in results.items()}, folders, _label_files(folders),
           started_ns)
    return index


def _label_files(folders: dict[str, int]) -> dict[str, list[int]]:
    """Every label file (``*.json``) in a watched folder, with its size and modification time."""
    files = {}
    for folder in folders:
        if os.path.isdir(folder):
            for entry in os.scandir(folder):
                if entry.name.endswith(".json") and entry.is_file():
                    stat = entry.stat()
                    files[entry.path] = [stat.st_size, stat.st_mtime_ns]
    return files


def _changed_label_files(kept: dict[str, Any]) -> set[str]:
    """The folders of label files rewritten (another size or time, or gone) since the index was written, or
    changed within its racy window."""
    changed = set()
    for file, (size, mtime_ns) in kept["labels"].items():
        try:
            stat = os.stat(file)
        except OSError:
            changed.add(os.path.dirname(file))
            continue
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns) or mtime_ns >= kept["written_ns"] - RACY_NS:
            changed.add(os.path.dirname(file))
    return changed


def _watched_folders(roots: Sequence[Path], results: dict) -> dict[str, int]:
    """Every image's folder, each root and its subfolders (label folders, slot folders), with their mtimes."""
    folders = {str(path.parent) for path in results}
    for root in roots:
        if root.is_dir():
            folders.add(str(root))
            folders.update(entry.path for entry in os.scandir(root) if entry.is_dir())
        elif root.exists():  # a manifest file: its own time
            folders.add(str(root))
    return {folder: os.stat(folder).st_mtime_ns for folder in sorted(folders) if os.path.exists(folder)}


def _changed_folders(folders: dict[str, int], written_ns: int) -> set[str]:
    changed = set()
    for folder, mtime_ns in folders.items():
        try:
            now_ns = os.stat(folder).st_mtime_ns
        except OSError:
            changed.add(folder)
            continue
        if now_ns != mtime_ns or mtime_ns >= written_ns - RACY_NS:
            changed.add(folder)
    return changed


def _read(path: Path, key: dict[str, Any]) -> tuple[dict[str, Any], GroupIndex] | tuple[None, None]:
    """The kept record and its index, or (None, None) when there is none or it is damaged (said in a line)."""
    if not path.is_file():
        return None, None
    try:
        kept = parse_json(path.read_bytes())
        if kept["key"] != key:
            raise ValueError("written for other options")
        if not (isinstance(kept["folders"], dict) and isinstance(kept["sizes"], dict)
                and isinstance(kept["labels"], dict) and isinstance(kept["written_ns"], int)):
            raise ValueError("fields of the wrong type")
        return kept, _index_of(kept)
    except (ValueError, KeyError, TypeError, IndexError, OSError) as error:
        log.warning("data index %s is damaged (%s: %s); indexing the data set again", path, type(error).__name__,
                    error)
        return None, None


def _write(path: Path, key: dict[str, Any], index: GroupIndex, sizes: dict[str, Any], folders: dict[str, int],
           labels: dict[str, list[int]], written_ns: int) -> None:
    record = {"key": key, "written_ns": written_ns, "folders": folders, "sizes": sizes, "labels": labels,
              "groups": [_group_record(group) for group in index.groups], "dropped": index.dropped,
              "notes": index.notes}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(record))
    except OSError as error:  # a read-only home: the next start indexes again, nothing else changes
        log.warning("data index: cannot write %s (%s); the next start will index the data set again", path,
                    error.strerror or error)


def _group_record(group: Group) -> list:
    return [group.name, str(group.lr_path) if group.lr_path is not None else None,
            [[gt.slot, str(gt.path), gt.label, list(gt.votes)] for gt in group.gts]]


def _index_of(kept: dict[str, Any]) -> GroupIndex:
    """The groups as recorded; a label or vote that a label file cannot hold, or a field of another type, is a
    ValueError (the index is then built again): it would train on labels nobody gave."""
    groups = [Group(name, tuple(_ground_truth(*gt) for gt in gts), Path(lr) if lr is not None else None)
              for name, lr, gts in kept["groups"]]
    return GroupIndex(groups, [], dict(kept["dropped"]), list(kept["notes"]))


def _ground_truth(slot: object, path: object, label: object, votes: object) -> GroundTruth:
    if not (isinstance(slot, str) and isinstance(path, str) and (label is None or label in LABEL_VALUES)
            and isinstance(votes, list) and all(vote in LABEL_VALUES for vote in votes)):
        raise ValueError(f"a GT recorded as {[slot, path, label, votes]!r}")
    return GroundTruth(slot, Path(path), label, tuple(votes))
