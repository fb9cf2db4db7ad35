"""LR synthesis presets: shapes, range, 8-bit quantisation, reproducibility, and option checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_options, write_options

from sr_iqa.checked_options import load_options
from sr_iqa.data.degradations import DEGRADATION_TYPES, HGGTDegradation, RealESRGANDegradation
from sr_iqa.errors import OptionsError


def _kernels(degradation, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    samples = [degradation.sample_kernels(np.random.default_rng([seed, i])) for i in range(batch)]
    return {name: torch.stack([s[name] for s in samples]) for name in samples[0]}


@pytest.mark.parametrize("name", sorted(DEGRADATION_TYPES))
def test_shape_range_and_quantisation(name):
    degradation = DEGRADATION_TYPES[name]()
    gt = torch.rand(3, 3, 96, 96)
    torch.manual_seed(0)
    lr = degradation.apply(gt, _kernels(degradation, 3), scale=4)
    assert lr.shape == (3, 3, 24, 24)
    assert lr.min() >= 0 and lr.max() <= 1
    if name != "bicubic":
        assert torch.equal(lr, (lr * 255).round() / 255)  # stored as 8-bit, like the LR files


@pytest.mark.parametrize("name", ["hggt", "realesrgan"])
def test_reproducible_under_a_seed_and_different_across_seeds(name):
    degradation = DEGRADATION_TYPES[name]()
    gt = torch.rand(2, 3, 96, 96)
    kernels = _kernels(degradation, 2)
    outputs = []
    for seed in (5, 5, 6, 7):
        torch.manual_seed(seed)
        outputs.append(degradation.apply(gt, kernels, scale=4))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2]) or not torch.equal(outputs[0], outputs[3])


def test_hggt_kernels_have_the_documented_sizes_and_are_normalised():
    degradation = HGGTDegradation()
    assert degradation.kernel_sizes == [3, 5, 7, 9]
    kernel = degradation.sample_kernels(np.random.default_rng(3))["kernel1"]
    assert kernel.shape == (9, 9)
    assert torch.isclose(kernel.sum(), torch.tensor(1.0), atol=1e-4)


def test_realesrgan_draws_three_kernels():
    kernels = RealESRGANDegradation().sample_kernels(np.random.default_rng(1))
    assert sorted(kernels) == ["kernel1", "kernel2", "sinc_kernel"]
    assert all(k.shape == (21, 21) for k in kernels.values())


def test_degradation_keys_are_checked(tmp_path: Path, demo_set):
    options_file = write_options(tmp_path / "o.yml", tiny_options(demo_set, tmp_path))
    options = load_options(options_file, ["degradation={type: hggt, noise_range: [2, 5]}"])
    assert options.degradation == {"type": "hggt", "noise_range": [2, 5]}
    with pytest.raises(OptionsError, match="'degradation.noise_rnage'.*'noise_range'"):
        load_options(options_file, ["degradation={type: hggt, noise_rnage: [2, 5]}"])
    with pytest.raises(OptionsError, match="'degradation.sinc_prob' expects float"):
        load_options(options_file, ["degradation={type: realesrgan, sinc_prob: high}"])
    with pytest.raises(OptionsError, match="'realesrgan' degradation needs at least 76"):
        load_options(options_file, ["degradation={type: realesrgan}"])


def test_hggt_defaults_and_key_units_are_those_of_hggts_option_files(tmp_path: Path, demo_set):
    # HGGT's train_*_PosNegGT_Blind_*_x4.yml: blur_kernel_size_min 1 and blur_kernel_size_max 4 are half-widths
    # (its dataset draws sizes 2v+1), betag_range [0.1, 2.0], betap_range [0.1, 1.0].
    hggt = HGGTDegradation()
    assert (hggt.blur_kernel_size_min, hggt.blur_kernel_size_max) == (1, 4)
    assert (hggt.betag_range, hggt.betap_range) == ([0.1, 2.0], [0.1, 1.0])
    options_file = write_options(tmp_path / "o.yml", tiny_options(demo_set, tmp_path))
    options = load_options(options_file, ["degradation={type: hggt, blur_kernel_size_min: 2, blur_kernel_size_max: 3}"])
    narrow = DEGRADATION_TYPES["hggt"](**{k: v for k, v in options.degradation.items() if k != "type"})
    assert narrow.kernel_sizes == [5, 7]
    assert narrow.sample_kernels(np.random.default_rng(0))["kernel1"].shape == (7, 7)
    with pytest.raises(OptionsError, match="'degradation': blur_kernel_size_min .* are half-widths"):
        load_options(options_file, ["degradation={type: hggt, blur_kernel_size_min: 5, blur_kernel_size_max: 4}"])


def test_hggts_final_resize_uses_the_interpolation_of_the_first(monkeypatch):
    """HGGT's model draws one mode (area, bilinear or bicubic) and uses it for the random resize and the final
    resize to 1/scale."""
    import sr_iqa.data.degradations as degradations

    modes: list[str] = []
    real_interpolate = degradations.F.interpolate

    def recording(*args, mode: str = "nearest", **kwargs):
        modes.append(mode)
        return real_interpolate(*args, mode=mode, **kwargs)

    monkeypatch.setattr(degradations.F, "interpolate", recording)
    degradation = HGGTDegradation()
    gt = torch.rand(1, 3, 64, 64)
    first_modes = set()
    for seed in range(12):
        modes.clear()
        torch.manual_seed(seed)
        degradation.apply(gt, _kernels(degradation, 1, seed), scale=4)
        assert len(modes) == 2 and modes[0] == modes[1]
        first_modes.add(modes[0])
    assert len(first_modes) > 1  # the mode is drawn, not fixed
