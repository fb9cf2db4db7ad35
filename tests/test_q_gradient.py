"""Every Q term of stage 2 must move the weights: a probe before training stops a term whose gradient with respect
to the image is zero or not finite (pyiqa's PIQE rounds its input), naming the metric, before anything is
written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import lora_stage2_options, run_cli, score_training_gts, write_options

from sr_iqa.errors import OptionsError
from sr_iqa.iqa.metrics import FrozenMetricLoss, probe_image, require_gradient


def test_piqe_rounds_its_input_so_its_gradient_is_exactly_zero():
    """The fact behind the check, measured on pyiqa's own PIQE: the probe's gradient is all zeros."""
    image = probe_image(96).requires_grad_(True)
    score = FrozenMetricLoss("piqe")(image).sum()
    gradient = torch.autograd.grad(score, image, allow_unused=True)[0] if score.requires_grad else None
    assert gradient is None or not gradient.abs().max() > 0
    with pytest.raises(OptionsError, match=r"piqe cannot be a Q term: its gradient .* is (zero|none) "
                                           r"\(pyiqa's PIQE rounds its input"):
        require_gradient(FrozenMetricLoss("piqe"), "piqe", 96, "train.iqa_opt.metric")


def test_niqe_passes_the_probe_with_a_finite_nonzero_gradient():
    image = probe_image(96).requires_grad_(True)
    gradient = torch.autograd.grad(FrozenMetricLoss("niqe")(image).sum(), image)[0]
    assert torch.isfinite(gradient).all() and gradient.abs().max() > 0
    require_gradient(FrozenMetricLoss("niqe"), "niqe", 96, "train.iqa_opt.metric")  # no stop


def test_the_probe_is_a_natural_crop_of_the_size_asked():
    image = probe_image(128)
    assert image.shape == (1, 3, 128, 128) and image.min() >= 0 and image.max() <= 1
    assert image.std() > 0.05  # textured, not flat (NIQE cannot score a flat crop)


def test_stage2_with_q_piqe_stops_in_one_line_before_writing(demo_set, tmp_path: Path):
    options = lora_stage2_options(demo_set, tmp_path, iqa_opt={"metric": "piqe", "loss_weight": 0.1})
    result = run_cli("train", "-opt", str(write_options(tmp_path / "ft.yml", options)))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("sr-iqa train: error:")]
    assert len(errors) == 1 and "train.iqa_opt.metric: piqe cannot be a Q term" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "experiments").exists()


def test_a_two_metric_q_with_piqe_names_piqe(demo_set, tmp_path: Path):
    cache = score_training_gts(demo_set, tmp_path / "scores.db", "niqe", "piqe")
    options = lora_stage2_options(demo_set, tmp_path, iqa_opt={"metrics": {"niqe": 1, "piqe": 1},
                                                              "loss_weight": 0.1, "cache": str(cache)})
    result = run_cli("train", "-opt", str(write_options(tmp_path / "ft.yml", options)))
    assert result.returncode != 0 and "train.iqa_opt.metrics: piqe cannot be a Q term" in result.stderr
    assert not (tmp_path / "experiments").exists()
