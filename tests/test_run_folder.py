"""A run folder has one writer, and a resume either applies a changed option or refuses it in one error; a
training state whose random state is missing or damaged is said, not silently resumed differently."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_options, write_options

from sr_iqa import cli, writer_lock
from sr_iqa.checked_options import load_options
from sr_iqa.errors import OptionsError
from sr_iqa.train.experiment import ExperimentFolders
from sr_iqa.train.trainer import Trainer


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory, demo_set) -> Path:
    """A tiny run of 2 iterations with its training state at 2; tests resume copies of it."""
    root = tmp_path_factory.mktemp("saved")
    options = tiny_options(demo_set, root / "experiments", total_iter=2)
    options["logger"] |= {"save_checkpoint_freq": 2}
    option_file = write_options(root / "o.yml", options)
    Trainer(load_options(option_file)).train()
    return root


def _copy(saved_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(saved_run / "experiments", tmp_path / "experiments")
    (tmp_path / "o.yml").write_text((saved_run / "o.yml").read_text().replace(str(saved_run), str(tmp_path)))
    return tmp_path / "o.yml", tmp_path / "experiments" / "tiny"


def test_changes_the_saved_state_decides_are_refused_together(saved_run: Path, tmp_path: Path):
    option_file, run = _copy(saved_run, tmp_path)
    with pytest.raises(OptionsError) as refused:
        Trainer(load_options(option_file, ["path.resume_state=auto", "train.total_iter=4", "train.optim_g.lr=0.002",
                                           "network_g.num_feat=16", "manual_seed=8"]))
    message = str(refused.value)
    assert f"resuming {run / 'training_states' / '2'}" in message
    assert "'train.optim_g.lr' 0.001 -> 0.002: the optimizer continues from its saved state" in message
    assert "'network_g.num_feat' 8 -> 16: the saved weights have the old network's shape" in message
    assert "'manual_seed' 7 -> 8" in message
    assert "total_iter" not in message  # applied, not refused
    assert not (run / "training_states" / "4").exists()


def test_other_changes_are_applied_and_said(saved_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    option_file, run = _copy(saved_run, tmp_path)
    with caplog.at_level(logging.INFO, logger="sr_iqa"):
        trainer = Trainer(load_options(option_file, ["path.resume_state=auto", "train.total_iter=3",
                                                     "logger.print_freq=1"]))
    assert "resume: changed since the saved state, applied: 'train.total_iter' 2 -> 3" in caplog.text
    assert "'logger.print_freq' 2 -> 1" in caplog.text  # tiny_options' value
    assert trainer.progress.iteration == 2
    trainer.train()
    assert "total_iter: 3" in (run / "options.yml").read_text()


def _resume_in_process(option_file: Path, *overrides: str) -> tuple[int, list[str]]:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = cli.main(["train", "-opt", str(option_file), "train.total_iter=4", *overrides])
    assert "Traceback" not in errors.getvalue()
    return code, [line for line in errors.getvalue().splitlines() if "error:" in line]


def alias_bomb(levels: int = 12) -> str:
    """YAML whose aliases expand to 9**levels nodes: "billion laughs"."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, levels):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# (what is done to the copy, path.resume_state ({run}: the run folder), the words of the one line)
