"""benchmarks/run.py's bookkeeping: which targets count on which machine, and rewriting only its own table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from measurement import Measurement, Target  # noqa: E402
from run import missed_targets, write_section  # noqa: E402


def _row(ratio: float, target: Target | None) -> Measurement:
    return Measurement("what", "baseline", "ours", ratio, target)


@pytest.mark.parametrize(("ratio", "target", "met"), [
    (5.0, Target("cpu", at_least=5), True), (4.99, Target("cpu", at_least=5), False),
    (1.05, Target("cpu", at_most=1.05), True), (1.051, Target("cpu", at_most=1.05), False),
])
def test_target_bounds_are_inclusive(ratio: float, target: Target, met: bool):
    assert target.met(ratio) is met


def test_only_targets_of_this_machine_kind_can_fail_the_run():
    rows = [_row(1.0, Target("cpu", at_least=3)), _row(1.0, Target("gpu", at_least=2)), _row(0.1, None),
            _row(4.0, Target("cpu", at_least=3))]
    assert missed_targets(rows, "cpu") == [rows[0]]
    assert missed_targets(rows, "gpu") == [rows[1]]
    assert "not this machine" in rows[1].verdict("cpu") and "MISSED" in rows[0].verdict("cpu")


def test_a_table_replaces_only_its_own_section(tmp_path: Path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n<!-- run.py:cpu:start -->\nold cpu\n<!-- run.py:cpu:end -->\n\n"
                       "<!-- run.py:gpu:start -->\nold gpu\n<!-- run.py:gpu:end -->\n\n## Notes by hand\nkept\n")
    write_section(results, "cpu", "new cpu table")
    text = results.read_text()
    assert "new cpu table" in text and "old cpu" not in text
    assert "old gpu" in text and text.endswith("## Notes by hand\nkept\n")
    write_section(results, "cpu", "newer")
    assert results.read_text().count("run.py:cpu:start") == 1 and "new cpu table" not in results.read_text()


def test_a_missing_section_is_appended(tmp_path: Path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nprose\n")
    write_section(results, "gpu", "gpu table")
    text = results.read_text()
    assert text.startswith("# Results\n\nprose\n") and "<!-- run.py:gpu:start -->\ngpu table\n" in text


def test_the_gpu_check_gives_the_step_figures_before_anything_else():
    """What a short loan needs first: after sanity and install, the stage-1 steps of RRDB then SwinIR, fp32 eager
    against the best options; the samplers and each option alone come after the GPU-only tests."""
    from run import gpu_benchmarks

    steps = gpu_benchmarks(quick=True, part="steps")
    assert [(kwargs["archs"], kwargs["what"]) for _, _, kwargs in steps] == [(["RRDB"], ["step"]),
                                                                            (["SwinIR"], ["step"])]
    others = gpu_benchmarks(quick=True, part="others")
    assert all(kwargs.get("what") != ["step"] for _, _, kwargs in others)
    assert gpu_benchmarks(quick=True) == steps + others


STUB_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$*" in *"--part steps"*) sleep "${STEPS_SECONDS:-0}" ;; esac
exit 0
"""


def _gpu_check(tmp_path: Path, budget: int, steps_seconds: int = 0) -> tuple[list[str], list[str]]:
    """gpu_check.sh with a stand-in interpreter that records its calls: (summary's part lines, the calls)."""
    import os
    import subprocess

    tmp_path.mkdir(parents=True, exist_ok=True)
    stub = tmp_path / "python"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PY": str(stub), "OUT": str(out), "CALLS": str(tmp_path / "calls"),
           "GPU_CHECK_SECONDS": str(budget), "GPU_CHECK_PARTS": "gpu steps tests benchmarks",
           "STEPS_SECONDS": str(steps_seconds)}
    subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh")], env=env,
                   capture_output=True, text=True, timeout=120)
    summary = [line for line in (out / "summary.txt").read_text().splitlines() if line.split(":")[0] in (
        "gpu", "install", "steps", "tests", "benchmarks", "user path", "experiment")]
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").is_file() else []
    return summary, calls


def test_the_gpu_check_runs_its_parts_in_order_and_skips_what_the_budget_cannot_hold(tmp_path: Path):
    summary, calls = _gpu_check(tmp_path / "a", budget=300)
    assert [line.split(":")[0] for line in summary] == ["gpu", "install", "steps", "tests", "benchmarks",
                                                         "user path", "experiment"]
    assert summary[1] == "install: NOT RUN (not in GPU_CHECK_PARTS)" and summary[2].startswith("steps: ok in")
    benchmark_calls = [call for call in calls if "benchmarks/run.py" in call]
    assert len(benchmark_calls) == 2 and "--part steps" in benchmark_calls[0] and "--part others" in \
        benchmark_calls[1]
    assert calls.index(benchmark_calls[0]) < next(i for i, call in enumerate(calls) if "-m pytest" in call) < \
        calls.index(benchmark_calls[1])
    assert all(f"--rows-json {tmp_path / 'a' / 'out' / 'benchmark_rows.json'}" in call for call in benchmark_calls)
    assert (tmp_path / "a" / "out" / "RESULTS.md").is_file()  # the table is written into $OUT as it grows

    # The steps take what the budget leaves; the parts after them are skipped, not started to be killed.
    summary, calls = _gpu_check(tmp_path / "b", budget=29, steps_seconds=6)  # steps start with >= 15 s left
    assert summary[2].startswith("steps: ok in")
    assert summary[3] == "tests: SKIPPED (time budget spent)" and summary[4] == "benchmarks: SKIPPED (time budget " \
                                                                                 "spent)"
    assert not any("-m pytest" in call for call in calls)


def test_the_gpu_check_stops_after_its_first_part_without_a_gpu(tmp_path: Path):
    """Issue 36: on a machine without a CUDA GPU every later part ended in its own traceback; now one line."""
    import os
    import subprocess
    import sys

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the check runs on")
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh")],
                            env={**os.environ, "PY": sys.executable, "OUT": str(out)}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    summary = (out / "summary.txt").read_text().splitlines()
    assert summary[1].startswith("gpu: FAILED") and len(summary) == 3
    assert summary[2].startswith("gpu_check.sh: stopped after its first part: no CUDA GPU")
