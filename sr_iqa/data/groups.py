"""The group index: each LR source image with its candidate GTs and their aggregated labels.

Built once from the HGGT release layout or a JSON Lines manifest, then shared by every
worker; labels are never read again per sample. Problems (missing files, bad JSON,
unknown labels) are collected, not raised one at a time, so a user sees all of them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sr_iqa.data.image_io import list_images
from sr_iqa.file_names import NAME_BYTES, is_plain_name
from sr_iqa.json_text import parse_json, read_json_file

HGGT_SLOTS = ("original", "01", "02", "03", "04")
LABEL_VALUES = ("Positive", "Similar", "Negative")
MIN_ANNOTATORS = 3
MAX_LABEL_FILE_BYTES = 1 << 20  # an HGGT label file is about 1 KiB
# The annotator folder of labels made from a metric (`sr-iqa label auto`): metric-<name>, alone in its labels folder.
METRIC_ANNOTATOR_PREFIX = "metric-"


@dataclass(frozen=True)
class GroundTruth:
    slot: str  # "original", "01".."04" (HGGT) or the position in a manifest line
    path: Path
    label: str | None = None  # aggregated label; None for the original or when unlabelled
    votes: tuple[str, ...] = ()  # one label per annotator

    @property
    def positive_votes(self) -> int:
        if self.votes:
            return sum(vote == "Positive" for vote in self.votes)
        return MIN_ANNOTATORS if self.label == "Positive" else 0

    @property
    def label_votes(self) -> int:
        """How many annotators gave the aggregated label: 2 or 3 for a majority, 1 when all differed (HGGT's
        ``label_num``); the original, and a label given without votes, count as unanimous."""
        if self.label is None or not self.votes:
            return MIN_ANNOTATORS
        agreeing = sum(vote == self.label for vote in self.votes)
        return agreeing if agreeing * 2 > len(self.votes) else 1


@dataclass(frozen=True)
class Group:
    name: str
    gts: tuple[GroundTruth, ...]  # gts[0] is the original
    lr_path: Path | None = None  # the fixed LR image of a test set

    @property
    def original(self) -> GroundTruth:
        return self.gts[0]

    def indices_labelled(self, label: str) -> list[int]:
        return [i for i, gt in enumerate(self.gts) if gt.label == label]


@dataclass
class GroupIndex:
    groups: list[Group]
    problems: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # group name -> why a filter dropped it
    notes: list[str] = field(default_factory=list)  # not problems, but worth a line (a fixed LR the copy lacks)


def aggregate_votes(votes: Sequence[str]) -> str:
    """HGGT's rule: the majority label; when no label has a majority (all differ) it is Similar."""
    label, count = Counter(votes).most_common(1)[0]
    return label if count * 2 > len(votes) else "Similar"


def hggt_label_file(group: str, slots: Sequence[str], labels: dict[str, str], time_cost: float = 0,
                    made_by: dict | None = None) -> dict:
    """One annotator's label file in HGGT's format: ``Picture_1`` the original (label null), ``Picture_k`` the
    enhanced GT of slot k-1, and ``Time_cost`` (seconds); ``made_by`` records the metric of `label auto`."""
    entries: dict = {"Picture_1": {"Name": "original", "File": f"original/{group}.png", "Label": None}}
    for number, slot in enumerate(slots, start=2):
        entries[f"Picture_{number}"] = {"Name": slot, "File": f"{slot}/{group}_{slot}.png", "Label": labels[slot]}
    entries["Time_cost"] = time_cost
    if made_by is not None:
        entries["Made_by"] = made_by
    return entries


def metric_of_annotator(folder_name: str) -> str | None:
    """The metric whose labels an annotator folder holds (``metric-niqe`` -> ``niqe``); None for a person's."""
    return folder_name.removeprefix(METRIC_ANNOTATOR_PREFIX) if folder_name.startswith(METRIC_ANNOTATOR_PREFIX) \
        else None


