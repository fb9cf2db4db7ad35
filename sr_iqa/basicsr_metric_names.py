"""Names for BasicSR's PSNR and SSIM settings: a ``val.metrics`` block's function, border crop and channel as one
metric name, written by the option translation (config) and read by the metric factory (iqa)."""

from __future__ import annotations

import re

HGGT_CROP_BORDER = 4
# HGGT's evaluation setting (RGB, crop 4) keeps the names its docs and tables use.
HGGT_NAMES = {"hggt_psnr": ("psnr", HGGT_CROP_BORDER, False), "hggt_ssim": ("ssim", HGGT_CROP_BORDER, False)}
_PATTERN = re.compile(r"^bsr_(psnr|ssim)_(rgb|y)_crop(\d{1,3})$")
METRIC_KINDS = {"calculate_psnr": "psnr", "calculate_ssim": "ssim"}


def basicsr_metric_name(kind: str, crop_border: int, test_y_channel: bool) -> str:
    """``psnr``/``ssim``, crop 4, Y -> ``bsr_psnr_y_crop4``; HGGT's setting -> ``hggt_psnr``."""
    for name, setting in HGGT_NAMES.items():
        if setting == (kind, crop_border, test_y_channel):
            return name
    return f"bsr_{kind}_{'y' if test_y_channel else 'rgb'}_crop{crop_border}"


def basicsr_setting(name: str) -> tuple[str, int, bool] | None:
    """(``psnr``/``ssim``, crop border, Y channel) of such a name; None for any other metric name."""
    if name in HGGT_NAMES:
        return HGGT_NAMES[name]
    match = _PATTERN.match(name)
    return (match[1], int(match[3]), match[2] == "y") if match else None
