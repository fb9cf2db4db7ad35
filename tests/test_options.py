"""Option files are strict: every mistake is one message naming the file, the dotted key and a fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, tiny_options, write_options

from sr_iqa.checked_options import load_options
from sr_iqa.config import options_to_yaml
from sr_iqa.config.schema import MixedPrecision
from sr_iqa.errors import OptionsError

DEMO_OPTIONS = REPO / "options" / "demo" / "train_rrdb_demo.yml"


@pytest.fixture
def options_file(tmp_path: Path, demo_set) -> Path:
    return write_options(tmp_path / "train.yml", tiny_options(demo_set, tmp_path / "experiments"))


def _error(path: Path, overrides: list[str] = ()) -> str:
    with pytest.raises(OptionsError) as caught:
        load_options(path, overrides)
    return str(caught.value)


def _replace_in_file(source: Path, target: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    return target


def test_demo_options_load_with_basicsr_conventions():
    options = load_options(DEMO_OPTIONS)
    assert options.network_g["type"] == "RRDBNet"
    assert options.network_g["scale"] == options.scale  # filled in from the top-level scale
    raw = yaml.safe_load(DEMO_OPTIONS.read_text())
    assert options.train.optim_g == raw["train"]["optim_g"]
    assert isinstance(options.train.optim_g["lr"], float)
    assert options.train.mixed_precision is MixedPrecision.auto  # bf16 on a capable GPU, fp32 here


def test_a_bare_no_for_mixed_precision_means_no(tmp_path: Path, options_file: Path):
    """YAML reads an unquoted `no` as false; accelerate's own files write 'no'. Both mean full precision."""
    text = options_file.read_text().replace("\ntrain:\n", "\ntrain:\n  mixed_precision: no\n", 1)
    bare = tmp_path / "bare_no.yml"
    bare.write_text(text)
    assert "mixed_precision: no\n" in text
    assert load_options(bare).train.mixed_precision is MixedPrecision.no
    assert load_options(options_file, ["train.mixed_precision=no"]).train.mixed_precision is MixedPrecision.no
    assert load_options(options_file).train.mixed_precision is MixedPrecision.auto


def test_scientific_notation_is_a_float_and_integral_floats_are_ints(tmp_path: Path, options_file: Path):
    text = options_file.read_text().replace("lr: 0.001", "lr: 1e-4")
    text = text.replace("total_iter: 8", "total_iter: !!float 5e3")
    path = tmp_path / "sci.yml"
    path.write_text(text)
    options = load_options(path)
    assert options.train.optim_g["lr"] == 1e-4 and isinstance(options.train.optim_g["lr"], float)
    assert options.train.total_iter == 5000 and isinstance(options.train.total_iter, int)


def test_misspelt_top_level_key_names_file_key_and_suggestion(tmp_path: Path):
    path = _replace_in_file(DEMO_OPTIONS, tmp_path / "typo.yml", "network_g:", "netwrok_g:")
    message = _error(path)
    assert str(path) in message
    assert "'netwrok_g'" in message and "'network_g'" in message


@pytest.mark.parametrize(("old", "new", "dotted", "suggestion"), [
    ("total_iter:", "totl_iter:", "train.totl_iter", "total_iter"),
    ("gt_size:", "gt_sise:", "datasets.train.gt_sise", "gt_size"),
    ("print_freq:", "print_frq:", "logger.print_frq", "print_freq"),
    ("num_feat:", "num_feats:", "network_g.num_feats", "num_feat"),
    ("vgg_weights:", "vgg_weight:", "train.perceptual_opt.vgg_weight", "vgg_weights"),
])
def test_misspelt_nested_key_gets_full_dotted_name(tmp_path: Path, old, new, dotted, suggestion):
    message = _error(_replace_in_file(DEMO_OPTIONS, tmp_path / "typo.yml", old, new))
    assert f"'{dotted}'" in message
    assert f"'{suggestion}'" in message


def test_swinir_kwarg_typo_is_caught_although_swinir_accepts_any_kwargs(tmp_path: Path, demo_set):
    options = tiny_options(demo_set, tmp_path)
    options["network_g"] = {"type": "SwinIR", "embed_dim": 12, "depths": [1], "num_heads": [2],
                            "window_sise": 4, "upsampler": "pixelshuffle"}
    message = _error(write_options(tmp_path / "swin.yml", options))
    assert "'network_g.window_sise'" in message and "'window_size'" in message


