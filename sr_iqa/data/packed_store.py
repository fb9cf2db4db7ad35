"""A packed image store: every image decoded once into raw uint8 pixels, read back crop by crop.

``sr-iqa data pack ROOT --out PACK`` writes ``PACK/pixels.u8`` (each image's HxWx3 bytes, one after
the other) and ``PACK/index.json`` (per image, relative to the images' common folder: offset, height, width, the
source file's size and mtime, and a checksum of its pixels). Reading a 256-pixel crop of a 512x512 image then
touches 256 rows of a memory map instead of inflating the whole PNG.

A pack is data a user may be handed. Opening one checks the index's shape and that its entries tile the pixel
file exactly (no gap, no overlap, no byte past the end), so a truncated file or a lying shape is one line; each
image's checksum is verified the first time a process reads it (two swapped offsets once trained on the other
image's pixels), and ``data check --pack`` verifies them all. A stale entry (the source changed after packing)
is refused naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sr_iqa.data.image_io import read_rgb_array
from sr_iqa.errors import DataError
from sr_iqa.json_text import parse_json

PIXELS = "pixels.u8"
INDEX = "index.json"
VERSION = 2  # 2: entries carry a checksum of their pixels


@dataclass(frozen=True)
class PackedImage:
    offset: int
    height: int
    width: int
    source_size: int
    source_mtime_ns: int
    checksum: str

    @property
    def nbytes(self) -> int:
        return self.height * self.width * 3


def _checksum(pixels: bytes | np.ndarray) -> str:
    return hashlib.blake2b(pixels, digest_size=16).hexdigest()


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
            data = np.ascontiguousarray(array).tobytes()
            pixels.write(data)
            size, mtime = _stat(path)
            entries[str(path.relative_to(root))] = [offset, array.shape[0], array.shape[1], size, mtime,
                                                    _checksum(data)]
            offset += array.nbytes
    partial_index.write_text(json.dumps({"version": VERSION, "root": str(root.resolve()), "images": entries}))
    os.replace(partial_pixels, out / PIXELS)
    os.replace(partial_index, out / INDEX)
    return len(entries)


class PackedStore:
    """Read-only access to a pack; safe to share with DataLoader workers (the memory map opens lazily)."""

    def __init__(self, folder: Path) -> None:
        if not (folder / INDEX).is_file() or not (folder / PIXELS).is_file():
            raise DataError(f"{folder}: not a packed store (no {INDEX} / {PIXELS}); create it with "
                            "`sr-iqa data pack ROOT --out PACK`")
        self.folder = folder
        self.root, self.images = _read_index(folder)
        self._pixels: np.memmap | None = None
        self._verified: set[str] = set()  # this process's images whose checksum matched

    def _entry(self, path: Path) -> tuple[str, PackedImage]:
        """The image's name in the index (relative to the packed root) and its entry."""
        try:
            name = str(path.resolve().relative_to(self.root))
        except ValueError:
            raise DataError(f"{path} is outside the packed root {self.root}; pack that data set") from None
        entry = self.images.get(name)
        if entry is None:
            raise DataError(f"{path} is not in the pack {self.folder}; run `sr-iqa data pack` again")
        return name, entry

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
        _, entry = self._entry(path)
        return entry.height, entry.width

    def _image(self, name: str, entry: PackedImage) -> np.ndarray:
        """The whole image's HxWx3 view, its checksum verified once per process."""
        if self._pixels is None:
            self._pixels = np.memmap(self.folder / PIXELS, dtype=np.uint8, mode="r")
        flat = self._pixels[entry.offset: entry.offset + entry.nbytes]
        if name not in self._verified:
            if _checksum(np.ascontiguousarray(flat)) != entry.checksum:
                raise _damaged(self.folder, f"the pixels of {name} do not match their checksum")
            self._verified.add(name)
        return flat.reshape(entry.height, entry.width, 3)

    def verify(self) -> list[str]:
        """One line per image whose pixels do not match their checksum (reads the whole pack)."""
        problems = []
        for name, entry in self.images.items():
            try:
                self._image(name, entry)
            except DataError as error:
                problems.append(str(error))
        return problems

    def crop(self, path: Path, top: int, left: int, size: int) -> np.ndarray:
        """The ``size`` x ``size`` crop at (top, left), HxWx3 uint8; only its rows are read (after the image's
        first read in this process, which verifies its checksum)."""
        image = self._image(*self._entry(path))  # the path resolved once per crop
        return np.array(image[top: top + size, left: left + size])

    def __getstate__(self) -> dict:  # a memory map is not pickled to workers; each opens its own
        return {**self.__dict__, "_pixels": None}


def _damaged(folder: Path, what: str) -> DataError:
    return DataError(f"{folder}: damaged packed store ({what}); run `sr-iqa data pack` again")


def _read_index(folder: Path) -> tuple[Path, dict[str, PackedImage]]:
    """The index, checked: its shape, names inside the root, and entries that tile ``pixels.u8`` exactly."""
    index_file, pixels_size = folder / INDEX, (folder / PIXELS).stat().st_size
    try:
        index = parse_json(index_file.read_bytes())
    except (ValueError, UnicodeDecodeError) as error:
        raise _damaged(folder, f"{INDEX} is not valid JSON: {error}") from None
    if not isinstance(index, dict) or not isinstance(index.get("images"), dict) or not isinstance(
            index.get("root"), str):
        raise _damaged(folder, f"{INDEX} is not a pack index")
    if index.get("version") != VERSION:
        raise DataError(f"{folder}: packed by an older sr_iqa (no pixel checksums); run `sr-iqa data pack` again")
    images: dict[str, PackedImage] = {}
    for name, values in index["images"].items():
        whole = isinstance(values, list) and len(values) == 6 and all(
            isinstance(value, int) and not isinstance(value, bool) for value in values[:5])
        if not whole or not isinstance(values[5], str) or min(values[:3]) < 0 or min(values[1:3]) < 1:
            raise _damaged(folder, f"the entry of {name!r} is not [offset, height, width, size, mtime, checksum]")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise _damaged(folder, f"the entry {name!r} is not a path below the packed root")
        images[name] = PackedImage(*values)
    end = 0
    for name, entry in sorted(images.items(), key=lambda item: item[1].offset):
        if entry.offset != end:
            raise _damaged(folder, f"the pixels of {name} start at byte {entry.offset}, expected {end} "
                          "(entries must follow one another)")
        end += entry.nbytes
    if end != pixels_size:
        raise _damaged(folder, f"{PIXELS} holds {pixels_size} bytes, its entries {end}")
    return Path(index["root"]), images
