"""Crop sheets: the same zoomed crop from LR, every method, the best GT and the original, side by side.

Structured noise is a pattern of a few pixels; it shows when a small crop is enlarged with
nearest-neighbour sampling, which keeps every pixel a visible square.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sr_iqa.data.image_io import read_rgb_array


def crop_box(original: np.ndarray, fraction: float = 0.25) -> tuple[int, int, int]:
    """(top, left, size) of the most textured square crop of the original (largest mean gradient), ``fraction``
    of the shorter side: where lost detail and added noise both show."""
    height, width = original.shape[:2]
    size = max(8, int(min(height, width) * fraction))
    grey = original.astype(np.float64).mean(axis=2)
    gradient = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    step = max(1, size // 2)
    candidates = [(gradient[top: top + size, left: left + size].mean(), top, left)
                  for top in range(0, height - size + 1, step) for left in range(0, width - size + 1, step)]
    _, top, left = max(candidates)
    return top, left, size


def crop_sheet(panels: Sequence[tuple[str, Path]], out: Path, tile: int = 192) -> Path:
    """One row of labelled panels, each the same crop enlarged to ``tile``; the last panel must be the original,
    which picks the crop. A smaller panel (the LR) is cropped at its own scale, width / original width."""
    images = [(label, read_rgb_array(path)) for label, path in panels]
    top, left, size = crop_box(images[-1][1])  # the last panel is the original
    label_height = 18
    sheet = Image.new("RGB", (tile * len(images), tile + label_height), "white")
    draw = ImageDraw.Draw(sheet)
    for column, (label, array) in enumerate(images):
        factor = max(1, round(images[-1][1].shape[1] / array.shape[1]))
        crop = array[top // factor: (top + size) // factor, left // factor: (left + size) // factor]
        panel = Image.fromarray(np.ascontiguousarray(crop)).resize((tile, tile), Image.NEAREST)
        sheet.paste(panel, (column * tile, label_height))
        draw.text((column * tile + 4, 3), label[:30], fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
