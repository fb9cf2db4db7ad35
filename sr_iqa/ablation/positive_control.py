"""The experiment's positive control: labels that agree with Q by construction, run as UPos.

In every kept training group the one enhanced GT that Q rates best is labelled Positive by all three annotators,
when it beats the original on Q (measured as the gate measures it); every other GT is Similar, so HGGT's negative
loss and the Negative-aware samplers see no Negatives. A UPos run on these labels trains towards what Q prefers.
If it does not beat originals only on held-out Q, the data and Q cannot show what the samplers are claimed to do,
and their claims are reported as not testable, never as not reproduced.
"""

from __future__ import annotations

from pathlib import Path

from sr_iqa.ablation.validity_gate import GateReport, GroupRecord
from sr_iqa.data.demo_set import ANNOTATORS, write_label_files

CONTROL_LABELS = "qcontrol"  # Train/labels/<set>_qcontrol beside the set's own labels


def control_labels_root(train_labels: Path) -> Path:
    return train_labels.with_name(f"{train_labels.name}_{CONTROL_LABELS}")


def control_labels(record: GroupRecord, lower_better: bool) -> dict[str, str]:
    """slot -> label: Positive for the enhanced GT Q rates best when it beats the original, Similar for the others."""
    winner = record.best_slot(lower_better)
    return {slot: "Positive" if slot == winner else "Similar" for slot in record.gts}


def write_control_labels(report: GateReport, train_labels: Path) -> tuple[Path, int]:
    """The control's label folder for the kept training groups; (its path, the groups with a Positive)."""
    root = control_labels_root(train_labels)
    with_positive = 0
    for record in report.kept("train"):
        labels = control_labels(record, report.lower_better)
        with_positive += "Positive" in labels.values()
        write_label_files(root, record.group, {annotator: labels for annotator in ANNOTATORS})
    return root, with_positive