@pytest.mark.parametrize(("override", "key", "expected"), [
    ("train.total_iter=abc", "train.total_iter", "Integer"),
    ("network_g.num_feat=1.5", "network_g.num_feat", "expects int"),
    ("train.optim_g.lr=fast", "train.optim_g.lr", "expects float"),
    ("train.mixed_precision=fp32", "train.mixed_precision", "auto, no, fp16, bf16"),
    ("datasets.train=3", "datasets.train", "expects a block"),
])
def test_wrong_type_names_the_expected_type(options_file: Path, override, key, expected):
    message = _error(options_file, [override])
    assert f"'{key}'" in message
    assert expected in message


def test_unknown_arch_type_suggests_known_one(options_file: Path):
    message = _error(options_file, ["network_g.type=RRDBnet"])
    assert "'network_g.type'" in message and "'RRDBNet'" in message


def test_missing_required_key(tmp_path: Path, demo_set):
    options = tiny_options(demo_set, tmp_path)
    del options["train"]["total_iter"]
    message = _error(write_options(tmp_path / "missing.yml", options))
    assert "'train.total_iter'" in message and "missing" in message


def test_missing_required_arch_argument(tmp_path: Path, demo_set):
    options = tiny_options(demo_set, tmp_path)
    del options["network_g"]["num_in_ch"]
    assert "'network_g.num_in_ch' is required" in _error(write_options(tmp_path / "arch.yml", options))


def test_scale_mismatch_between_network_and_top_level(options_file: Path):
    message = _error(options_file, ["network_g.scale=2"])
    assert "'network_g.scale'" in message and "'scale'" in message


def test_overrides_change_values_and_typos_in_them_are_reported(options_file: Path):
    options = load_options(options_file, ["train.total_iter=20", "train.optim_g.lr=2e-4", "val.metrics=[psnr,niqe]"])
    assert options.train.total_iter == 20
    assert options.train.optim_g == {"type": "Adam", "lr": 2e-4}
    assert options.val.metrics == ["psnr", "niqe"]
    message = _error(options_file, ["trian.total_iter=3"])
    assert "command line" in message and "'trian'" in message and "'train'" in message


def test_override_of_a_whole_block_replaces_it(options_file: Path):
    options = load_options(options_file, ["train.scheduler={type: MultiStepLR, milestones: [4], gamma: 0.5}"])
    options = load_options(options_file, [
        "train.scheduler={type: MultiStepLR, milestones: [4], gamma: 0.5}",
        "train.scheduler={type: CosineAnnealingLR, T_max: 8}",
    ])
    assert options.train.scheduler == {"type": "CosineAnnealingLR", "T_max": 8}


def test_resolved_options_round_trip(tmp_path: Path, options_file: Path):
    options = load_options(options_file, ["train.total_iter=12"])
    saved = tmp_path / "resolved.yml"
    saved.write_text(options_to_yaml(options))
    assert load_options(saved) == options


def test_cli_typo_exits_nonzero_with_one_message_and_before_importing_torch(tmp_path: Path):
    path = _replace_in_file(DEMO_OPTIONS, tmp_path / "typo.yml", "network_g:", "netwrok_g:")
    code = (
        "import sys\nfrom sr_iqa.cli import main\n"
        f"code = main(['train', '-opt', {str(path)!r}, 'train.total_iter=20'])\n"
        "print('torch imported' if 'torch' in sys.modules else 'torch not imported')\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "netwrok_g" in result.stderr and "did you mean 'network_g'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout.strip() == "torch not imported"


@pytest.mark.parametrize(("override", "key", "hint"), [
    ("train.compile_mode=max-autotun", "train.compile_mode", "did you mean 'max-autotune'?"),
    ("train.compile_backend=inductr", "train.compile_backend", "did you mean 'inductor'?"),
    ("datasets.train.prefetch_factor=0", "datasets.train.prefetch_factor", "at least 1"),
])
def test_speed_options_torch_would_refuse_late_are_refused_at_load(options_file: Path, override, key, hint):
    message = _error(options_file, ["train.compile=true", override])
    assert f"'{key}'" in message and hint in message


def test_labels_that_decide_nothing_are_said(tmp_path: Path, demo_set, caplog: pytest.LogCaptureFixture):
    import logging

    path = write_options(tmp_path / "o.yml", tiny_options(demo_set, tmp_path))  # labels, default sampler
    cases = {(): "labels are loaded (datasets.train.dataroot_label), but sampler 'original' supervises every "
                 "sample with the original GT",
             ("datasets.train.positive_only=true", "sampler.type=rand"): "datasets.train.positive_only filters "
                                                                          "groups by their labels, but sampler 'rand'",
             ("sampler.type=upos",): None,
             ("datasets.train.dataroot_label=null",): None}
    for overrides, warning in cases.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sr_iqa"):
            load_options(path, list(overrides))
        if warning is None:
            assert not caplog.records, overrides
        else:
            assert warning in caplog.text and "sampler.type: upos" in caplog.text, overrides