def _read_label_file(path: Path, slots: Sequence[str], problems: list[str]) -> dict[str, str] | None:
    """Slot -> label from one annotator's file (``Picture_1`` is the original, ``Picture_k`` slot k-1)."""
    try:
        entries = read_json_file(path, MAX_LABEL_FILE_BYTES)
    except FileNotFoundError:
        problems.append(f"{path}: label file is missing")
        return None
    except json.JSONDecodeError as error:
        problems.append(f"{path}: label file is not valid JSON ({error})")
        return None
    labels = {}
    for number, slot in enumerate(slots[1:], start=2):
        entry = entries.get(f"Picture_{number}") if isinstance(entries, dict) else None
        if not isinstance(entry, dict) or "Label" not in entry:
            problems.append(f"{path}: has no 'Picture_{number}' entry with a 'Label'")
            return None
        if entry["Label"] not in LABEL_VALUES:
            problems.append(f"{path}: unknown label {entry['Label']!r} for Picture_{number}; "
                            f"expected one of {', '.join(LABEL_VALUES)}")
            return None
        labels[slot] = entry["Label"]
    return labels


def _enhanced_path(images: Path, slot: str, original: Path) -> Path:
    return images / slot / f"{original.stem}_{slot}{original.suffix}"


def index_flat(images: Path, lr: Path | None = None) -> GroupIndex:
    """Single-GT groups: every image of a flat folder (HGGT's Set5 validation set), with ``lr/<name>`` when given
    (a paired set, as BasicSR's PairedImageDataset reads it)."""
    groups, problems = [], []
    for path in list_images(images):
        lr_path = lr / path.name if lr is not None else None
        if lr_path is not None and not lr_path.is_file():
            problems.append(f"{lr_path}: LR image is missing (GT {path})")
            lr_path = None
        groups.append(Group(path.stem, (GroundTruth("original", path),), lr_path))
    if not groups:
        problems.append(f"{images}: holds no images")
    return GroupIndex(groups, problems)


def index_hggt(images: Path, labels: Path | None = None, lr: Path | None = None) -> GroupIndex:
    """Groups of an HGGT split: ``images/{original,01..04}``, ``labels/{A,B,C}/<name>.json``, ``lr/<name>``."""
    problems: list[str] = []
    if not (images / "original").is_dir():
        return GroupIndex([], [f"{images / 'original'}: folder is missing; an HGGT images folder holds original/ "
                               "and 01..04/ (a folder of single images is read as such where it has no subfolders)"])
    annotators = sorted(p for p in labels.iterdir() if p.is_dir()) if labels is not None and labels.is_dir() else []
    made_by_metric = _metric_labels(labels, annotators, problems) if labels is not None else False
    needed = 1 if made_by_metric else MIN_ANNOTATORS
    if labels is not None and len(annotators) < needed:
        problems.append(f"{labels}: holds {len(annotators)} annotator folder(s); HGGT labels need at least "
                        f"{MIN_ANNOTATORS} (A, B, C), or one folder of labels from a metric (sr-iqa label auto)")
    groups = []
    for original in list_images(images / "original"):
        slot_paths = {"original": original}
        for slot in HGGT_SLOTS[1:]:
            path = _enhanced_path(images, slot, original)
            if path.is_file():
                slot_paths[slot] = path
            elif (images / slot).is_dir():
                problems.append(f"{path}: enhanced GT is missing (original {original})")
        slots = [slot for slot in HGGT_SLOTS if slot in slot_paths]
        votes: dict[str, list[str]] = {slot: [] for slot in slots[1:]}
        complete = len(annotators) >= needed
        for annotator in annotators:
            read = _read_label_file(annotator / f"{original.stem}.json", slots, problems)
            if read is None:
                complete = False
                continue
            for slot in votes:
                votes[slot].append(read[slot])
        gts = [GroundTruth("original", original)]
        for slot in slots[1:]:
            label = aggregate_votes(votes[slot]) if complete else None
            # A metric's label is one judgement, not one of three votes: kept as a label without votes.
            kept_votes = tuple(votes[slot]) if complete and not made_by_metric else ()
            gts.append(GroundTruth(slot, slot_paths[slot], label, kept_votes))
        lr_path = lr / original.name if lr is not None else None
        if lr_path is not None and not lr_path.is_file():
            problems.append(f"{lr_path}: fixed LR image is missing (original {original})")
            lr_path = None
        groups.append(Group(original.stem, tuple(gts), lr_path))
    problems += _orphaned_enhanced_gts(images, {original.stem for original in list_images(images / "original")})
    if not groups:
        problems.append(f"{images / 'original'}: holds no images")
    notes = [f"{labels}: the labels were made by the metric {metric_of_annotator(annotators[0].name)} "
             "(sr-iqa label auto), not by annotators"] if made_by_metric else []
    return GroupIndex(groups, problems, notes=notes)


