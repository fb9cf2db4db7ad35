"""``sr-iqa report --ablation DIR``: one self-contained HTML page (images inlined) with the ablation
table, the perception-distortion plot and the crop sheets of the first K test images."""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from pathlib import Path

from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.data.check import discover_splits
from sr_iqa.errors import SrIqaError
from sr_iqa.evaluate.run_eval import LR_FOLDER
from sr_iqa.report.sheets import crop_sheet
from sr_iqa.score_rules import arrow, best


def _inline_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table_html(record: dict) -> str:
    metrics, lower_better = record["metrics"], record["lower_better"]
    head = "".join(f"<th>{html.escape(m)} {arrow(lower_better[m])}</th>" for m in metrics)
    body = []
    for method, row in record["rows"].items():
        cells = []
        for metric in metrics:
            value = row.get(metric)
            cells.append("<td>—</td>" if value is None else
                         f"<td>{'nan' if math.isnan(value) else f'{value:.4f}'}</td>")
        body.append(f"<tr><th>{html.escape(method)}</th>{''.join(cells)}</tr>")
    return f"<table id='ablation-table'><tr><th>Method</th>{head}</tr>{''.join(body)}</table>"


def _best_gt_slots(gt_scores: Path, metric: str, lower_better: bool) -> dict[str, str]:
    by_group: dict[str, list[tuple[float, str]]] = {}
    with gt_scores.open() as handle:
        for row in csv.DictReader(handle):
            by_group.setdefault(row["group"], []).append((float(row[metric]), row["slot"]))
    chosen = {}
    for group, entries in by_group.items():
        value = best([v for v, _ in entries], lower_better)
        chosen[group] = next(slot for v, slot in entries if v == value)
    return chosen


def _saved_lr(record: dict, name: str) -> Path | None:
    """A group without a fixed LR: the LR its evaluation synthesised, saved beside the SR images (eval --save-sr)."""
    saved = [Path(folder).parent / LR_FOLDER / f"{name}.png" for folder in record["sr_folders"].values()]
    return next((path for path in saved if path.is_file()), None)


def write_sheets(record: dict, folder: Path) -> list[Path]:
    """Crop sheets for the first ``report_images`` test groups: LR, each method, the best GT (by the plot
    metric), the original."""
    splits = discover_splits(Path(record["dataset"]))
    groups = [g for name, index in splits.items() if name.startswith("Test/") for g in index.groups] or \
        [g for index in splits.values() for g in index.groups]
    metric = record["plot_metric"]
    best_slots = {}
    if metric in record["no_reference"]:
        best_slots = _best_gt_slots(Path(record["gt_scores"]), metric, record["lower_better"][metric])
    sheets = []
    for group in groups[: record["report_images"]]:
        lr = group.lr_path or _saved_lr(record, group.name)
        panels = [("LR (nearest)", lr)] if lr is not None else []
        panels += [(label, Path(folder_sr) / f"{group.name}.png") for label, folder_sr in record["sr_folders"].items()]
        slot = best_slots.get(group.name)
        if slot is not None:
            gt = next(g for g in group.gts if g.slot == slot)
            panels.append((f"best GT by {metric} ({slot})", gt.path))
        panels.append(("original", group.original.path))
        missing = [str(path) for _, path in panels if not path.is_file()]
        if missing:
            raise SrIqaError(f"report: missing images {missing[:2]}; rerun the ablation's eval steps")
        sheets.append(crop_sheet(panels, folder / f"{group.name}.png"))
    return sheets


def write_report(root: Path) -> Path:
    record_path = root / "ablation.json"
    if not record_path.is_file():
        raise SrIqaError(f"{root}: no ablation.json; run `sr-iqa ablate -opt FILE` first")
    record = json.loads(record_path.read_text())
    sheets = write_sheets(record, root / "sheets")
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>sr_iqa ablation</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #999;padding:4px 8px;text-align:right}img{max-width:100%}</style></head><body>",
             f"<h1>Ablation: {html.escape(root.name)}</h1><p>{html.escape(record['caption'])}</p>",
             _table_html(record)]
    if record.get("plot"):
        parts.append(f"<h2>Perception-distortion</h2><img id='pd-plot' alt='perception-distortion plot' "
                     f"src='{_inline_png(root / record['plot'])}'>")
    parts.append("<h2>Crops</h2><p>The same crop of each image (its most textured quarter), enlarged with "
                 "nearest-neighbour sampling: structured noise shows as a regular pattern.</p>")
    parts += [f"<h3>{html.escape(sheet.stem)}</h3><img class='sheet' alt='{html.escape(sheet.stem)}' "
              f"src='{_inline_png(sheet)}'>" for sheet in sheets]
    # After load, every image reports whether it decoded (read back by the headless-browser test).
    parts.append("<script>window.addEventListener('load', () => { const images = [...document.images]; "
                 "images.forEach(i => i.dataset.rendered = String(i.complete && i.naturalWidth > 0)); "
                 "document.body.dataset.imagesRendered = images.filter(i => i.naturalWidth > 0).length; });</script>")
    parts.append("</body></html>")
    out = root / "report.html"
    write_text_atomically(out, "\n".join(parts))
    return out
