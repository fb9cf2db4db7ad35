"""Errors before the wait: what a training's option file names is checked before torch, basicsr and pyiqa are
imported and before the data is indexed, and `accelerate launch -q` (the README's command) ends with that line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, run_cli, tiny_options, write_options


def _options_with_missing_paths(demo_set, tmp_path: Path) -> Path:
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["datasets"]["train"]["dataroot_label"] = str(tmp_path / "no_labels")
    options["datasets"]["val"] = {"type": "manifest", "manifest": str(tmp_path / "val.jsonl")}
    options["sampler"] = {"type": "amo", "metric": "niqe", "cache": str(tmp_path / "scores.db"), "grid_stride": 16}
    options["path"]["pretrain_network_g"] = str(tmp_path / "stage1" / "net_g.safetensors")
    return write_options(tmp_path / "train.yml", options)


def test_every_missing_path_is_named_at_once_before_torch_is_imported(demo_set, tmp_path: Path):
    option_file = _options_with_missing_paths(demo_set, tmp_path)
    probe = (f"import sys; from sr_iqa.cli import main; code = main(['train', '-opt', {str(option_file)!r}]); "
             "print(code, sorted(m for m in ('torch', 'basicsr', 'pyiqa') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.stdout.split(maxsplit=1) == ["2", "[]\n"], result.stderr[-2000:]
    source = str(option_file)
    for line in (f"'datasets.train.dataroot_label': no such folder {tmp_path / 'no_labels'}",
                 f"'datasets.val.manifest': no such manifest file (.jsonl) {tmp_path / 'val.jsonl'}",
                 f"sampler.cache: no score cache at {tmp_path / 'scores.db'}; write it with `sr-iqa score -opt <this "
                 f"option file> --metric niqe --cache {tmp_path / 'scores.db'} --grid 32:16`",
                 f"'path.pretrain_network_g': no such file or run folder {tmp_path / 'stage1' / 'net_g.safetensors'}"):
        assert f"{source}: {line}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_manifest_key_beside_the_hggt_layout_is_refused(demo_set, tmp_path: Path):
    """It was ignored without a word: the folders were evaluated, not the manifest the user named."""
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["datasets"]["val"]["manifest"] = str(tmp_path / "val.jsonl")
    result = run_cli("train", "-opt", str(write_options(tmp_path / "train.yml", options)))
    assert result.returncode == 2
    assert ("'datasets.val.manifest' is not read with type hggt; set 'datasets.val.type: manifest' or remove "
            "'manifest'") in result.stderr


def test_accelerate_launch_quiet_ends_with_the_one_line(demo_set, tmp_path: Path):
    option_file = _options_with_missing_paths(demo_set, tmp_path)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "-q", "--num_processes", "1", "--num_machines",
              "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "sr_iqa", "train", "-opt",
              str(option_file)]
    result = subprocess.run(launch, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and "CalledProcessError" not in result.stderr
    assert lines[-1].startswith(f"{option_file}: 'path.pretrain_network_g': no such file")
    assert lines[0].startswith("sr-iqa train: error:")


def _eval_probe(*arguments: str) -> subprocess.CompletedProcess:
    probe = (f"import sys; from sr_iqa.cli import main; code = main({['eval', *arguments]!r}); "
             "print(code, sorted(m for m in ('torch', 'basicsr', 'pyiqa') if m in sys.modules))")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_eval_of_a_run_without_weights_answers_before_torch_and_names_a_training_in_progress(tmp_path: Path):
    from sr_iqa import writer_lock

    run = tmp_path / "experiments" / "stage1"
    (run / "models").mkdir(parents=True)
    arguments = ("--dataset", str(tmp_path / "data"), "--checkpoint", str(run), "--out", str(tmp_path / "out"))
    result = _eval_probe(*arguments)
    assert result.stdout == "2 []\n" and "point at a finished run or at a weights file" in result.stderr
    lock = writer_lock.acquire(writer_lock.run_lock_file(run), str(run), "training")
    try:
        result = _eval_probe(*arguments)
        assert result.stdout == "2 []\n"
        assert f"no net_g_ema_*.safetensors or net_g_*.safetensors in {run / 'models'} yet: it is still training " \
               f"(pid {os.getpid()} on" in result.stderr
        (run / "models" / "net_g_ema_4.safetensors").write_bytes(b"")  # found by name; read only later
        result = _eval_probe(*arguments)
        assert f"{run} is still training (pid {os.getpid()} on" in result.stderr
        assert "evaluating net_g_ema_4.safetensors, its newest weights so far" in result.stderr
    finally:
        writer_lock.release(lock)
    assert writer_lock.holder(writer_lock.run_lock_file(run)) is None


def test_export_to_onnx_without_its_packages_answers_before_torch(tmp_path: Path):
    weights = tmp_path / "net_g.safetensors"
    weights.write_bytes(b"")  # never read: the missing package is named first
    probe = ("import sys; sys.modules['onnxscript'] = None; from sr_iqa.cli import main; "
             f"code = main(['export', '--checkpoint', {str(weights)!r}, '--format', 'onnx', '--out', "
             f"{str(tmp_path / 'g.onnx')!r}]); "
             "print(code, sorted(m for m in ('torch', 'basicsr', 'pyiqa') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.stdout == "2 []\n", result.stderr[-2000:]
    assert "(onnxscript not installed here): pip install 'sr-iqa[onnx]'" in result.stderr