RESUME_EDGES = [
    ("empty-folder", lambda run: (run.parent / "empty").mkdir(), "{run}/../empty",
     "is empty: not a training state"),
    ("the-run-folder", lambda run: None, "{run}", "is a run folder, not one of its training states; give "
                                                  "{run}/training_states/2"),
    ("a-models-folder", lambda run: None, "{run}/models", "holds no progress.json: not a training state"),
    ("no-options-file", lambda run: (run / "options.yml").unlink(), "auto",
     "options.yml: missing beside {run}/training_states; the options that the state decides"),
    ("unreadable-options", lambda run: (run / "options.yml").write_bytes(b"\xff\xfe: [unclosed"), "auto",
     "options.yml: cannot be read (not UTF-8 text (saved as UTF-16?); save it as UTF-8); the options that the state "
     "decides"),
    ("broken-yaml-options", lambda run: (run / "options.yml").write_text("a: [unclosed"), "auto",
     "options.yml: cannot be read (not valid YAML: "),
    ("alias-bomb-options", lambda run: (run / "options.yml").write_text(alias_bomb()), "auto",
     "options.yml: cannot be read (not valid YAML: YAML node expansion exceeds"),
    ("options-a-fifo", lambda run: [(run / "options.yml").unlink(), os.mkfifo(run / "options.yml")], "auto",
     "options.yml: missing beside"),
    ("iteration-below-zero", lambda run: (run / "training_states" / "2" / "progress.json").write_text(
        '{"iteration": -5, "num_processes": 1}'), "auto", "progress.json: records iteration -5, not its folder's 2"),
    ("iteration-beyond-the-folder", lambda run: (run / "training_states" / "2" / "progress.json").write_text(
        '{"iteration": 1000000000000000000000, "num_processes": 1}'), "auto",
     "progress.json: records iteration 1000000000000000000000, not its folder's 2"),
    ("processes-zero", lambda run: (run / "training_states" / "2" / "progress.json").write_text(
        '{"iteration": 2, "num_processes": 0}'), "auto", "records num_processes 0, not a number of processes"),
    ("other-world-size", lambda run: (run / "training_states" / "2" / "progress.json").write_text(
        '{"iteration": 2, "num_processes": 2}'), "auto",
     "was saved by 2 process(es), resumed with 1: step 2's samples depend on the number of processes"),
    ("no-ema-weights", lambda run: [p.unlink() for p in (run / "training_states" / "2").glob("*ema*")], "auto",
     "holds no EMA weights but train.ema_decay is"),
]


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time: a rewrite under the same name shows. The run
    lock beside the run folder is left out: taking it writes its holder, by design."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and p.suffix != ".lock"}


@pytest.mark.parametrize(("damage", "resume", "expected"), [case[1:] for case in RESUME_EDGES],
                         ids=[case[0] for case in RESUME_EDGES])
def test_each_resume_edge_case_is_its_own_line(saved_run: Path, tmp_path: Path, damage, resume: str, expected: str):
    """Each of these was "damaged, or holds objects that would run code", or (options.yml) resumed ignoring a
    changed learning rate; nothing is written."""
    option_file, run = _copy(saved_run, tmp_path)
    damage(run)
    before = _files(tmp_path)
    # A changed learning rate: what a missing or unreadable options.yml once let through without a word.
    changed_lr = [] if any(words in expected for words in ("process(es)", "EMA", "records")) \
        else ["train.optim_g.lr=0.002"]
    code, lines = _resume_in_process(option_file, f"path.resume_state={resume.format(run=run)}", *changed_lr)
    assert code == 2 and len(lines) == 1, lines
    assert expected.format(run=run) in lines[0]
    assert "would run code" not in lines[0]
    # Issue 37 item 4: nothing written, not even rewritten in place (options.yml, train.log), and the lock let go
    assert _files(tmp_path) == before
    from sr_iqa import writer_lock

    lock = writer_lock.acquire(writer_lock.run_lock_file(run), str(run), "training", "path.experiments_root")
    writer_lock.release(lock)  # free again: the refused start let go of it


def test_the_state_records_its_number_of_processes_and_batch_size_is_decided_by_it(saved_run: Path, tmp_path: Path):
    import json

    option_file, run = _copy(saved_run, tmp_path)
    assert json.loads((run / "training_states" / "2" / "progress.json").read_text()) == {"iteration": 2,
                                                                                         "num_processes": 1}
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = cli.main(["train", "-opt", str(option_file), "path.resume_state=auto", "train.total_iter=4",
                         "datasets.train.batch_size_per_gpu=1"])
    assert code == 2 and "'datasets.train.batch_size_per_gpu' 2 -> 1: step N's samples depend on the batch size" \
        in errors.getvalue()
    # Issue 37 item 3: the data position is iteration x accumulation, so 1 -> 2 would skip two micro-batches here.
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = cli.main(["train", "-opt", str(option_file), "path.resume_state=auto", "train.total_iter=4",
                         "train.gradient_accumulation_steps=2"])
    assert code == 2 and "'train.gradient_accumulation_steps' 1 -> 2: the data position is iterations x " \
        "micro-batches" in errors.getvalue()