def _metric_labels(labels: Path, annotators: Sequence[Path], problems: list[str]) -> bool:
    """Whether the labels folder holds one metric's labels (``metric-<name>/``, alone); a metric's folder beside
    annotators' folders is a problem (a metric's vote would count as a person's)."""
    metric_folders = [folder.name for folder in annotators if metric_of_annotator(folder.name) is not None]
    if metric_folders and len(annotators) > 1:
        problems.append(f"{labels}: holds labels from a metric ({', '.join(metric_folders)}) beside other annotator "
                        "folders; keep either the annotators' folders or one metric's folder (move the others aside)")
    return len(metric_folders) == 1 and len(annotators) == 1


def _orphaned_enhanced_gts(images: Path, originals: set[str]) -> list[str]:
    """Enhanced GTs whose original is missing: their group would otherwise vanish without a word."""
    problems = []
    for slot in HGGT_SLOTS[1:]:
        for path in list_images(images / slot) if (images / slot).is_dir() else []:
            stem = path.stem.removesuffix(f"_{slot}")
            if stem not in originals:
                problems.append(f"{path}: enhanced GT without its original ({images / 'original' / stem}"
                                f"{path.suffix} is missing); add the original or remove the group's files")
    return problems


def _is_list_of(value: object, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(item, kind) for item in value)


def _manifest_type_problem(entry: dict) -> str | None:
    """What is of the wrong JSON type in a manifest entry; a name that is not a plain file name (it names output
    files: ``a/../b`` or ``/x`` would write outside their folders)."""
    name = entry.get("name")
    if name is not None and not is_plain_name(name):
        return (f"'name' must be a plain file name (no folders, printable, at most {NAME_BYTES} bytes), "
                f"not {name!r}")
    if not _is_list_of(entry.get("gts", []), str):
        return "'gts' must be a list of paths (strings)"
    if entry.get("lr") is not None and not isinstance(entry["lr"], str):
        return "'lr' must be a path (string)"
    if entry.get("labels") is not None and not _is_list_of(entry["labels"], (str, type(None))):
        return "'labels' must be a list of label strings"
    votes = entry.get("votes")
    if votes is not None and not (isinstance(votes, list) and all(_is_list_of(v, str) for v in votes)):
        return "'votes' must be a list of lists of label strings"
    return None


