"""Files a user passes never run code: a pickle payload planted where sr_iqa loads training states and metric
weights is refused with one line (or never read), and the payload's command never runs."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from conftest import run_cli, tiny_options, write_options

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


def test_training_state_payloads_never_run(tmp_path: Path, demo_set):
    options = tiny_options(demo_set, tmp_path / "experiments", total_iter=4)
    options["logger"]["save_checkpoint_freq"] = 2
    option_file = write_options(tmp_path / "o.yml", options)
    assert run_cli("train", "-opt", str(option_file)).returncode == 0
    state = tmp_path / "experiments" / "tiny" / "training_states" / "4"
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
    assert not (tmp_path / "experiments" / "tiny" / "training_states" / "8").exists()


def test_metric_weight_payloads_never_run_nor_reach_the_cache(tmp_path: Path, demo_set):
    """BRISQUE reads its SVM file with ``torch.load(weights_only=False)`` inside pyiqa; through ``--weights-dir``
    and through ``pretrained_model_path`` a planted file is refused, a genuine one (tensors) works."""
    weights = tmp_path / "weights"
    weights.mkdir()
    marker = tmp_path / "ran"
    env = {**BLOCKED, "TORCH_HOME": str(tmp_path / "torch")}
    cache_file = tmp_path / "torch" / "hub" / "pyiqa" / "brisque_svm_weights.pth"

    _plant(weights / "brisque_svm_weights.pth", marker, (Payload(marker), torch.zeros(2, 36)))
    refused = run_cli("score", "--dataset", str(demo_set.root), "--metric", "brisque", "--cache",
                      str(tmp_path / "a.db"), "--weights-dir", str(weights), "--num-workers", "0", env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "metric 'brisque':" in refused.stderr and "refused" in refused.stderr
    assert str(weights / "brisque_svm_weights.pth") in refused.stderr
    assert not marker.exists() and not cache_file.exists()

    options = tiny_options(demo_set, tmp_path / "experiments")
    planted = str(weights / "brisque_svm_weights.pth")
    options["iqa"] = {"metric_options": {"brisque": {"pretrained_model_path": planted}}}
    refused = run_cli("score", "-opt", str(write_options(tmp_path / "o.yml", options)), "--metric", "brisque",
                      "--cache", str(tmp_path / "b.db"), "--num-workers", "0", env=env)
    assert refused.returncode == 2 and "refused" in refused.stderr and not marker.exists()

    torch.manual_seed(0)  # a genuine file: support-vector coefficients and vectors, tensors only
    torch.save((torch.rand(8) - 0.5, torch.rand(8, 36)), weights / "brisque_svm_weights.pth")
    scored = run_cli("score", "--dataset", str(demo_set.root), "--metric", "brisque", "--cache",
                     str(tmp_path / "c.db"), "--weights-dir", str(weights), "--num-workers", "0", env=env)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert cache_file.read_bytes() == (weights / "brisque_svm_weights.pth").read_bytes()


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
