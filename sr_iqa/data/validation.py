"""Image checks over a group index: unreadable, truncated, mismatched sizes, wrong LR size.

Training and scoring run the quick form (headers plus the end-of-file marker of PNG and
JPEG, which a truncated file lacks); ``sr-iqa data check`` also decodes every image.
Every problem is one line that starts with the file it is about.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from sr_iqa.data.groups import Group, GroupIndex
from sr_iqa.errors import DataError

_END_MARKERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}  # by the format the file holds, not its name


def _image_problem(path: Path, decode: bool) -> tuple[tuple[int, int] | None, str | None]:
    """(width, height) or a problem line."""
    try:
        with Image.open(path) as image:
            size, image_format = image.size, image.format
            if decode:
                image.load()
    except FileNotFoundError:
        return None, f"{path}: image file is missing"
    except Image.DecompressionBombError as error:
        return None, f"{path}: its header claims more pixels than any image sr_iqa reads ({error})"
    except (OSError, SyntaxError, ValueError) as error:
        return None, f"{path}: corrupt or truncated image ({error})"
    problem = _end_problem(path, image_format) or (_png_rows_problem(path, size) if decode and image_format == "PNG"
                                                   else None)
    return (size, None) if problem is None else (None, problem)


def _end_problem(path: Path, image_format: str | None) -> str | None:
    """A PNG or JPEG must end with its end-of-image marker: missing, the file was cut; followed by more bytes, it was
    damaged or has something appended."""
    marker = _END_MARKERS.get(image_format or "")
    if marker is None:
        return None
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 32))
        if handle.read().endswith(marker):
            return None
        handle.seek(0)
        data = handle.read()
    end = data.rfind(marker)
    if end < 0:
        return f"{path}: truncated {image_format} image (no end-of-image marker)"
    return (f"{path}: {len(data) - end - len(marker)} byte(s) after the {image_format} image's end (damaged, or "
            "something appended); save the image again")


def _png_rows_problem(path: Path, size: tuple[int, int]) -> str | None:
    """A PNG whose compressed data ends before its last row decodes without an error (the rest left blank)."""
    rows = png_rows_stored(path.read_bytes())
    if rows is None or rows >= size[1]:
        return None
    return f"{path}: its image data holds {rows} of its {size[1]} rows (a damaged file); save the image again"


PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def png_rows_stored(data: bytes) -> int | None:
    """How many whole rows a non-interlaced PNG's data holds (None: interlaced, or not readable here)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    position, header, compressed = 8, b"", []
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        header = body if kind == b"IHDR" else header
        if kind == b"IDAT":
            compressed.append(body)
        position += 12 + length
    if len(header) < 13 or header[12] != 0 or header[9] not in PNG_CHANNELS:
        return None
    width, bit_depth = struct.unpack(">I", header[:4])[0], header[8]
    row_bytes = 1 + (width * PNG_CHANNELS[header[9]] * bit_depth + 7) // 8  # a filter byte, then the samples
    try:
        stored = len(zlib.decompressobj().decompress(b"".join(compressed)))
    except zlib.error:
        return None  # the decoder has said what is wrong already
    return stored // row_bytes


ImageCheck = tuple[tuple[int, int] | None, str | None]  # (width, height) or a problem line


def image_paths(groups: Sequence[Group]) -> list[Path]:
    """Every GT and fixed LR image of the groups, once each, sorted."""
    return sorted({gt.path for group in groups for gt in group.gts} |
                  {group.lr_path for group in groups if group.lr_path is not None})


def checked_images(paths: Sequence[Path], decode: bool = False, known: Mapping[Path, tuple[int, int]] | None = None,
                   workers: int = 8) -> dict[Path, ImageCheck]:
    """Each image's size or problem; ``known`` sizes (images checked before and unchanged since) are not read."""
    known = known or {}
    unknown = [path for path in paths if path not in known]
    with ThreadPoolExecutor(workers) as pool:  # PIL decodes without the GIL
        results = dict(zip(unknown, pool.map(lambda p: _image_problem(p, decode), unknown), strict=True))
    return {path: (known[path], None) if path in known else results[path] for path in paths}


def check_images(groups: list[Group], scale: int, decode: bool = False, min_size: int = 0,
                 results: Mapping[Path, ImageCheck] | None = None) -> list[str]:
    """Problems of every image of every group; the fixed LR must be GT size / scale, GTs at least ``min_size``.
    ``results``: the images' checks when done already (``checked_images``)."""
    results = results if results is not None else checked_images(image_paths(groups), decode)
    problems = [problem for _, problem in results.values() if problem]
    for group in groups:
        sizes = {gt.path: results[gt.path][0] for gt in group.gts if results[gt.path][0] is not None}
        if len(set(sizes.values())) > 1:
            listing = ", ".join(f"{path.name} {w}x{h}" for path, (w, h) in sizes.items())
            problems.append(f"{group.original.path}: GTs of group {group.name} differ in size ({listing})")
        original_size = results[group.original.path][0]
        if original_size is not None and min(original_size) < min_size:
            problems.append(f"{group.original.path}: {original_size[0]}x{original_size[1]} is smaller than the "
                            f"training crop (gt_size {min_size})")
        elif original_size is not None and min(original_size) < scale:
            problems.append(f"{group.original.path}: {original_size[0]}x{original_size[1]} is smaller than the scale "
                            f"(x{scale}): its LR image would have no pixel")
        if group.lr_path is not None and original_size is not None and results[group.lr_path][0] is not None:
            lr_width, lr_height = results[group.lr_path][0]
            if (lr_width * scale, lr_height * scale) != original_size:
                problems.append(f"{group.lr_path}: LR is {lr_width}x{lr_height}, but GT {group.original.path.name} "
                                f"is {original_size[0]}x{original_size[1]} and scale is {scale}")
    return problems


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise DataError(f"{len(problems)} problem(s) in the data (run `sr-iqa data check` for a summary):\n"
                        + "\n".join(problems))


def validated(index: GroupIndex, scale: int, min_size: int = 0,
              results: Mapping[Path, ImageCheck] | None = None) -> GroupIndex:
    """The index, after the quick image checks; any problem (index or image) raises one DataError. ``results``:
    the images' checks when done already."""
    raise_problems(index.problems + check_images(index.groups, scale, min_size=min_size, results=results))
    if not index.groups:
        raise DataError("the data set has no groups" +
                        (f" (the filters dropped {len(index.dropped)})" if index.dropped else ""))
    return index
