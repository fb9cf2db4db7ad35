"""Reading and writing RGB images as float tensors in [0, 1] (pyiqa's and basicsr's convention)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from sr_iqa.atomic_files import write_with
from sr_iqa.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


WIDE_INTEGER_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit (and 32-bit) greyscale


def _to_rgb(image: Image.Image) -> np.ndarray:
    """HxWx3 uint8. 16-bit greyscale is scaled to 8 bits (``convert("RGB")`` would clip it to near-white)."""
    if image.mode in WIDE_INTEGER_MODES:
        grey = np.array(image, dtype=np.float64)
        if image.mode == "I" and grey.max(initial=0) > 65535:
            raise ValueError(f"32-bit greyscale values up to {grey.max():.0f}; save it as 8- or 16-bit")
        if image.mode != "I" or grey.max(initial=0) > 255:
            grey = grey / 257.0  # 0..65535 -> 0..255
        return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return np.array(image.convert("RGB"))


def _open_error(path: Path, error: BaseException) -> DataError:
    if isinstance(error, FileNotFoundError):
        return DataError(f"{path}: image file is missing")
    if isinstance(error, Image.DecompressionBombError):
        return DataError(f"{path}: its header claims more pixels than any image sr_iqa reads ({error}); a damaged or "
                         "hostile file: replace or remove it")
    return DataError(f"{path}: cannot decode image ({error}); replace or remove the file")


READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@contextlib.contextmanager
def _truncation_is_an_error() -> Iterator[None]:
    """PIL's process-wide ``LOAD_TRUNCATED_IMAGES`` off while sr_iqa decodes: pyiqa's AVA dataset module turns it on
    when imported (pyiqa 0.1.15 imports it with pyiqa itself), and a truncated file then decodes with grey rows
    and no word."""
    kept = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = kept


def read_rgb_array(path: Path) -> np.ndarray:
    """HxWx3 uint8. A missing, corrupt, truncated or oversized file raises DataError naming it."""
    try:
        with _truncation_is_an_error(), Image.open(path) as image:
            return _to_rgb(image)
    except READ_ERRORS as error:
        raise _open_error(path, error) from None


def read_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header alone."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except READ_ERRORS as error:
        raise _open_error(path, error) from None


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255.0)


def read_rgb_tensor(path: Path) -> torch.Tensor:
    return array_to_tensor(read_rgb_array(path))


def tensor_to_array(tensor: torch.Tensor) -> np.ndarray:
    """3xHxW float in [0, 1] -> HxWx3 uint8, rounded the way BasicSR's tensor2img rounds."""
    array = tensor.detach().clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(array)


def write_rgb(path: Path, image: np.ndarray | torch.Tensor) -> None:
    if isinstance(image, torch.Tensor):
        image = tensor_to_array(image)
    picture = Image.fromarray(image)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise DataError(f"{path}: no image format for '{path.suffix}'; use .png")
    # Whole or not at all, and a link planted at the name is replaced, never written through.
    write_with(path, lambda partial: picture.save(partial, format=image_format))


def list_images(folder: Path) -> list[Path]:
    """The images of ``folder``, sorted; a name that is not UTF-8 stops here, naming it, because the score cache,
    the logs and the tables keep names as text."""
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    for path in images:
        try:
            path.name.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"{ascii(str(path))}: the file name is not UTF-8 (shown escaped); rename it") from None
    return images
