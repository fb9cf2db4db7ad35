"""Perceptual losses: backbone weights through the real loading code, and one clear line when they are missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import block_network, run_cli, tiny_options, write_options

BLOCKED = {"HF_HUB_OFFLINE": "1", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
HGGT_VGG = {"type": "PerceptualLoss", "vgg_type": "vgg19", "perceptual_weight": 1.0, "style_weight": 0,
            "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}}


def test_missing_vgg_weights_stop_training_with_one_line(tmp_path: Path, demo_set, monkeypatch: pytest.MonkeyPatch):
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["train"]["perceptual_opt"] = HGGT_VGG
    block_network(monkeypatch, tmp_path / "torch")
    result = run_cli("train", "-opt", str(write_options(tmp_path / "o.yml", options)), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train.perceptual_opt: weight file vgg19-dcbb9e9d.pth is not on disk" in result.stderr
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in result.stderr
    # The fix that works offline, both of its steps; train has no --weights-dir flag to point at.
    assert ("`sr-iqa weights install vgg19-caffe`, then train.perceptual_opt.vgg_weights: pretrained:vgg19-caffe"
            in result.stderr) and "--weights-dir" not in result.stderr
    assert not (tmp_path / "experiments" / "tiny").exists()


def test_lpips_loads_a_local_backbone_file_and_trains(tmp_path: Path, demo_set, monkeypatch: pytest.MonkeyPatch):
    """SqueezeNet weights made here (random) under torchvision's file name, found through iqa.weights_dir."""
    import torch
    import torchvision

    from sr_iqa.losses import build_perceptual_loss

    weights = tmp_path / "weights"
    weights.mkdir()
    block_network(monkeypatch, tmp_path / "torch")
    torch.save(torchvision.models.squeezenet1_1().state_dict(), weights / "squeezenet1_1-b8a52dc0.pth")
    loss = build_perceptual_loss({"type": "LPIPS", "net": "squeeze", "loss_weight": 1.0}, weights)
    torch.nn.Sequential(loss).train()
    assert not loss.lpips.training and not any(p.requires_grad for p in loss.parameters())
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32, requires_grad=True)
    assert float(loss(x, x)) == 0.0
    value = loss(y, x)
    value.backward()
    assert float(value) > 0 and y.grad.abs().sum() > 0
    assert (tmp_path / "torch" / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth").is_file()  # copied there

    options = tiny_options(demo_set, tmp_path / "experiments")
    options["train"]["perceptual_opt"] = {"type": "LPIPS", "net": "squeeze", "loss_weight": 1.0}
    options["train"]["total_iter"] = 2
    options["iqa"] = {"weights_dir": str(weights)}
    trained = run_cli("train", "-opt", str(write_options(tmp_path / "o.yml", options)))
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (tmp_path / "experiments" / "tiny" / "models" / "net_g_2.safetensors").is_file()


def test_hggt_perceptual_block_passes_option_validation(tmp_path: Path, demo_set):
    from sr_iqa.checked_options import load_options

    options = tiny_options(demo_set, tmp_path)
    options["train"]["perceptual_opt"] = HGGT_VGG
    assert load_options(write_options(tmp_path / "o.yml", options)).train.perceptual_opt == HGGT_VGG


def test_installed_vgg19_is_the_perceptual_backbone_without_any_download(tmp_path: Path, pretrained: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """The loss's convolutions are the installed file's tensors (not torchvision's, not random), and building it
    fetches nothing: torch's hub cache stays empty."""
    import torch

    from sr_iqa.losses import build_perceptual_loss

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    loss = build_perceptual_loss(dict(HGGT_VGG, vgg_weights="pretrained:vgg19-caffe"))
    installed = torch.load(pretrained / "vgg19_caffe_features.pth", weights_only=True)
    extractor = loss.loss.vgg.vgg_net
    assert torch.equal(extractor.conv1_1.weight, installed["features.0.weight"])
    assert torch.equal(extractor.conv5_4.bias, installed["features.34.bias"])
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32, requires_grad=True)
    assert float(loss(x, x)) == 0.0
    value = loss(y, x)
    value.backward()
    assert float(value) > 0 and y.grad.abs().sum() > 0 and not any(p.requires_grad for p in loss.parameters())
    assert not (tmp_path / "torch").exists()


@pytest.mark.parametrize(("change", "expected"), [
    ({"vgg_weights": "pretrained:vgg19-caffe", "vgg_type": "vgg16"},
     "vgg_weights is pretrained:vgg19-caffe, a VGG19, but vgg_type is vgg16"),
    ({"vgg_weights": "{tmp}/nowhere.pth"}, "train.perceptual_opt.vgg_weights: no file at {tmp}/nowhere.pth"),
    ({"vgg_weights": "{pretrained}/RealESRGAN_x4plus.pth"}, "is not a VGG19 features state dict"),
])
def test_vgg_weights_problems_are_one_line(tmp_path: Path, pretrained: Path, change: dict, expected: str):
    from sr_iqa.errors import OptionsError
    from sr_iqa.losses import build_perceptual_loss

    def filled(text: str) -> str:
        return text.format(tmp=tmp_path, pretrained=pretrained)

    with pytest.raises(OptionsError) as caught:
        build_perceptual_loss({**HGGT_VGG, **{key: filled(value) for key, value in change.items()}})
    assert filled(expected) in str(caught.value) and "\n" not in str(caught.value)
