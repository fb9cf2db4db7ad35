"""Trackers and validation sets as BasicSR users write them: several ``datasets.val*`` blocks, TensorBoard with
the options as hyper-parameters and LR|SR|GT crops, W&B from ``logger.wandb`` (the real package, offline)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import free_port, run_cli, tiny_options, write_options
from wandb_records import run_records

from sr_iqa.checked_options import load_options
from sr_iqa.train.trainer import Trainer


@pytest.fixture
def options(tmp_path: Path, demo_set) -> dict:
    options = tiny_options(demo_set, tmp_path / "experiments")
    val = options["datasets"]["val"] | {"name": "test"}
    options["datasets"]["val"] = val
    options["datasets"]["val_2"] = val | {"name": "copy"}  # BasicSR's key for a second set: the same images
    options["datasets"]["val_3"] = {"dataroot_gt": str(demo_set.train_images),  # other images, bicubic LR
                                    "dataroot_label": str(demo_set.train_labels)}
    options["val"] |= {"val_freq": 4, "metrics": ["psnr"], "save_img": True}
    return options


def _train(tmp_path: Path, options: dict, *overrides: str) -> Trainer:
    trainer = Trainer(load_options(write_options(tmp_path / "train.yml", options), list(overrides)))
    trainer.train()
    return trainer


def test_every_val_set_is_validated_and_logged_under_its_name(tmp_path: Path, options: dict):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    options["logger"]["use_tb_logger"] = True
    trainer = _train(tmp_path, options)
    run = trainer.folders.root
    events = EventAccumulator(str(run / "logs" / "tb"), size_guidance={"images": 0}).Reload()
    main, copy, other = (events.Scalars(tag) for tag in ("val/psnr", "val/copy/psnr", "val/val_3/psnr"))
    assert [s.step for s in main] == [s.step for s in copy] == [s.step for s in other] == [4, 8]
    assert [s.value for s in copy] == [s.value for s in main]  # the same images and network: the same scores
    assert [s.value for s in other] != [s.value for s in main]
    records = [json.loads(line) for line in trainer.folders.validation_log.read_text().splitlines()]
    assert [set(r["sets"]) for r in records] == [{"test", "copy", "val_3"}] * 2
    assert all(r["results"] == r["sets"]["test"] for r in records)
    # Each set's SR images: the main set's under visualization/, the others in a folder of their own name.
    test_images = {group.name for group in trainer.val_set.groups}
    assert {p.parent.name for p in (run / "visualization").glob("*/*_8.png")} == test_images
    assert {p.parent.name for p in (run / "visualization" / "copy").glob("*/*_8.png")} == test_images
    # LR | SR | GT crops of the main set's first images, three side by side.
    image_tags = events.Tags()["images"]
    assert len(image_tags) == 3 and all(tag.startswith("val_images/") for tag in image_tags)
    crops = events.Images(image_tags[0])
    assert [c.step for c in crops] == [4, 8] and crops[0].width == 3 * crops[0].height


def test_the_resolved_options_are_logged_and_sent_as_hyperparameters(tmp_path: Path, options: dict):
    options["logger"]["use_tb_logger"] = True
    options["datasets"].pop("val_2"), options["datasets"].pop("val_3")
    result = run_cli("train", "-opt", str(write_options(tmp_path / "train.yml", options)), "train.warmup_iter=3")
    assert result.returncode == 0, result.stderr
    assert "warmup_iter: 3" in result.stderr  # printed at the start
    assert "validation test:" in result.stderr  # the validation's progress bar (minutes on large images)
    run = tmp_path / "experiments" / "tiny"
    log = (run / "logs" / "train.log").read_text()
    start = log.index("options (resolved")
    assert "warmup_iter: 3" in log[start:] and log.index("iter 2/8") > start  # before the first iteration
    stored = yaml.safe_load((run / "logs" / "tb" / "hparams.yml").read_text())
    assert stored["train.warmup_iter"] == 3 and stored["train.total_iter"] == 8 and stored["name"] == "tiny"
    assert stored["val.metrics"] == "['psnr']"  # lists as text: TensorBoard's hparams take scalars only
    _assert_tensorboard_serves_one_run_with_hyperparameters(tmp_path / "experiments", "tiny/logs/tb")


def _assert_tensorboard_serves_one_run_with_hyperparameters(logdir: Path, run: str) -> None:
    """The venv's own ``tensorboard`` command, as the README starts it: one run per training (the hyper-parameters
    in the run's folder, not in a second one), its scalars and hparams served."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(logdir), "--port", str(port),
               "--host", "127.0.0.1", "--load_fast", "false"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        runs, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as answer:
                    runs = json.loads(answer.read())
                if runs:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert server.poll() is None, server.communicate()[0][-3000:]
        assert runs == [run]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=10) as answer:
            assert "train/l_g_pix" in json.loads(answer.read())[run]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugins_listing", timeout=10) as answer:
            assert json.loads(answer.read())["hparams"]["enabled"]
    finally:
        server.kill()
        server.wait()


def test_wandb_offline_holds_the_training_and_validation_scalars_and_resumes_the_same_run(
        tmp_path: Path, options: dict, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    options["datasets"].pop("val_3")
    options["logger"]["wandb"] = {"project": "sr_iqa_tests", "resume_id": None}  # BasicSR's keys
    run = _train(tmp_path, options, "train.total_iter=4").folders.root
    run_id = (run / "logs" / "wandb_run_id").read_text().strip()
    _train(tmp_path, options, "path.resume_state=auto")
    import wandb

    # W&B's core process writes the run files behind run.finish(); at a user's process exit its teardown waits for
    # them, here it is called (a loaded machine once read the resumed file before its rows were written).
    wandb.teardown()
    files = sorted((run / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert [f.name for f in files] == [f"run-{run_id}.wandb"] * 2  # resumed: the same W&B run
    history, config = run_records(files[0])
    assert [row["_step"] for row in history if "train/l_g" in row] == [2, 4]
    assert [row["_step"] for row in history if "val/psnr" in row] == [4]
    assert any("val/copy/psnr" in row for row in history)
    assert any(key.startswith("val_images/") for row in history for key in row)
    assert config["train.total_iter"] == 4 and config["logger.wandb.project"] == "sr_iqa_tests"
    resumed, _ = run_records(files[1])
    assert [row["_step"] for row in resumed if "train/l_g" in row] == [6, 8]


def test_wandb_without_the_package_is_one_line(tmp_path: Path, options: dict, monkeypatch: pytest.MonkeyPatch):
    import sys

    from sr_iqa.errors import OptionsError

    monkeypatch.setitem(sys.modules, "wandb", None)  # an import of it fails, as without the package
    options["logger"]["wandb"] = {"project": "p"}
    with pytest.raises(OptionsError, match="wandb package is not installed: pip install wandb"):
        Trainer(load_options(write_options(tmp_path / "train.yml", options)))
    assert not (tmp_path / "experiments" / "tiny").exists()
