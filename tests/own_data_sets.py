"""Photo folders and built sets for the own-data tests: scikit-image's photos, cut small."""

from __future__ import annotations

from pathlib import Path

import yaml

from sr_iqa.data.demo_set import load_photo
from sr_iqa.data.image_io import write_rgb


def photo_folder(folder: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """``name -> (height, width)``: the top-left part of that scikit-image photo, written as ``<name>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (height, width) in sizes.items():
        write_rgb(folder / f"{name}.png", load_photo(name)[:height, :width])
    return folder


def enhancer_file(path: Path, *enhancers: dict) -> Path:
    path.write_text(yaml.safe_dump({"enhancers": list(enhancers)}))
    return path


UNSHARP = {"type": "unsharp", "radius": 2.0, "percent": 150}
