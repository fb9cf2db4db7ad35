"""`sr-iqa export` for the tools SR models are deployed with: ONNX (run by ONNX Runtime) and files that spandrel
(chaiNNer's and ComfyUI's loader) recognises, for RRDBNet and SwinIR, LoRA adapters merged. Each is compared
with sr_iqa's own torch output of the same checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from generator_files import RRDB, SWINIR, generator_with_adapter

from sr_iqa.models.weight_files import load_upscaler

ONNX_TOLERANCE = 5e-4  # of [0, 1] images: an eighth of a grey level (SwinIR's attention in ONNX Runtime's order)


def _reference(base: Path, adapter: Path | None, lr: torch.Tensor) -> torch.Tensor:
    network, _ = load_upscaler(base, adapter)
    with torch.no_grad():
        return network.eval()(lr)


@pytest.mark.parametrize(("block", "with_adapter"), [(RRDB, False), (SWINIR, True)], ids=["rrdb", "swinir_lora"])
def test_onnx_export_runs_in_onnxruntime_at_any_size(tmp_path: Path, block: dict, with_adapter: bool):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    base, adapter = generator_with_adapter(tmp_path, block, with_adapter)
    out = tmp_path / "model.onnx"
    result = run_cli("export", "--checkpoint", str(base), *(["--adapter", str(adapter), "--merge"] if adapter else []),
                     "--format", "onnx", "--out", str(out))
    assert result.returncode == 0, result.stderr
    session = onnxruntime.InferenceSession(str(out))
    assert [i.name for i in session.get_inputs()] == ["lr"]
    for shape in [(1, 3, 16, 16), (2, 3, 12, 20)]:  # the sizes the torch network takes as it is
        lr = torch.rand(shape)
        sr = session.run(None, {"lr": lr.numpy()})[0]
        assert sr.shape == (shape[0], 3, shape[2] * 4, shape[3] * 4)
        torch.testing.assert_close(torch.from_numpy(sr), _reference(base, adapter, lr), atol=ONNX_TOLERANCE, rtol=0)
    odd = session.run(None, {"lr": torch.rand(1, 3, 13, 17).numpy()})[0]  # padded inside, cropped back
    assert odd.shape == (1, 3, 52, 68)


@pytest.mark.parametrize("file_format", ["safetensors", "pth"])
@pytest.mark.parametrize(("block", "with_adapter", "architecture"),
                         [(RRDB, False, "ESRGAN"), (RRDB, True, "ESRGAN"), (SWINIR, True, "SwinIR")],
                         ids=["rrdb", "rrdb_lora", "swinir_lora"])
def test_spandrel_recognises_the_export_and_runs_it_the_same(tmp_path: Path, block: dict, with_adapter: bool,
                                                              architecture: str, file_format: str):
    spandrel = pytest.importorskip("spandrel")
    base, adapter = generator_with_adapter(tmp_path, block, with_adapter)
    out = tmp_path / f"model.{file_format}"
    result = run_cli("export", "--checkpoint", str(base), *(["--adapter", str(adapter), "--merge"] if adapter else []),
                     "--format", file_format, "--out", str(out))
    assert result.returncode == 0, result.stderr
    descriptor = spandrel.ModelLoader().load_from_file(str(out))
    assert descriptor.architecture.id == architecture and descriptor.scale == 4
    lr = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        sr = descriptor.model.eval()(lr)
    torch.testing.assert_close(sr, _reference(base, adapter, lr), atol=1e-5, rtol=0)


def test_export_says_when_spandrel_would_misread_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    base, _ = generator_with_adapter(tmp_path, RRDB | {"num_grow_ch": 4}, False)
    with caplog.at_level(logging.WARNING, logger="sr_iqa"):
        result = run_cli("export", "--checkpoint", str(base), "--out", str(tmp_path / "out.safetensors"))
    assert result.returncode == 0
    assert "spandrel's ESRGAN assumes num_grow_ch 32, this RRDBNet has 4" in result.stderr + caplog.text


def test_onnx_without_its_packages_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import sys

    base, _ = generator_with_adapter(tmp_path, RRDB, False)
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    result = run_cli("export", "--checkpoint", str(base), "--format", "onnx", "--out", str(tmp_path / "m.onnx"))
    assert result.returncode == 2
    assert "needs the onnx and onnxscript packages (onnxscript not installed here): pip install 'sr-iqa[onnx]'" \
        in result.stderr
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*partial"))


def test_a_pth_export_labels_the_weights_with_the_key_they_were_loaded_from(tmp_path: Path):
    """Issue 37 item 5: a BasicSR .pth holding params and params_ema, loaded by its params (the docs' two-line
    network_g file), was exported with those weights under params_ema, which HGGT's test files and chaiNNer then
    take for the EMA network."""
    from sr_iqa.models.generators import build_generator
    from sr_iqa.models.weight_files import export_generator

    block = dict(RRDB)
    torch.manual_seed(0)
    plain, ema = (build_generator(block, 4).state_dict() for _ in range(2))
    source = tmp_path / "basicsr.pth"
    torch.save({"params": plain, "params_ema": ema}, source)
    for param_key, expected in (("params", plain), ("params_ema", ema)):
        out = export_generator(source, None, tmp_path / f"{param_key}.pth", block, param_key, file_format="pth")
        written = torch.load(out, weights_only=True)
        assert list(written) == [param_key]
        assert all(torch.equal(written[param_key][name], expected[name]) for name in expected)
