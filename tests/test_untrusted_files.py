"""Files a user passes never run code: a pickle payload planted where sr_iqa loads training states and metric
weights is refused with one line (or never read), and the payload's command never runs."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from conftest import block_network, run_cli, tiny_options, write_options

BLOCKED = {"HF_HUB_OFFLINE": "1", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}


class Payload:
    """Unpickled without ``weights_only``, this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def _plant(path: Path, marker: Path, wrapped: object = None) -> None:
    torch.save(wrapped if wrapped is not None else {"iteration": Payload(marker)}, path)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, demo_set) -> Path:
    """A tiny run of 4 iterations, its state saved at iteration 4 only; tests work on copies of it."""
    root = tmp_path_factory.mktemp("trained")
    options = tiny_options(demo_set, root / "experiments", total_iter=4)
    options["logger"] |= {"save_checkpoint_freq": 2, "keep_checkpoints": 1}
    assert run_cli("train", "-opt", str(write_options(root / "o.yml", options))).returncode == 0
    return root


def _copy_of(trained_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(option file, run folder) of a private copy of the trained run."""
    shutil.copytree(trained_run / "experiments", tmp_path / "experiments")
    text = (trained_run / "o.yml").read_text().replace(str(trained_run), str(tmp_path))
    (tmp_path / "o.yml").write_text(text)
    return tmp_path / "o.yml", tmp_path / "experiments" / "tiny"


def test_training_state_payloads_never_run(tmp_path: Path, trained_run: Path):
    option_file, run = _copy_of(trained_run, tmp_path)
    state = run / "training_states" / "4"
    assert (state / "progress.json").is_file() and (state / "ema.safetensors").is_file()
    assert not list(state.glob("custom_checkpoint_*.pkl"))  # nothing of sr_iqa's own is pickled

    # Where Accelerate would unpickle custom objects without weights_only: no longer read at all.
    marker = tmp_path / "ran"
    _plant(state / "custom_checkpoint_0.pkl", marker)
    _plant(state / "custom_checkpoint_1.pkl", marker)
    resumed = run_cli("train", "-opt", str(option_file), "path.resume_state=auto", "train.total_iter=6")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr and "at iteration 4" in resumed.stderr
    assert not marker.exists()

    # A payload in a file Accelerate does read: refused in one line, nothing run, nothing written.
    state = state.with_name("6")
    _plant(state / "optimizer.bin", marker, {"state": {0: Payload(marker)}, "param_groups": []})
    refused = run_cli("train", "-opt", str(option_file), "path.resume_state=auto", "train.total_iter=8")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and f"{state}: damaged, or holds objects that would run code when loaded" in lines[0]
    assert not marker.exists()
    assert not (run / "training_states" / "8").exists()


def test_metric_weight_payloads_never_run_nor_reach_the_cache(tmp_path: Path, demo_set, monkeypatch):
    """BRISQUE reads its SVM file with ``torch.load(weights_only=False)`` inside pyiqa; through ``--weights-dir``
    and through ``pretrained_model_path`` a planted file is refused, a genuine one (tensors) works."""
    weights = tmp_path / "weights"
    weights.mkdir()
    marker = tmp_path / "ran"
    block_network(monkeypatch, tmp_path / "torch")
    cache_file = tmp_path / "torch" / "hub" / "pyiqa" / "brisque_svm_weights.pth"

    _plant(weights / "brisque_svm_weights.pth", marker, (Payload(marker), torch.zeros(2, 36)))
    refused = run_cli("score", "--dataset", str(demo_set.root), "--metric", "brisque", "--cache",
                      str(tmp_path / "a.db"), "--weights-dir", str(weights), "--num-workers", "0")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "metric 'brisque':" in refused.stderr and "refused" in refused.stderr
    assert str(weights / "brisque_svm_weights.pth") in refused.stderr
    assert not marker.exists() and not cache_file.exists()

    from sr_iqa.errors import WeightsUnavailableError
    from sr_iqa.iqa.metrics import create_metric

    with pytest.raises(WeightsUnavailableError, match="metric 'brisque': .* holds pickled objects other than tensors"):
        create_metric("brisque", options={"pretrained_model_path": str(weights / "brisque_svm_weights.pth")})
    assert not marker.exists()

    torch.manual_seed(0)  # a genuine file: support-vector coefficients and vectors, tensors only
    torch.save((torch.rand(8) - 0.5, torch.rand(8, 36)), weights / "brisque_svm_weights.pth")
    scored = run_cli("score", "--dataset", str(demo_set.root), "--metric", "brisque", "--cache",
                     str(tmp_path / "c.db"), "--weights-dir", str(weights), "--num-workers", "0")
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert cache_file.read_bytes() == (weights / "brisque_svm_weights.pth").read_bytes()


def _bare_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Payload(marker), protocol=2))


def _benign_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"sv": [1.0, 2.0]}, protocol=2))  # no magic number: not a checkpoint


def _object_npz(path: Path, marker: Path) -> None:
    import numpy as np

    with open(path, "wb") as handle:
        np.savez(handle, sv=np.array([Payload(marker)], dtype=object))


@pytest.mark.parametrize(("plant", "expected"), [
    (_bare_pickle, "holds pickled objects other than tensors and numbers"),
    (lambda path, marker: path.write_bytes(pickle.dumps(Payload(marker))), "is not a weight file"),
    (_benign_pickle, "is not a weight file"),
    (_object_npz, "is not a weight file"),
    (lambda path, marker: path.write_bytes(b"\x00garbage" * 10), "is not a weight file"),
], ids=["bare-pickle-payload", "bare-pickle-framed-payload", "bare-pickle-dict", "npz-object-array", "garbage"])
def test_a_weights_dir_file_of_any_kind_is_checked_before_the_shared_cache(tmp_path: Path, monkeypatch, plant,
                                                                          expected: str):
    """A bare pickle is read by ``torch.load``'s legacy reader (pyiqa: ``weights_only=False``); once copied into
    the shared cache, the next plain pyiqa call on the machine would run it. Checked for building a metric and for
    ``weights check``'s probe, which copies what it finds too."""
    import pyiqa.utils.download_util

    from sr_iqa.errors import WeightsUnavailableError
    from sr_iqa.iqa.metrics import create_metric, missing_weights

    cache = tmp_path / "pyiqa-cache"
    monkeypatch.setattr(pyiqa.utils.download_util, "DEFAULT_CACHE_DIR", str(cache))
    weights, marker = tmp_path / "weights", tmp_path / "ran"
    weights.mkdir()
    plant(weights / "brisque_svm_weights.pth", marker)
    for build in (lambda: create_metric("brisque", weights_dir=weights), lambda: missing_weights("brisque", weights)):
        with pytest.raises(WeightsUnavailableError) as refused:
            build()
        assert str(refused.value).startswith(f"metric 'brisque': {weights / 'brisque_svm_weights.pth'} {expected}")
        assert "\n" not in str(refused.value)
        assert not marker.exists() and not (cache / "brisque_svm_weights.pth").exists()


def test_states_of_older_versions_are_read_tensors_only(tmp_path: Path):
    """Before progress.json and ema.safetensors, the same data sat in Accelerate's custom_checkpoint_0/1.pkl."""
    import pytest

    from sr_iqa.errors import RunFolderError
    from sr_iqa.train.checkpoints import accelerate_view, read_ema_state, read_iteration

    torch.save({"iteration": 12}, tmp_path / "custom_checkpoint_0.pkl")
    torch.save({"n_averaged": torch.tensor(3), "module.w": torch.ones(2)}, tmp_path / "custom_checkpoint_1.pkl")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert read_iteration(tmp_path) == 12
    assert torch.equal(read_ema_state(tmp_path)["module.w"], torch.ones(2))
    with accelerate_view(tmp_path) as view:  # what Accelerate is shown: no pickles of custom objects
        assert sorted(p.name for p in view.iterdir()) == ["model.safetensors"]
    marker = tmp_path / "ran"
    _plant(tmp_path / "custom_checkpoint_0.pkl", marker)
    with pytest.raises(RunFolderError, match="custom_checkpoint_0.pkl: damaged, or holds objects"):
        read_iteration(tmp_path)
    assert not marker.exists()


def test_sixteen_bit_greyscale_is_scaled_and_a_pixel_bomb_is_one_line(tmp_path: Path):
    import zlib

    import numpy as np
    import pytest
    from PIL import Image

    from sr_iqa.data.image_io import read_rgb_array, read_size
    from sr_iqa.errors import DataError

    levels = np.array([[0, 257 * 10, 65535], [257 * 128, 1000, 30000]], dtype=np.uint16)  # hand-picked values
    path = tmp_path / "grey16.png"
    Image.fromarray(levels).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # Pillow's 16-bit greyscale, which convert("RGB") clips
    rgb = read_rgb_array(path)
    expected = np.array([[0, 10, 255], [128, 4, 117]], dtype=np.uint8)  # round(v / 257)
    assert rgb.shape == (2, 3, 3) and all(np.array_equal(rgb[..., c], expected) for c in range(3))

    bomb = tmp_path / "bomb.png"
    Image.new("L", (1, 1)).save(bomb)
    data = bytearray(bomb.read_bytes())
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width and height: 100000 x 100000
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the IHDR chunk's CRC, valid again
    bomb.write_bytes(bytes(data))
    for read in (read_rgb_array, read_size):
        with pytest.raises(DataError, match="header claims more pixels than any image sr_iqa reads"):
            read(bomb)


def test_a_diverged_run_stops_in_one_line_saving_and_pruning_nothing(tmp_path: Path, trained_run: Path, demo_set):
    """A loss weight past float32 makes the loss and then the weights non-finite: the run stops at the next report,
    the good checkpoint stays, and a NaN weights file is refused by infer. (A NaN option value is refused at load.)"""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    option_file, run = _copy_of(trained_run, tmp_path)
    before = sorted(p.name for p in (run / "models").iterdir())
    diverged = run_cli("train", "-opt", str(option_file), "path.resume_state=auto", "train.total_iter=8",
                       "train.pixel_opt={type: L1Loss, loss_weight: 1e39}")  # finite, but not in float32
    assert diverged.returncode == 2 and "Traceback" not in diverged.stderr, diverged.stderr[-2000:]
    assert "training diverged at iteration 6: " in diverged.stderr
    assert "the last good checkpoint is iteration 4" in diverged.stderr
    assert sorted(p.name for p in (run / "models").iterdir()) == before  # nothing saved, nothing pruned
    assert [p.name for p in (run / "training_states").iterdir()] == ["4"]

    weights = load_file(str(run / "models" / "net_g_4.safetensors"))
    first = next(iter(weights))
    weights[first] = weights[first] * float("nan")
    broken = tmp_path / "broken.safetensors"
    with safe_open(str(run / "models" / "net_g_4.safetensors"), framework="pt") as handle:
        save_file(weights, str(broken), metadata=handle.metadata())  # the same network_g record
    refused = run_cli("infer", "--checkpoint", str(broken), "--input", str(demo_set.test_lr), "--output",
                      str(tmp_path / "out"))
    assert refused.returncode == 2 and f"{broken}: holds NaN or infinite weights (first in {first})" in refused.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
