"""The gaming measures: the structured-noise score on constructed changes, the gaming gap against its formula."""

from __future__ import annotations

import logging
import math

import pytest
import skimage.data
import torch
import torch.nn.functional as F

from sr_iqa.evaluate.gaming import gaming_report, is_gaming, relative_change, structured_noise_score


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return torch.from_numpy(skimage.data.astronaut()[:200, :160].copy()).permute(2, 0, 1).float() / 255


def _coordinates(photo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(photo.shape[1]), torch.arange(photo.shape[2]), indexing="ij")


def _blurred(image: torch.Tensor, size: int = 5) -> torch.Tensor:
    kernel = torch.full((3, 1, size, size), 1 / size**2)
    return F.conv2d(F.pad(image[None], [size // 2] * 4, mode="reflect"), kernel, groups=3)[0]


@pytest.mark.parametrize("amplitude", [0.005, 0.02])
def test_added_periodic_noise_scores_its_rms_in_grey_levels(photo: torch.Tensor, amplitude: float):
    y, x = _coordinates(photo)
    checkerboard = amplitude * (-1.0) ** (x + y)  # RMS = amplitude
    stripes = amplitude * torch.sin(2 * math.pi * x / 3)  # RMS = amplitude / sqrt(2)
    # The change SR_ft - SR_stage1 when fine-tuning added the pattern on top of the photo.
    assert structured_noise_score((photo + checkerboard) - photo) == pytest.approx(255 * amplitude, rel=0.05)
    assert structured_noise_score((photo + stripes) - photo) == pytest.approx(255 * amplitude / math.sqrt(2),
                                                                              rel=0.05)


def test_blur_and_broadband_noise_stay_low(photo: torch.Tensor):
    y, x = _coordinates(photo)
    periodic = structured_noise_score(0.02 * (-1.0) ** (x + y))
    blur = structured_noise_score(_blurred(photo) - photo)
    generator = torch.Generator().manual_seed(0)
    white = structured_noise_score(0.02 * torch.randn(photo.shape, generator=generator))
    assert blur < 0.05 * periodic
    assert white < 0.1 * periodic  # same amplitude, but no repeating pattern
    # and the score grows with the periodic part added on top of a blur
    assert structured_noise_score(_blurred(photo) - photo + 0.02 * (-1.0) ** (x + y)) > 10 * blur


def test_relative_change_is_positive_when_better():
    assert relative_change(12.0, 10.0, lower_better=False) == pytest.approx(20.0)
    assert relative_change(8.0, 10.0, lower_better=True) == pytest.approx(20.0)
    assert relative_change(12.0, 10.0, lower_better=True) == pytest.approx(-20.0)


def test_gaming_gap_is_optimised_change_minus_mean_held_out_change():
    reference = {"niqe": 10.0, "piqe": 50.0, "musiq": 40.0}
    results = {"niqe": 8.0, "piqe": 55.0, "musiq": 38.0}  # NIQE better by 20 %, PIQE -10 %, MUSIQ -5 %
    lower = {"niqe": True, "piqe": True, "musiq": False}
    niqe, monitors = {"niqe": 1.0}, ["piqe", "musiq"]
    report = gaming_report(results, reference, niqe, monitors, lower)
    assert report["change/niqe"] == pytest.approx(20.0)
    assert report["change/piqe"] == pytest.approx(-10.0) and report["change/musiq"] == pytest.approx(-5.0)
    assert report["held_out_change"] == pytest.approx(-7.5)
    assert report["gaming_gap"] == pytest.approx(27.5)
    assert is_gaming(report)
    honest = gaming_report({"niqe": 8.0, "piqe": 45.0, "musiq": 44.0}, reference, niqe, monitors, lower)
    assert not is_gaming(honest) and honest["gaming_gap"] == pytest.approx(10.0)
    slight = gaming_report({"niqe": 9.9, "piqe": 50.2, "musiq": 39.9}, reference, niqe, monitors, lower)
    assert slight["gaming_gap"] > 0 and not is_gaming(slight)  # within the 1 % tolerance: noise


def test_with_several_optimised_metrics_the_gap_takes_their_weighted_change_and_only_outside_monitors():
    reference = {"niqe": 10.0, "piqe": 50.0, "musiq": 40.0}
    results = {"niqe": 8.0, "piqe": 55.0, "musiq": 38.0}  # NIQE better by 20 %, PIQE -10 %, MUSIQ -5 %
    lower = {"niqe": True, "piqe": True, "musiq": False}
    report = gaming_report(results, reference, {"niqe": 1.0, "piqe": 3.0}, ["piqe", "musiq"], lower)
    assert report["optimised_change"] == pytest.approx((20.0 - 3 * 10.0) / 4)  # -2.5, worked by hand
    assert report["held_out_change"] == pytest.approx(-5.0)  # piqe is optimised: only musiq is held out
    assert report["gaming_gap"] == pytest.approx(2.5)
    alone = gaming_report(results, reference, {"niqe": 1.0, "piqe": 3.0}, ["piqe"], lower)
    assert "gaming_gap" not in alone  # no monitor outside the list: no gap to report


def test_stage1_reference_warns_when_the_metric_is_gamed(demo_set, caplog: pytest.LogCaptureFixture):
    from sr_iqa.config.schema import ValDatasetOptions
    from sr_iqa.data.datasets import EvalGroupDataset
    from sr_iqa.data.sources import group_index
    from sr_iqa.evaluate.metric_set import MetricSet, bicubic_upscaler, evaluate_upscaler
    from sr_iqa.train.stage1_reference import Stage1Reference

    val_options = ValDatasetOptions(dataroot_gt=str(demo_set.test_images), dataroot_label=str(demo_set.test_labels),
                                    dataroot_lq=str(demo_set.test_lr))
    val_set = EvalGroupDataset(group_index(val_options, 4, with_lr=True), 4)
    cpu = torch.device("cpu")
    metric_set = MetricSet(["niqe", "piqe"], cpu)
    reference = Stage1Reference(lambda: bicubic_upscaler(4), val_set, metric_set, cpu)  # "stage 1" = bicubic
    stage1_results, stage1_outputs = evaluate_upscaler(bicubic_upscaler(4), val_set, metric_set, cpu)
    outputs = {}
    for name, image in stage1_outputs.items():  # the "fine-tuned" outputs: stage 1 plus a faint checkerboard
        y, x = torch.meshgrid(torch.arange(image.shape[1]), torch.arange(image.shape[2]), indexing="ij")
        outputs[name] = image + 0.01 * (-1.0) ** (x + y)

    gamed = {"niqe": stage1_results["niqe"] / 2, "piqe": stage1_results["piqe"] * 1.5}  # NIQE +50 %, PIQE -50 %
    with caplog.at_level(logging.WARNING, logger="sr_iqa.train"):
        report = reference.measures(gamed, outputs, {"niqe": 1.0}, ["piqe"])
    assert report["change/niqe"] == pytest.approx(50.0) and report["change/piqe"] == pytest.approx(-50.0)
    assert report["gaming_gap"] == pytest.approx(100.0)
    assert report["structured_noise"] == pytest.approx(255 * 0.01, rel=0.1)
    assert "may be gamed" in caplog.text

    caplog.clear()
    honest = {"niqe": stage1_results["niqe"] / 2, "piqe": stage1_results["piqe"] / 2}
    with caplog.at_level(logging.WARNING, logger="sr_iqa.train"):
        report = reference.measures(honest, stage1_outputs, {"niqe": 1.0}, ["piqe"])
    assert report["gaming_gap"] == pytest.approx(0.0, abs=1e-9) and report["structured_noise"] == 0.0
    assert "may be gamed" not in caplog.text
