"""``sr-iqa data build``: an HGGT-layout multi-GT set from a folder of photos.

Each photo is cut into patches as BasicSR's ``extract_subimages`` cuts HGGT's (a grid of ``stride``, plus the last
patch flush with the right and bottom edges), named ``<photo>-<left>-<top>``; each patch is the original GT of a
group and the enhancers of an option file make its candidates ``01``..``04``. A killed build resumes: a group is
complete when its original is written, and the original is written last (every file whole, by rename).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_iqa.atomic_files import check_output_folder, remove_partial_files, write_text_atomically
from sr_iqa.data.image_io import list_images, read_rgb_array, read_size, write_rgb
from sr_iqa.errors import DataError, OptionsError
from sr_iqa.file_names import is_plain_name
from sr_iqa.own_data.enhancers import EnhancerSpec, build_enhancers, read_enhancer_file
from sr_iqa.progress import progress_bar

log = logging.getLogger("sr_iqa.own_data")
BUILD_RECORD = "build.json"  # the settings a set was built with, in its images folder
ENHANCER_RECORD = "enhancer.json"  # each slot's enhancer and parameters, in the slot's folder


@dataclass(frozen=True)
class BuildSpec:
    patch_size: int = 512  # HGGT's patches
    stride: int = 512
    set_name: str = "own"  # Train/images/<set_name>
    held_out: bool = False  # a test split instead: Test/GT/<set_name>/images, as HGGT's Test-100

    def images(self, out: Path) -> Path:
        return out / "Test" / "GT" / self.set_name / "images" if self.held_out else out / "Train" / "images" / \
            self.set_name

    def labels(self, out: Path) -> Path:
        return out / "Test" / "GT" / self.set_name / "labels" if self.held_out else out / "Train" / "labels" / \
            self.set_name


def patch_starts(length: int, patch: int, stride: int) -> list[int]:
    """BasicSR's extract_subimages positions along one side: 0, stride, ... and the last patch flush with the end."""
    starts = list(range(0, length - patch + 1, stride))
    if starts and starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def patch_boxes(height: int, width: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """(left, top) of every patch of a photo, row by row."""
    return [(left, top) for top in patch_starts(height, patch, stride) for left in patch_starts(width, patch, stride)]


def group_prefix(photo: Path) -> str:
    """The start of a photo's group names: its stem with '_' as '-', since HGGT's '_' starts a candidate's slot
    (``<group>_01``): IMG_0001.jpg gives groups IMG-0001-x-y."""
    return photo.stem.replace("_", "-")


def _photos(folder: Path, spec: BuildSpec) -> list[tuple[Path, list[tuple[int, int]]]]:
    """Each photo with its patch boxes; one error for names that cannot name a group, photos too small are logged."""
    if not folder.is_dir():
        raise DataError(f"--photos {folder}: no such folder")
    photos, prefixes = [], {}
    for path in list_images(folder):
        prefix = group_prefix(path)
        if not is_plain_name(path.stem):
            raise DataError(f"{path}: its name cannot name a group; rename it (letters, digits, '-', '_', '.')")
        if prefix in prefixes:
            raise DataError(f"{path} and {prefixes[prefix]} would name the same groups ({prefix}-x-y); rename one")
        prefixes[prefix] = path
        height, width = read_size(path)
        boxes = patch_boxes(height, width, spec.patch_size, spec.stride)
        if not boxes:
            log.warning("%s: %dx%d is smaller than --patch-size %d; skipped", path, width, height, spec.patch_size)
            continue
        photos.append((path, boxes))
    if not photos:
        raise DataError(f"--photos {folder}: no photo of at least {spec.patch_size}x{spec.patch_size} pixels "
                        "(png, jpg, bmp, tif or webp); give a smaller --patch-size")
    return photos


def _record(spec: BuildSpec, enhancers: list[EnhancerSpec]) -> dict:
    return {"patch_size": spec.patch_size, "stride": spec.stride,
            "enhancers": {f"{slot:02d}": enhancer.record() for slot, enhancer in enumerate(enhancers, start=1)}}


def _start_or_resume(images: Path, record: dict) -> None:
    """Write the build record, or check that a set being resumed was built with the same settings."""
    path = images / BUILD_RECORD
    if path.is_file():
        try:
            kept = json.loads(path.read_text())
        except (ValueError, OSError):
            kept = None
        if kept != record:
            raise OptionsError(f"{images} was built with other settings ({path}); resume with the same photos, "
                               "sizes and enhancer file, or give another --out")
        return
    for slot, enhancer in record["enhancers"].items():
        write_text_atomically(images / slot / ENHANCER_RECORD, json.dumps(enhancer, indent=1))
    write_text_atomically(path, json.dumps(record, indent=1))


def build_photo_set(photos: Path, out: Path, enhancer_file: Path, spec: BuildSpec = BuildSpec()) -> tuple[int, int]:
    """Build (or resume) ``out/Train/images/<set>`` (or ``out/Test/GT/<set>/images``); returns (groups written now,
    groups already complete)."""
    if not is_plain_name(spec.set_name):
        raise OptionsError(f"--set {spec.set_name!r}: must be a plain folder name")
    check_output_folder(out, inputs=(photos,))
    if out.resolve().is_relative_to(photos.resolve()):
        raise OptionsError(f"--out {out} lies inside --photos {photos}; its patches would be read as photos")
    specs = read_enhancer_file(enhancer_file)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    functions, multiple = build_enhancers(specs, device)
    if spec.patch_size % multiple or spec.patch_size < 8 * multiple or spec.stride < 1:
        raise OptionsError(f"--patch-size {spec.patch_size}: must be a multiple of {multiple} (the enhancers' "
                           f"scale) and at least {8 * multiple}; --stride at least 1")
    images = spec.images(out)
    work = _photos(photos, spec)
    _start_or_resume(images, _record(spec, specs) | {"photos": str(photos.resolve())})
    spec.labels(out).mkdir(parents=True, exist_ok=True)
    for folder in [images / "original", *(images / f"{slot:02d}" for slot in range(1, len(functions) + 1))]:
        remove_partial_files(folder)  # what a killed build was writing
    written = kept = 0
    with progress_bar(total=sum(len(boxes) for _, boxes in work), desc="data build", unit="group") as bar:
        for path, boxes in work:
            photo: np.ndarray | None = None
            for left, top in boxes:
                group = f"{group_prefix(path)}-{left}-{top}"
                original = images / "original" / f"{group}.png"
                if original.is_file():
                    kept += 1
                else:
                    photo = read_rgb_array(path) if photo is None else photo
                    patch = photo[top:top + spec.patch_size, left:left + spec.patch_size]
                    for slot, enhance in enumerate(functions, start=1):
                        write_rgb(images / f"{slot:02d}" / f"{group}_{slot:02d}.png", enhance(patch))
                    write_rgb(original, patch)  # last: the group is complete once its original is there
                    written += 1
                bar.update(1)
    return written, kept

