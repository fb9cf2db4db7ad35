"""A packed image store: every image decoded once into raw uint8 pixels, read back crop by crop.

``sr-iqa data pack ROOT --out PACK`` writes ``PACK/pixels.u8`` (each image's HxWx3 bytes, one after
the other) and ``PACK/index.json`` (per image, relative to the images' common folder: offset, height, width and the
source file's size and mtime). Reading a 256-pixel crop of a 512x512 image then touches 256 rows
of a memory map instead of inflating the whole PNG. A stale entry (the source file changed after
packing) is refused with a message naming the file, and ``data check --pack`` lists them all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sr_iqa.data.image_io import read_rgb_array
from sr_iqa.errors import DataError

PIXELS = "pixels.u8"
INDEX = "index.json"


@dataclass(frozen=True)
class PackedImage:
    offset: int
    height: int
    width: int
    source_size: int
    source_mtime_ns: int


def _stat(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def pack_images(paths: Iterable[Path], out: Path) -> int:
    """Decode each image once into ``out``; returns the number of images. Entries are keyed relative to the
    images' common folder. Written to temporary names and renamed at the end, so an interrupted pack leaves
    no half store behind."""
    paths = sorted({path.resolve() for path in paths})
    if not paths:
        raise DataError("no images to pack")
    root = Path(os.path.commonpath([path.parent for path in paths]))
    out.mkdir(parents=True, exist_ok=True)
    entries, offset = {}, 0
    partial_pixels, partial_index = out / f".{PIXELS}.partial", out / f".{INDEX}.partial"
    with partial_pixels.open("wb") as pixels:
        for path in paths:
            array = read_rgb_array(path)
            pixels.write(np.ascontiguousarray(array).tobytes())
            size, mtime = _stat(path)
            entries[str(path.relative_to(root))] = [offset, array.shape[0], array.shape[1], size, mtime]
            offset += array.nbytes
    partial_index.write_text(json.dumps({"root": str(root.resolve()), "images": entries}))
    os.replace(partial_pixels, out / PIXELS)
    os.replace(partial_index, out / INDEX)
    return len(entries)


class PackedStore:
    """Read-only access to a pack; safe to share with DataLoader workers (the memory map opens lazily)."""

    def __init__(self, folder: Path) -> None:
        if not (folder / INDEX).is_file() or not (folder / PIXELS).is_file():
            raise DataError(f"{folder}: not a packed store (no {INDEX} / {PIXELS}); create it with "
                            "`sr-iqa data pack ROOT --out PACK`")
        index = json.loads((folder / INDEX).read_text())
        self.folder = folder
        self.root = Path(index["root"])
        self.images = {name: PackedImage(*values) for name, values in index["images"].items()}
        self._pixels: np.memmap | None = None

    def _entry(self, path: Path) -> PackedImage:
        try:
            name = str(path.resolve().relative_to(self.root))
        except ValueError:
            raise DataError(f"{path} is outside the packed root {self.root}; pack that data set") from None
        entry = self.images.get(name)
        if entry is None:
            raise DataError(f"{path} is not in the pack {self.folder}; run `sr-iqa data pack` again")
        return entry

    def stale(self) -> list[str]:
        """One line per packed image whose source file is missing or changed since packing."""
        problems = []
        for name, entry in self.images.items():
            source = self.root / name
            if not source.is_file():
                problems.append(f"{source}: packed but the file is gone")
            elif _stat(source) != (entry.source_size, entry.source_mtime_ns):
                problems.append(f"{source}: changed after packing; run `sr-iqa data pack` again")
        return problems

    def shape(self, path: Path) -> tuple[int, int]:
        entry = self._entry(path)
        return entry.height, entry.width

    def crop(self, path: Path, top: int, left: int, size: int) -> np.ndarray:
        """The ``size`` x ``size`` crop at (top, left), HxWx3 uint8; only its rows are read."""
        entry = self._entry(path)
        if self._pixels is None:
            self._pixels = np.memmap(self.folder / PIXELS, dtype=np.uint8, mode="r")
        image = self._pixels[entry.offset: entry.offset + entry.height * entry.width * 3]
        image = image.reshape(entry.height, entry.width, 3)
        return np.array(image[top: top + size, left: left + size])

    def __getstate__(self) -> dict:  # a memory map is not pickled to workers; each opens its own
        return {**self.__dict__, "_pixels": None}