@pytest.mark.parametrize("damage", ["missing", "damaged"])
def test_a_missing_or_damaged_random_state_is_said(saved_run: Path, tmp_path: Path, damage: str,
                                                  caplog: pytest.LogCaptureFixture):
    option_file, run = _copy(saved_run, tmp_path)
    random_state = run / "training_states" / "2" / "random_states_0.pkl"
    assert random_state.is_file()
    if damage == "missing":
        random_state.unlink()
    else:
        random_state.write_bytes(random_state.read_bytes()[:40])
    with caplog.at_level(logging.WARNING, logger="sr_iqa"):
        Trainer(load_options(option_file, ["path.resume_state=auto", "train.total_iter=3"]))
    expected = "random_states_0.pkl is missing" if damage == "missing" else "random_states_0.pkl does not load"
    assert expected in caplog.text and "not bit-for-bit an uninterrupted run" in caplog.text


def test_a_second_training_under_one_name_stops_naming_the_first(saved_run: Path, tmp_path: Path):
    """While another process holds a run's lock (as a running training does), a training under that name stops
    at its first write, naming the holder's pid, and writes nothing; once the holder is killed the lock is free
    (the operating system drops it), and a training that ends releases it too."""
    option_file, run = _copy(saved_run, tmp_path)
    lock = writer_lock.run_lock_file(tmp_path / "experiments" / "tiny")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from pathlib import Path; from sr_iqa import writer_lock\n"
        f"writer_lock.acquire(Path('{lock}'), 'the run', 'training'); print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            code = cli.main(["train", "-opt", str(option_file), "path.resume_state=auto", "train.total_iter=3"])
        lines = [line for line in errors.getvalue().splitlines() if "error:" in line]
        assert code == 2 and len(lines) == 1, errors.getvalue()
        assert f"{run} is being written by another training (pid {holder.pid} on" in lines[0]
        assert not (run / "training_states" / "3").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert Trainer(load_options(option_file, ["path.resume_state=auto", "train.total_iter=3"])).train() == \
        ExperimentFolders(run)  # free once its holder is gone
    assert (run / "training_states" / "3").is_dir()
    taker = subprocess.run([sys.executable, "-c", (  # another process takes it at once: the training released it
        f"from pathlib import Path; from sr_iqa import writer_lock; writer_lock.acquire(Path('{lock}'), 'r', 't')")],
        capture_output=True, text=True, timeout=60)
    assert taker.returncode == 0, taker.stderr


def test_a_killed_holders_forked_children_do_not_keep_its_lock(tmp_path: Path):
    """A job SIGKILLed while a forked child lives (a DataLoader or scoring worker inherits every descriptor): the
    next job takes the lock at once, the child still running (issue 26: with flock the child kept it)."""
    lock = tmp_path / ".job.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, time; from pathlib import Path; from sr_iqa import writer_lock\n"
        f"writer_lock.acquire(Path('{lock}'), 'the cache', 'scoring job')\n"
        "child = os.fork()\n"
        "if child == 0:\n    time.sleep(600)\n"
        "print(child, flush=True); time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    take = [sys.executable, "-c", "from pathlib import Path; from sr_iqa import writer_lock; "
            f"writer_lock.acquire(Path('{lock}'), 'the cache', 'scoring job')"]
    try:
        refused = subprocess.run(take, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and f"pid {holder.pid} on" in refused.stderr  # held while the job lives
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        os.kill(child, 0)  # the child lives on, holding the lock file open
        taken = subprocess.run(take, capture_output=True, text=True, timeout=60)
        assert taken.returncode == 0, taken.stderr  # free at once
    finally:
        os.kill(child, signal.SIGKILL)


def test_leftovers_of_a_killed_save_or_prune_are_removed_on_resume(saved_run: Path, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture):
    option_file, run = _copy(saved_run, tmp_path)
    states = run / "training_states"
    shutil.copytree(states / "2", states / ".partial-4")  # a save killed before its rename
    (states / ".pruned-1").mkdir()  # a prune killed during the removal
    partial_weights = run / "models" / ".net_g_4.safetensors.12345.partial"
    partial_weights.write_bytes(b"half")
    with caplog.at_level(logging.INFO, logger="sr_iqa"):
        trainer = Trainer(load_options(option_file, ["path.resume_state=auto", "train.total_iter=3"]))
    assert trainer.progress.iteration == 2  # the leftover never counted as a state
    assert not (states / ".partial-4").exists() and not (states / ".pruned-1").exists()
    assert not partial_weights.exists()
    assert f"removed {partial_weights}, left by a save or prune that was killed" in caplog.text
