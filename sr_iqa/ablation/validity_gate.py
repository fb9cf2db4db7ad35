"""The experiment's validity gate: is Q a yardstick on this data? Checked before any training, written into the
results.

For every group (training and held-out), Q of the original, of its bicubic x4 (from the held-out set's fixed LR,
or for a training group from the same one-stage degradation) and of each GT, measured as evaluation measures it:
the mean over the tiles of one grid (``tiled_q``). A group is kept when Q ranks its original above its bicubic by
at least the rule's margin and the original's Q is inside the rule's range; a group that fails is moved out of the
set (to ``<root>/gate_dropped``) before scoring, so that no training or evaluation sees it. The rule is fixed in
the experiment file, before the first run.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.data.demo_set import DemoSetPaths, one_stage_lr, photo_of
from sr_iqa.data.groups import Group
from sr_iqa.data.image_io import read_rgb_tensor
from sr_iqa.errors import OptionsError
from sr_iqa.evaluate.metric_set import bicubic_upscaler
from sr_iqa.iqa.scorer import Grid
from sr_iqa.score_rules import best, is_better, oriented

GATE_FILE = "gate.json"  # in the data set's root: the records of the gate, read again by the results
DROPPED = "gate_dropped"


@dataclass(frozen=True)
class GateRule:
    """Kept: ``q_min <= Q(original) <= q_max`` and Q(original) better than Q(bicubic) by at least ``margin``; a
    held-out group also needs headroom, its best GT better than its original by at least ``min_headroom`` (so
    that a choice among the GTs can show), when that is set."""

    q_min: float
    q_max: float
    margin: float
    min_headroom: float | None = None

    def reason_to_drop(self, original: float, bicubic: float, lower_better: bool,
                       headroom: float | None = None) -> str | None:
        """Why the group goes (None: kept); ``headroom``: its best GT's gain over the original, held-out only."""
        if not math.isfinite(original) or not self.q_min <= original <= self.q_max:
            return f"Q of the original {original:.2f} outside [{self.q_min:g}, {self.q_max:g}]"
        if not math.isfinite(bicubic):
            return f"Q cannot score the bicubic x4 ({bicubic}), so it cannot rank the original above it"
        if oriented(original - bicubic, lower_better) < self.margin:
            return f"Q does not rank the original ({original:.2f}) above bicubic x4 ({bicubic:.2f})"
        if headroom is not None and self.min_headroom is not None and not headroom >= self.min_headroom:
            return f"headroom {headroom:.2f} (best GT over the original) below {self.min_headroom:g}"
        return None

    def describe(self, metric: str, tiles: str, lower_better: bool) -> str:
        headroom = ("" if self.min_headroom is None else
                    f"; a held-out group also needs its best GT to beat its original by at least {self.min_headroom:g}")
        return (f"a group is kept when {metric} (mean over the {tiles} tiles) of its original lies in "
                f"[{self.q_min:g}, {self.q_max:g}] and is {'lower' if lower_better else 'higher'} than its bicubic "
                f"x4's by at least {self.margin:g}{headroom}")


@dataclass(frozen=True)
class GroupRecord:
    split: str  # "train" or "held-out"
    group: str
    photo: str
    original: float
    bicubic: float
    gts: dict[str, float]  # slot -> Q, the enhanced GTs
    labels: dict[str, str]  # slot -> aggregated label
    dropped: str | None  # why, or None when kept

    def best_gt(self, lower_better: bool) -> float:
        return best([self.original, *self.gts.values()], lower_better)

    def best_slot(self, lower_better: bool) -> str:
        """The slot ("original", "01", ...) whose Q is ``best_gt``."""
        top = self.best_gt(lower_better)
        return next((slot for slot, q in self.gts.items() if q == top and q != self.original), "original")

    def positives_beating_original(self, lower_better: bool) -> tuple[int, int]:
        """(Positives whose Q beats the original's, Positives)."""
        positives = [slot for slot, label in self.labels.items() if label == "Positive"]
        return sum(is_better(self.gts[slot], self.original, lower_better) for slot in positives), len(positives)


@dataclass(frozen=True)
class GateReport:
    metric: str
    tiles: str
    lower_better: bool
    rule: GateRule
    records: list[GroupRecord]
    # tiles covering each image (``covering_starts``); a report written before they did (false) measured the
    # grid from the top-left alone, leaving a strip of a crop that is not a whole number of tiles unseen
    covering: bool = True

    def kept(self, split: str) -> list[GroupRecord]:
        return [r for r in self.records if r.split == split and r.dropped is None]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @staticmethod
    def from_json(text: str) -> GateReport:
        data = json.loads(text)
        return GateReport(data["metric"], data["tiles"], data["lower_better"], GateRule(**data["rule"]),
                          [GroupRecord(**record) for record in data["records"]], data.get("covering", False))


def covering_starts(length: int, size: int, stride: int) -> list[int]:
    """Tile starts on the ``stride`` grid plus one flush with the far edge when the grid leaves a strip unseen, so
    that the tiles cover the whole image (a 128-px crop in 96-px tiles: 0 and 32, not its top-left tile alone)."""
    if length < size:
        return []
    starts = list(range(0, length - size + 1, stride))
    return starts if starts[-1] == length - size else [*starts, length - size]


