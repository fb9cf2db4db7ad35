"""Classical enhancements of an HxWx3 uint8 image, the candidate GTs of the demo set and of `data build`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter
from skimage import exposure
from skimage.util import img_as_float, img_as_ubyte

Enhance = Callable[[np.ndarray], np.ndarray]


def unsharp(radius: float, percent: int, threshold: int = 0) -> Enhance:
    """PIL's unsharp mask: radius in pixels, strength in percent, threshold in grey levels."""
    mask = ImageFilter.UnsharpMask(radius, percent, threshold)
    return lambda image: np.array(Image.fromarray(image).filter(mask))


def local_contrast(clip_limit: float, kernel_size: int | None = None) -> Enhance:
    """scikit-image's CLAHE (contrast-limited adaptive histogram equalisation); ``kernel_size`` None: 1/8 of each
    side, scikit-image's default."""
    def enhance(image: np.ndarray) -> np.ndarray:
        equalised = exposure.equalize_adapthist(img_as_float(image), kernel_size=kernel_size, clip_limit=clip_limit)
        return img_as_ubyte(np.clip(equalised, 0, 1))

    return enhance
