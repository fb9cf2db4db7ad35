"""Image checks over a group index: unreadable, truncated, mismatched sizes, wrong LR size.

Training and scoring run the quick form (headers plus the end-of-file marker of PNG and
JPEG, which a truncated file lacks); ``sr-iqa data check`` also decodes every image.
Every problem is one line that starts with the file it is about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from sr_iqa.data.groups import Group, GroupIndex
from sr_iqa.errors import DataError

_END_MARKERS = {".png": b"IEND\xaeB`\x82", ".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9"}


def _image_problem(path: Path, decode: bool) -> tuple[tuple[int, int] | None, str | None]:
    """(width, height) or a problem line."""
    try:
        with Image.open(path) as image:
            size = image.size
            if decode:
                image.load()
    except FileNotFoundError:
        return None, f"{path}: image file is missing"
    except Image.DecompressionBombError as error:
        return None, f"{path}: its header claims more pixels than any image sr_iqa reads ({error})"
    except (OSError, SyntaxError, ValueError) as error:
        return None, f"{path}: corrupt or truncated image ({error})"
    marker = _END_MARKERS.get(path.suffix.lower())
    if marker is not None:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 32))
            if marker not in handle.read():
                return None, f"{path}: truncated image (no end-of-file marker)"
    return size, None


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
