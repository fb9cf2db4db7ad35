"""Is stage 2 gaming its metric? Two measures against the stage-1 model.

Gaming gap
    ``change(optimised Q) - mean(change(held-out metric))``, each change in percent of the stage-1
    value and signed so that positive means "better". With Q made of several metrics, the optimised
    change is the weighted mean of theirs, and the held-out metrics are the monitors outside the list.
    Honest improvement moves both together (gap near 0); gaming raises the optimised score while the
    held-out ones stay or fall (large gap).

Structured-noise score
    The RMS amplitude, in 8-bit grey levels, of the *periodic high-frequency* part of
    ``SR_ft - SR_stage1``: the change's power spectrum (Hann-windowed, grey) restricted to spatial
    frequencies above a quarter of the sampling rate, keeping only the bins that stand above 10x
    their neighbourhood's median: spectral peaks, i.e. repeating patterns such as the grids and
    stripes adversarial optimisation produces. A blur or broadband change has few such bins and scores
    near 0; a faint added checkerboard of amplitude a scores about 255 * a / sqrt(2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy.ndimage import median_filter

from sr_iqa.score_rules import oriented

HIGH_FREQUENCY = 0.25  # cycles per pixel (Nyquist is 0.5)
PEAK_FACTOR = 10.0  # a bin is a peak when its power exceeds this multiple of the local median
NEIGHBOURHOOD = 9  # bins, side of the median window


def structured_noise_score(change: torch.Tensor) -> float:
    """Periodic high-frequency RMS of a CxHxW (or HxW) difference image in [0, 1] units, in grey levels."""
    grey = change.float().mean(0) if change.dim() == 3 else change.float()
    grey = grey.cpu().numpy().astype(np.float64)
    grey = grey - grey.mean()
    height, width = grey.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.fft2(grey * window)) ** 2 / (height * width * np.mean(window ** 2))
    power = np.fft.fftshift(power)
    fy = np.fft.fftshift(np.fft.fftfreq(height))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(width))[None, :]
    high = np.hypot(fy, fx) >= HIGH_FREQUENCY
    background = median_filter(power, size=NEIGHBOURHOOD, mode="wrap")
    peaks = high & (power > PEAK_FACTOR * np.maximum(background, 1e-20))
    # Parseval: sum(power) / (H * W) is the mean square of the (windowed, renormalised) signal.
    return float(255.0 * math.sqrt(power[peaks].sum() / (height * width)))


def relative_change(new: float, reference: float, lower_better: bool) -> float:
    """Percent change from ``reference``, positive when ``new`` is better."""
    change = 100.0 * (new - reference) / max(abs(reference), 1e-12)
    return oriented(change, lower_better)


def gaming_report(results: Mapping[str, float], reference: Mapping[str, float], optimised: Mapping[str, float],
                  monitors: Sequence[str], lower_better: Mapping[str, bool]) -> dict[str, float]:
    """Changes (in %, positive = better) of each optimised metric and each monitor, their weighted mean
    (``optimised``: metric -> weight; one metric: weight 1) and the gaming gap. A monitor that is also optimised
    tells nothing about gaming: it is left out of the held-out mean."""
    report = {f"change/{name}": relative_change(results[name], reference[name], lower_better[name])
              for name in optimised}
    total = sum(optimised.values())
    report["optimised_change"] = sum(weight * report[f"change/{name}"] for name, weight in optimised.items()) / total
    held_out_names = [name for name in monitors if name not in optimised]
    held_out = [relative_change(results[name], reference[name], lower_better[name]) for name in held_out_names]
    for name, value in zip(held_out_names, held_out, strict=True):
        report[f"change/{name}"] = value
    if held_out:
        report["held_out_change"] = sum(held_out) / len(held_out)
        report["gaming_gap"] = report["optimised_change"] - report["held_out_change"]
    return report


GAMING_TOLERANCE = 1.0  # percent: changes smaller than this are validation noise, not a verdict


def is_gaming(report: Mapping[str, float], tolerance: float = GAMING_TOLERANCE) -> bool:
    """The optimised metrics improved while the held-out metrics, on average, got worse (each by more than
    ``tolerance`` percent)."""
    return report["optimised_change"] > tolerance and report.get("held_out_change", 0.0) < -tolerance
