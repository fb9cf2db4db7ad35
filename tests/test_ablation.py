"""The ablation runner: the grid as commands, skipping finished steps after an interruption, the table, the
plot and an HTML report that renders in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli, tiny_options, write_options
from PIL import Image

from sr_iqa.ablation.plan import load_ablation, plan
from sr_iqa.errors import OptionsError


def test_paper_ablation_files_expand_to_the_sampler_grid():
    for arch in ("RRDB", "SwinIR"):
        options = load_ablation(REPO / "options" / "ablation" / f"{arch}.yml")
        steps, methods = plan(options, REPO)
        runs = [step.run for step in steps if step.kind != "eval"]
        assert runs == [f"{arch}_{s}_s0" for s in ("rand", "upos", "sma", "smp", "amo")] + [f"{arch}_amo_s0_ft"]
        assert [m.label for m in methods] == [f"{arch} {n}" for n in ("Rand", "UPos", "SMA", "SMP", "AMO")] + [
            f"{arch} AMO+FT"]
        stage1 = [s for s in steps if s.kind == "stage1"]
        assert all(s.command[:2] == ["accelerate", "launch"] and "--multi_gpu" in s.command for s in stage1)
        assert f"options/train/{arch}_sma_x4.yml" in stage1[2].shell()  # one recipe file per sampler
        ft_eval = steps[-1]
        assert ft_eval.kind == "eval" and "--adapter" in ft_eval.command
        assert ft_eval.command[ft_eval.command.index("--adapter") + 1].endswith("lora_ema_10000.safetensors")


def test_seeds_are_the_outer_loop_so_a_stopped_grid_holds_every_arm_at_the_same_seeds():
    options = load_ablation(REPO / "options" / "ablation" / "demo.yml")
    options.seeds = [0, 1]
    steps, methods = plan(options, REPO)
    runs = [(step.run, step.kind) for step in steps if step.kind != "eval"]
    assert runs == [(f"RRDB_{sampler}_s{seed}{suffix}", kind) for seed in (0, 1) for sampler in ("upos", "amo")
                    for suffix, kind in (("", "stage1"), ("_ft", "stage2"))]
    assert [(m.label, m.seed) for m in methods][2:4] == [("RRDB UPos", 0), ("RRDB UPos+FT", 0)]


def test_the_demo_ablation_file_plans_both_stages():
    steps, methods = plan(load_ablation(REPO / "options" / "ablation" / "demo.yml"), REPO)
    expected = [("reference_0", "eval"), ("reference_1", "eval")]  # bicubic, Real-ESRGAN x4plus: not trained
    for sampler in ("upos", "amo"):
        run = f"RRDB_{sampler}_s0"
        expected += [(run, "stage1"), (run, "eval"), (f"{run}_ft", "stage2"), (f"{run}_ft", "eval")]
    assert [(s.run, s.kind) for s in steps] == expected
    assert [m.label for m in methods] == ["Bicubic", "Real-ESRGAN x4plus", "RRDB UPos", "RRDB UPos+FT", "RRDB AMO",
                                          "RRDB AMO+FT"]
    assert "--bicubic Bicubic" in " ".join(steps[0].command) and "--checkpoint" not in steps[0].command
    assert steps[2].done_when.name == "60" and steps[4].done_when.name == "40"  # per-stage overrides


def test_the_beyond_ablation_file_plans_its_rows_and_their_options_load():
    """Every run of options/ablation/beyond.yml, its overrides applied to the demo's option files, loads (the
    ranked-GT loss block, the two-metric Q with metric=null)."""
    from sr_iqa.checked_options import load_options

    steps, methods = plan(load_ablation(REPO / "options" / "ablation" / "beyond.yml"), REPO)
    labels = [m.label for m in methods]
    assert {"RRDB AMO", "RRDB AMO+rank", "RRDB AMO+rank100", "RRDB AMO+FT_NIQE+BRISQUE", "RRDB AMO+FT (LoRA x0)",
            "RRDB AMO+FT (LoRA x1.5)"} <= set(labels)
    assert len({m.seed for m in methods if m.label == "RRDB AMO+rank"}) == 3
    for step in (s for s in steps if s.kind != "eval"):
        start = step.command.index("-opt") + 1
        options = load_options(Path(step.command[start]), step.command[start + 1:])
        if step.run.startswith("RRDB_amo_rank_"):
            assert options.train.rank_opt == {"type": "RankedGTLoss", "loss_weight": 1.0, "pairs": 2}
        if step.run.endswith("_ft_niqe_brisque"):
            assert options.train.iqa_opt.metric is None
            assert options.train.iqa_opt.metrics == {"niqe": 1, "brisque_pkg": 1}


def test_a_lora_strength_sweep_is_one_eval_and_one_row_per_strength(tmp_path: Path):
    ablation = yaml.safe_load((REPO / "options" / "ablation" / "demo.yml").read_text())
    arch = ablation["archs"]["RRDB"]  # its stage2 file, written as the FT variant with a sweep
    arch["finetunes"] = {"FT": {"file": arch.pop("stage2"), "samplers": arch.pop("stage2_samplers", None),
                                "lora_strengths": [0, 0.5, 1]}}
    path = tmp_path / "sweep.yml"
    path.write_text(yaml.safe_dump(ablation))
    steps, methods = plan(load_ablation(path), REPO)
    ft_eval = steps[-1]
    assert ft_eval.command[ft_eval.command.index("--lora-strength"):][:4] == ["--lora-strength", "0", "0.5", "1"]
    assert [m.label for m in methods][-3:] == ["RRDB AMO+FT (LoRA x0)", "RRDB AMO+FT (LoRA x0.5)",
                                              "RRDB AMO+FT (LoRA x1)"]
    assert {m.evaluation for m in methods[-3:]} == {ft_eval.done_when.parent}  # one evaluation holds the rows


def test_a_misspelt_ablation_key_is_named(tmp_path: Path):
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"name": "x", "dataset": "d", "archs": {"RRDB": {"stage1": "a.yml"}},
                                    "sampelrs": ["upos"]}))
    with pytest.raises(OptionsError, match="'sampelrs'.*samplers"):
        load_ablation(path)
    path.write_text(yaml.safe_dump({"name": "x", "archs": {"RRDB": {"stage1": "a.yml"}}}))
    with pytest.raises(OptionsError, match="required key 'dataset' is missing"):
        load_ablation(path)
    path.write_text("name: [unclosed")
    with pytest.raises(OptionsError, match="not valid YAML"):
        load_ablation(path)


@pytest.fixture
def tiny_ablation(tmp_path: Path, demo_set) -> Path:
    options = tiny_options(demo_set, tmp_path / "unused")
    options["train"]["total_iter"] = 2
    options["logger"] |= {"save_checkpoint_freq": 2, "print_freq": 1}
    stage1 = write_options(tmp_path / "stage1.yml", options)
    ablation = {
        "name": "tiny_ablation", "experiments_root": str(tmp_path / "experiments"), "dataset": str(demo_set.root),
        "archs": {"RRDB": {"stage1": str(stage1)}}, "samplers": ["original", "upos"], "seeds": [0],
        "metrics": ["psnr", "niqe"], "plot_metric": "niqe", "report_images": 2,
        "results": str(tmp_path / "pages" / "RESULTS.md"), "design": "- Fixed before the runs.",
    }
    return write_options(tmp_path / "ablation.yml", ablation)


def _step_lines(stderr: str) -> list[str]:
    return re.findall(r"\[\d+/\d+\] (\S+ \S+): (done, skipped|accelerate launch)", stderr)


def test_the_runner_finishes_the_grid_and_skips_finished_steps_after_an_interruption(tiny_ablation: Path,
                                                                                      tmp_path: Path, demo_set):
    dry = run_cli("ablate", "-opt", str(tiny_ablation), "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert dry.stdout.count("accelerate launch") == 4 and dry.stdout.count("(to run)") == 4

    # The first run's steps in this process (launch.in_process, as the experiment presets run them); the rerun's
    # through `accelerate launch`, as a user's would.
    launched = tiny_ablation.read_text()
    in_process = tiny_ablation.with_name("in_process.yml")
    in_process.write_text(launched + "launch: {in_process: true}\n")
    first = run_cli("ablate", "-opt", str(in_process), timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    root = tmp_path / "experiments" / "tiny_ablation"
    table = (root / "ablation_table.md").read_text()
    assert "| RRDB Original |" in table and "| RRDB UPos |" in table and "| Gold Standard |" in table
    assert (root / "perception_distortion.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((root / "RRDB_upos_s0" / "eval" / "summary.json").read_text())
    record = json.loads((root / "ablation.json").read_text())
    assert record["rows"]["RRDB UPos"]["psnr"] == pytest.approx(summary["rows"]["RRDB UPos"]["psnr"])

    # An interruption: the UPos run lost its final state and its evaluation never happened.
    shutil.rmtree(root / "RRDB_upos_s0" / "training_states" / "2")
    (root / "RRDB_upos_s0" / "eval" / "summary.json").write_text('{"rows": {"RRDB')  # cut short (older versions)
    # The ablation's section of the results page: the table it measured, the design, the plot beside the page;
    # the authors' text outside the markers stays through a rerun, which replaces the section.
    page = tmp_path / "pages" / "RESULTS.md"
    section = page.read_text()
    assert "## Ablation `tiny_ablation`" in section and "- Fixed before the runs." in section
    assert record["table"] in section
    assert (page.parent / "results" / "tiny_ablation_perception_distortion.png").read_bytes()[:4] == b"\x89PNG"
    page.write_text(section + "\nOur reading of it.\n")
    finished = root / "RRDB_original_s0" / "eval" / "summary.json"
    before = finished.stat().st_mtime_ns
    second = run_cli("ablate", "-opt", str(tiny_ablation), timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _step_lines(second.stderr) == [
        ("RRDB_original_s0 stage1", "done, skipped"), ("RRDB_original_s0 eval", "done, skipped"),
        ("RRDB_upos_s0 stage1", "accelerate launch"), ("RRDB_upos_s0 eval", "accelerate launch")]
    assert finished.stat().st_mtime_ns == before
    assert (root / "RRDB_upos_s0" / "eval" / "summary.json").is_file()
    rewritten = page.read_text()
    assert rewritten.count("<!-- begin tiny_ablation -->") == 1 and rewritten.endswith("Our reading of it.\n")

    report = root / "report.html"
    html = report.read_text()
    assert html.count("<img") == 1 + 2  # the plot and two crop sheets, inlined
    for sheet in (root / "sheets").glob("*.png"):  # LR, the two methods, the best GT, the original; 192 px each
        assert Image.open(sheet).size[0] == 5 * 192
    assert len(list((root / "RRDB_upos_s0" / "eval" / "sr" / "LR_input").glob("*.png"))) == len(
        list((demo_set.test_images / "original").glob("*.png")))  # the LR each method saw, saved beside them
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed (make test installs Debian's chromium package)"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert 'data-images-rendered="3"' in dom
    assert dom.count('data-rendered="true"') == 3
    assert "<td>" in dom and "Gold Standard" in dom and 'id="ablation-table"' in dom


def test_stopping_the_runner_stops_its_training_too(demo_set, tmp_path: Path):
    """SIGTERM to `sr-iqa ablate` (a scheduler's stop) reaches the training it launched; the runner ends after
    it, in one line, and no training is left running to meet the rerun in the same folder."""
    options = tiny_options(demo_set, tmp_path / "unused")
    options["train"]["total_iter"] = 100000
    options["logger"] |= {"save_checkpoint_freq": 100000, "print_freq": 1}
    ablation = {"name": "stopped", "experiments_root": str(tmp_path / "experiments"), "dataset": str(demo_set.root),
                "archs": {"RRDB": {"stage1": str(write_options(tmp_path / "stage1.yml", options))}},
                "samplers": ["original"], "seeds": [0], "metrics": ["psnr"]}
    runner = subprocess.Popen([sys.executable, "-m", "sr_iqa", "ablate", "-opt",
                               str(write_options(tmp_path / "ablation.yml", ablation))],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "experiments" / "stopped" / ".RRDB_original_s0.lock"
    deadline = time.monotonic() + 180
    while not (lock.is_file() and lock.read_text().startswith("pid ")):
        assert runner.poll() is None and time.monotonic() < deadline, "the training did not start"
        time.sleep(0.2)
    training = int(lock.read_text().split()[1])
    runner.send_signal(signal.SIGTERM)
    stderr = runner.communicate(timeout=120)[1]
    assert runner.returncode == 2 and "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "interrupted (SIGTERM); the step's processes have ended" in errors[0]
    with pytest.raises(ProcessLookupError):
        os.kill(training, 0)  # the training is gone, not orphaned


def test_a_crop_sheet_without_a_fixed_lr_shows_the_lr_the_evaluation_saved(tmp_path: Path, demo_set):
    from sr_iqa.data.image_io import read_rgb_tensor, write_rgb
    from sr_iqa.evaluate.run_eval import LR_FOLDER
    from sr_iqa.report.html import write_sheets

    original = sorted((demo_set.train_images / "original").glob("*.png"))[0]  # training groups: no fixed LR
    sr = tmp_path / "sr" / "A"
    sr.mkdir(parents=True)
    shutil.copy(original, sr / original.name)
    record = {"dataset": str(demo_set.train_images), "plot_metric": "psnr", "no_reference": [], "report_images": 1,
              "sr_folders": {"A": str(sr)}, "lower_better": {"psnr": False}}
    (sheet,) = write_sheets(record, tmp_path / "without")
    assert Image.open(sheet).size[0] == 2 * 192  # A and the original: nothing to show as LR
    write_rgb(tmp_path / "sr" / LR_FOLDER / original.name, read_rgb_tensor(original)[:, ::4, ::4])
    (sheet,) = write_sheets(record, tmp_path / "with")
    assert Image.open(sheet).size[0] == 3 * 192
