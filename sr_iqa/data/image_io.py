"""Reading and writing RGB images as float tensors in [0, 1] (pyiqa's and basicsr's convention)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sr_iqa.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_rgb_array(path: Path) -> np.ndarray:
    """HxWx3 uint8. A missing, corrupt or truncated file raises DataError naming it."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{path}: image file is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: cannot decode image ({error}); replace or remove the file") from None


def read_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header alone."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except FileNotFoundError:
        raise DataError(f"{path}: image file is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: cannot decode image ({error}); replace or remove the file") from None


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
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