def _manifest_group(entry: object, base: Path, where: str, problems: list[str]) -> Group | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("original"), str):
        problems.append(f"{where}: needs an 'original' path")
        return None
    unknown = set(entry) - {"name", "original", "gts", "labels", "votes", "lr"}
    if unknown:
        problems.append(f"{where}: unknown key(s) {sorted(unknown)}; allowed: name, original, gts, labels, votes, lr")
        return None
    type_problem = _manifest_type_problem(entry)
    if type_problem:
        problems.append(f"{where}: {type_problem}")
        return None
    enhanced = entry.get("gts", [])
    labels, votes = entry.get("labels"), entry.get("votes")
    for key, value in (("labels", labels), ("votes", votes)):
        if value is not None and (not isinstance(value, list) or len(value) != len(enhanced)):
            problems.append(f"{where}: '{key}' must be a list with one item per entry of 'gts'")
            return None
    if votes is not None and any(len(gt_votes) < MIN_ANNOTATORS for gt_votes in votes):
        problems.append(f"{where}: every 'votes' entry needs at least {MIN_ANNOTATORS} annotators' labels")
        return None
    outside = [path for path in (entry["original"], *enhanced, entry.get("lr") or ".")
               if not (base / path).resolve().is_relative_to(base.resolve())]
    if outside:
        problems.append(f"{where}: {outside[0]!r} lies outside the manifest's folder {base}; a manifest names images "
                        "by paths below its own folder (move the manifest up, or copy the images below it: symbolic "
                        "links are followed)")
        return None
    gts = [GroundTruth("original", base / entry["original"])]
    for position, relative in enumerate(enhanced):
        gt_votes = tuple(votes[position]) if votes is not None else ()
        label = labels[position] if labels is not None else (aggregate_votes(gt_votes) if gt_votes else None)
        for value in (label, *gt_votes):
            if value is not None and value not in LABEL_VALUES:
                problems.append(f"{where}: unknown label {value!r}; expected one of {', '.join(LABEL_VALUES)}")
                return None
        gts.append(GroundTruth(f"{position + 1:02d}", base / relative, label, gt_votes))
    for gt in gts:
        if not gt.path.is_file():
            problems.append(f"{gt.path}: image is missing ({where})")
    lr_path = base / entry["lr"] if entry.get("lr") else None
    if lr_path is not None and not lr_path.is_file():
        problems.append(f"{lr_path}: fixed LR image is missing ({where})")
    return Group(str(entry.get("name") or gts[0].path.stem), tuple(gts), lr_path)


def index_manifest(manifest: Path) -> GroupIndex:
    """Groups from JSON Lines: ``{"original", "gts", "labels" | "votes", "lr", "name"}``; paths relative to the file."""
    if not manifest.is_file():
        return GroupIndex([], [f"{manifest}: manifest file is missing"])
    try:
        lines = manifest.read_text().splitlines()
    except (UnicodeDecodeError, OSError) as error:
        return GroupIndex([], [f"{manifest}: manifest cannot be read as UTF-8 text ({error})"])
    groups, problems = [], []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{manifest}:{number}"
        try:
            entry = parse_json(line)
        except json.JSONDecodeError as error:
            problems.append(f"{where}: not valid JSON ({error})")
            continue
        group = _manifest_group(entry, manifest.parent, where, problems)
        if group is None:
            continue
        if group.name in first_line:  # outputs are named after groups: one would overwrite the other
            problems.append(f"{where}: group name {group.name!r} is already used on line {first_line[group.name]}; "
                            "give each group its own 'name'")
            continue
        first_line[group.name] = number
        groups.append(group)
    if not groups and not problems:
        problems.append(f"{manifest}: holds no groups (one JSON object per line)")
    return GroupIndex(groups, problems)


def keep_positive_groups(index: GroupIndex) -> GroupIndex:
    """HGGT's positive-only filter: drop a group when no enhanced GT has more than one Positive vote."""
    kept = []
    dropped = dict(index.dropped)
    for group in index.groups:
        if any(gt.positive_votes > 1 for gt in group.gts[1:]):
            kept.append(group)
        else:
            dropped[group.name] = "no enhanced GT has more than one Positive vote"
    return GroupIndex(kept, list(index.problems), dropped, list(index.notes))


def keep_effective_groups(index: GroupIndex) -> GroupIndex:
    """HGGT's filter for Pos+Neg training: drop a group when every enhanced GT is (effectively) Similar, i.e. no
    enhanced GT has a majority Positive or Negative."""
    kept, dropped = [], dict(index.dropped)
    for group in index.groups:
        if any(gt.label in ("Positive", "Negative") for gt in group.gts[1:]):
            kept.append(group)
        else:
            dropped[group.name] = "every enhanced GT is Similar (no effective Positive or Negative)"
    return GroupIndex(kept, list(index.problems), dropped, list(index.notes))