def q_device() -> torch.device:
    """Where the experiment scores Q of whole images (gate, analysis): the GPU when there is one, whose CPU side
    would otherwise take minutes of a short loan (the gpu preset scores about 1,800 NIQE tiles)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def tiled_q(metric: torch.nn.Module, image: torch.Tensor, tiles: str) -> float:
    """Mean Q over the ``size`` x ``size`` tiles on a ``stride`` grid covering a CHW image in [0, 1] (a tile the
    metric cannot score is left out; NaN when none can): how the experiment measures Q everywhere, so that the samplers'
    crop scores, the gate and the evaluation measure the same thing."""
    from sr_iqa.iqa.metrics import score_each

    grid = Grid.parse(tiles)
    size = grid.size
    boxes = [(y, x) for y in covering_starts(image.shape[-2], size, grid.stride)
             for x in covering_starts(image.shape[-1], size, grid.stride)]
    if not boxes:
        return math.nan
    batch = torch.stack([image[:, y:y + size, x:x + size] for y, x in boxes])
    scores, _ = score_each(metric, batch)
    finite = scores[torch.isfinite(scores)]
    return float(finite.mean()) if len(finite) else math.nan


def _record(metric: torch.nn.Module, group: Group, split: str, number: int, rule: GateRule, tiles: str,
            scale: int, seed: int) -> GroupRecord:
    lower_better = bool(metric.lower_better)
    original = read_rgb_tensor(group.original.path)
    lr = read_rgb_tensor(group.lr_path) if group.lr_path is not None else one_stage_lr(original, scale, seed, number)
    bicubic = bicubic_upscaler(scale)(lr[None])[0]
    q_original, q_bicubic = tiled_q(metric, original, tiles), tiled_q(metric, bicubic, tiles)
    gts = {gt.slot: tiled_q(metric, read_rgb_tensor(gt.path), tiles) for gt in group.gts[1:]}
    labels = {gt.slot: gt.label or "" for gt in group.gts[1:]}
    headroom = None
    if split == "held-out":
        headroom = oriented(best([q_original, *gts.values()], lower_better) - q_original, lower_better)
    return GroupRecord(split, group.name, photo_of(group.name), q_original, q_bicubic, gts, labels,
                       rule.reason_to_drop(q_original, q_bicubic, lower_better, headroom))


def run_gate(paths: DemoSetPaths, metric: torch.nn.Module, metric_name: str, rule: GateRule, tiles: str, scale: int,
             seed: int, say=print) -> GateReport:
    """Measure every group, move the failing ones out of the set and write ``gate.json``; a set already gated
    (its ``gate.json`` written for the same rule) is read back instead."""
    from sr_iqa.data.check import discover_splits

    done = paths.root / GATE_FILE
    if done.is_file():
        report = GateReport.from_json(done.read_text())
        if report.rule == rule and report.tiles == tiles and report.metric == metric_name:
            return report
        raise OptionsError(f"{paths.root} was gated with another rule, metric or tiles ({done}); delete "
                           f"{paths.root} to build and gate it anew")
    records = []
    for split, images in (("train", paths.train_images), ("held-out", paths.test_images)):
        index = next(iter(discover_splits(images).values()))
        records += [_record(metric, group, split, number, rule, tiles, scale, seed)
                    for number, group in enumerate(index.groups)]
    report = GateReport(metric_name, tiles, bool(metric.lower_better), rule, records)
    for record in records:
        if record.dropped is not None:
            _move_out(paths, record)
    write_text_atomically(done, report.to_json())
    for line in gate_lines(report):
        say(line)
    return report


def _move_out(paths: DemoSetPaths, record: GroupRecord) -> None:
    """Every file of the group (GTs, label files, fixed LR) to the same place under ``gate_dropped``."""
    train = record.split == "train"
    images, labels = (paths.train_images, paths.train_labels) if train else (paths.test_images, paths.test_labels)
    files = [p for p in images.glob(f"*/{record.group}*.png")
             if p.stem == record.group or p.stem.startswith(f"{record.group}_")]
    files += list(labels.glob(f"*/{record.group}.json"))
    if not train:
        files.append(paths.test_lr / f"{record.group}.png")
    for file in files:
        target = paths.root / DROPPED / file.relative_to(paths.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(file, target)


def gate_lines(report: GateReport) -> list[str]:
    """The counts, per split and photo, and the training labels' agreement with Q, as printed and written."""
    lines = [f"validity gate: {report.rule.describe(report.metric, report.tiles, report.lower_better)}"
             + ("" if report.covering else " (gated before the tiles covered each image: the grid from the top-left "
                "only, a strip of a crop that is not a whole number of tiles unseen)")]
    for split in ("train", "held-out"):
        records = [r for r in report.records if r.split == split]
        photos = sorted({r.photo for r in records}, key=lambda p: [r.photo for r in records].index(p))
        per_photo = ", ".join(f"{p} {sum(r.dropped is None for r in records if r.photo == p)}/"
                              f"{sum(r.photo == p for r in records)}" for p in photos)
        lines.append(f"{split}: {len(report.kept(split))} of {len(records)} groups kept ({per_photo})")
    kept = report.kept("held-out")
    if kept:
        gains = [oriented(r.best_gt(report.lower_better) - r.original, report.lower_better) for r in kept]
        share = max(gains) / sum(gains) * 100 if sum(gains) > 0 else 0.0
        lines.append(f"held-out headroom (best GT over the original, {report.metric}): mean "
                     f"{sum(gains) / len(gains):.2f}, none in {sum(g <= 0 for g in gains)} of {len(gains)} kept "
                     f"groups, the largest group {share:.0f}% of the total")
    beating, positives = agreement(report.kept("train"), report.lower_better)
    lines.append(f"training labels against Q: {beating} of {positives} Positives beat their original on "
                 f"{report.metric}")
    return lines


def agreement(records: Sequence[GroupRecord], lower_better: bool) -> tuple[int, int]:
    counts = [r.positives_beating_original(lower_better) for r in records]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)
