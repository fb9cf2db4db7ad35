"""The LoRA adapter's strength at inference (issue 30, point 1): 0 is the stage-1 network, 1 the adapter as trained,
and in between the merged weights are the base plus that fraction of the adapter's delta."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from generator_files import RRDB, generator_with_adapter

from sr_iqa.models.weight_files import load_upscaler


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    base, adapter = generator_with_adapter(tmp_path, RRDB, with_adapter=True)
    return base, adapter


def _weights(base: Path, adapter: Path | None, strength: float = 1.0) -> dict[str, torch.Tensor]:
    network, _ = load_upscaler(base, adapter, strength=strength)
    return network.state_dict()


def test_strength_zero_is_the_base_network_and_one_the_merged_adapter(files):
    base, adapter = files
    lr = torch.rand(1, 3, 12, 12)
    outputs = {}
    for name, (file, strength) in {"base": (None, 1.0), "zero": (adapter, 0.0), "one": (adapter, 1.0),
                                   "default": (adapter, 1.0)}.items():
        network, _ = load_upscaler(base, file, strength=strength)
        with torch.no_grad():
            outputs[name] = network.eval()(lr)
    assert torch.equal(outputs["zero"], outputs["base"])  # exactly: W + 0
    assert torch.equal(outputs["one"], outputs["default"]) and not torch.equal(outputs["one"], outputs["base"])


@pytest.mark.parametrize("strength", [0.25, 0.5, 2.0])
def test_merged_weights_are_the_base_plus_strength_times_the_adapters_delta(files, strength: float):
    base, adapter = files
    w0, w1, ws = _weights(base, None), _weights(base, adapter), _weights(base, adapter, strength)
    changed = [name for name in w0 if not torch.equal(w0[name], w1[name])]
    assert changed and all(".conv1." in name or ".conv2." in name for name in changed)  # the adapted layers only
    for name in w0:
        torch.testing.assert_close(ws[name], w0[name] + strength * (w1[name] - w0[name]), rtol=0, atol=1e-6)


def test_eval_sweeps_strengths_as_rows_and_infer_export_take_one(tmp_path: Path, files, demo_set):
    base, adapter = files
    out = tmp_path / "eval"
    result = run_cli("eval", "--dataset", str(demo_set.test_images.parent), "--checkpoint", str(base), "--adapter",
                     str(adapter), "--name", "FT", "--lora-strength", "1", "0", "0.5", "--metrics", "psnr",
                     "niqe", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with (out / "summary.csv").open() as handle:
        rows = [row["method"] for row in csv.DictReader(handle)]
    assert rows[:3] == ["FT (LoRA x1)", "FT (LoRA x0)", "FT (LoRA x0.5)"]
    # The ablation's table and plot read those rows; the plot joins them into the adapter's curve, weakest first.
    from sr_iqa.ablation.aggregate import aggregate, strength_curves
    from sr_iqa.ablation.plan import AblationRow

    record = aggregate([AblationRow(row, 0, out) for row in rows[:3]], tmp_path / "ablation", "niqe",
                       str(demo_set.root), 1)
    assert strength_curves(record["rows"]) == {"FT": [(0.0, "FT (LoRA x0)"), (0.5, "FT (LoRA x0.5)"),
                                                      (1.0, "FT (LoRA x1)")]}
    assert (tmp_path / "ablation" / "perception_distortion.png").stat().st_size > 0
    merged = tmp_path / "half.safetensors"
    assert run_cli("export", "--checkpoint", str(base), "--adapter", str(adapter), "--merge", "--lora-strength",
                   "0.5", "--out", str(merged)).returncode == 0
    assert all(torch.equal(_weights(merged, None)[k], v) for k, v in _weights(base, adapter, 0.5).items())
    loud = run_cli("infer", "--checkpoint", str(base), "--adapter", str(adapter), "--lora-strength", "1.5",
                   "--input", str(demo_set.test_lr), "--output", str(tmp_path / "sr"))
    assert loud.returncode == 0 and "LoRA strength 1.5 extrapolates beyond the adapter as trained" in loud.stderr


@pytest.mark.parametrize(("arguments", "words"), [
    (["--lora-strength", "-0.5"], "argument --lora-strength: must be a number from 0 to 10"),
    (["--lora-strength", "nan"], "argument --lora-strength: must be a number from 0 to 10"),
])
def test_a_bad_strength_is_one_line(tmp_path: Path, files, arguments: list[str], words: str):
    base, adapter = files
    result = run_cli("export", "--checkpoint", str(base), "--adapter", str(adapter), "--merge", *arguments,
                     "--out", str(tmp_path / "x.safetensors"))
    assert result.returncode == 2 and words in result.stderr


def test_a_strength_without_an_adapter_is_refused(tmp_path: Path, files):
    base, _ = files
    result = run_cli("export", "--checkpoint", str(base), "--lora-strength", "0.5", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "--lora-strength scales an adapter: pass --adapter FILE too" in result.stderr
