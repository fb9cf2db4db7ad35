"""What ``sr-iqa eval`` computes without ``--metrics``: the metrics that run here, without a download.

HGGT's tables use PSNR and SSIM with LPIPS, ST-LPIPS and DISTS (full-reference) and MUSIQ, NIMA, Q-Align and TOPIQ
(no-reference); all of the latter need weight downloads. Offline, leaving them out used to leave PSNR and SSIM
alone, and so no Gold Standard (it needs a no-reference metric), with exit code 0. The defaults are now the
metrics that need no download (NIQE with basicsr's parameters, PIQE; vgg_dist and brisque_pkg when their networks
are installed) and each of HGGT's whose weights are already on disk; the others are named with what they lack.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sr_iqa.errors import MetricUnavailableError
from sr_iqa.iqa.metrics import BRISQUE_PACKAGE, VGG_DISTANCE, missing_weights

log = logging.getLogger("sr_iqa.eval")

FULL_REFERENCE_DEFAULTS = ("psnr", "ssim", "lpips", "stlpips", "dists", VGG_DISTANCE)
NO_REFERENCE_DEFAULTS = ("niqe", "piqe", BRISQUE_PACKAGE, "musiq", "nima", "qalign", "topiq_nr")


def default_metrics(weights_dir: Path | None, metric_options: Mapping[str, dict[str, Any]]
                    ) -> tuple[list[str], dict[str, str]]:
    """(the defaults that run here, in table order; {each left out: what it lacks}). Downloads nothing."""
    chosen, left_out = [], {}
    for name in (*FULL_REFERENCE_DEFAULTS, *NO_REFERENCE_DEFAULTS):
        lacking = _what_is_lacking(name, weights_dir, metric_options.get(name))
        if lacking is None:
            chosen.append(name)
        else:
            left_out[name] = lacking
    return chosen, left_out


def _what_is_lacking(name: str, weights_dir: Path | None, options: dict[str, Any] | None) -> str | None:
    try:
        missing = missing_weights(name, weights_dir, options)
    except MetricUnavailableError as error:
        return str(error)
    if not missing:
        return None
    return "; ".join(f"{file} in {folder}" for file, folder in missing)


def log_default_metrics(chosen: list[str], left_out: Mapping[str, str]) -> None:
    """One line for what runs; one for what does not and how to have it."""
    log.info("eval's default metrics that run here: %s", " ".join(chosen))
    if left_out:
        log.warning("left out of the defaults, not available offline here (put the files there or install the "
                    "package, `sr-iqa weights check NAME` to see, or pass --metrics): %s",
                    ", ".join(f"{name} ({lacking})" for name, lacking in left_out.items()))
