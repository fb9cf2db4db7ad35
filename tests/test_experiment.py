"""`sr-iqa experiment`: the tiny preset run end to end as a user runs it, its tables and claims checked against the
per-run evaluations by hand (mean, sample deviation and the published t quantile), the verdict rule on hand-made
differences, the stage-2 variants in the plan, and the results file keeping what is outside its section."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli

from sr_iqa.ablation.experiment_options import load_experiment
from sr_iqa.ablation.findings import verdict
from sr_iqa.ablation.intervals import SeedSummary
from sr_iqa.ablation.plan import plan
from sr_iqa.ablation.results_page import replace_section
from sr_iqa.errors import OptionsError

T_975_ONE_DEGREE = 12.706  # the published two-sided 95% t quantile for 1 degree of freedom (two seeds)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The tiny preset, run from a folder that holds only the clone's option files (as a fresh clone would)."""
    folder = tmp_path_factory.mktemp("experiment")
    (folder / "options").symlink_to(REPO / "options")
    result = run_cli("experiment", "--preset", "tiny", cwd=folder, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result.stderr


def _cells(text: str, row: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {row} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def _mean_and_half_width(cell: str) -> tuple[float, float]:
    mean, half_width = re.fullmatch(r"(-?[\d.]+) ± ([\d.]+)", cell).groups()
    return float(mean), float(half_width)


def _by_hand(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), T_975_ONE_DEGREE * statistics.stdev(values) / math.sqrt(len(values))


def _summary(root: Path, run: str) -> dict:
    return json.loads((root / run / "eval" / "summary.json").read_text())


def test_the_tiny_preset_writes_its_tables_from_the_runs(tiny_run: tuple[Path, str]):
    folder, _ = tiny_run
    root = folder / "experiments" / "experiment_tiny"
    text = (folder / "experiments" / "RESULTS_tiny.md").read_text()
    assert text.count("<!-- begin experiment_tiny -->") == 1 and "<!-- end experiment_tiny -->" in text

    # Table 1: each cell is the mean over the two seeds' evaluations, ± t * s / sqrt(n).
    for sampler, label in (("original", "RRDB Original"), ("upos", "RRDB UPos"), ("amo", "RRDB AMO")):
        niqe = [_summary(root, f"RRDB_{sampler}_s{seed}")["rows"][label]["niqe"] for seed in (0, 1)]
        psnr = [_summary(root, f"RRDB_{sampler}_s{seed}")["against_original"][label]["psnr"] for seed in (0, 1)]
        cells = _cells(text, label)
        for cell, values in ((cells[0], niqe), (cells[2], psnr)):
            measured, expected = _mean_and_half_width(cell), _by_hand(values)
            assert measured == pytest.approx(expected, abs=2e-4)

    # A claim: AMO above originals only on NIQE (lower is better), the paired per-seed differences.
    differences = [_summary(root, f"RRDB_original_s{s}")["rows"]["RRDB Original"]["niqe"]
                   - _summary(root, f"RRDB_amo_s{s}")["rows"]["RRDB AMO"]["niqe"] for s in (0, 1)]
    claim = _cells(text, "RRDB: AMO above originals only")
    mean, half_width = _mean_and_half_width(claim[2])
    assert (mean, half_width) == pytest.approx(_by_hand(differences), abs=2e-4)
    expected_verdict = ("reproduced" if mean - half_width > 0 else "not reproduced: the opposite holds"
                        if mean + half_width < 0 else "not decidable at this size (the interval contains 0)")
    assert claim[3] == expected_verdict
    assert _cells(text, "RRDB: AMO above SMP")[3] == "not run in this preset"  # SMP is not in the tiny grid

    # Stage 2: the Q gain of AMO+FT is its NIQE improvement over the AMO model of the same seed.
    gains = [_summary(root, f"RRDB_amo_s{s}")["rows"]["RRDB AMO"]["niqe"]
             - _summary(root, f"RRDB_amo_s{s}_ft")["rows"]["RRDB AMO+FT"]["niqe"] for s in (0, 1)]
    assert _mean_and_half_width(_cells(text, "RRDB AMO+FT")[1]) == pytest.approx(_by_hand(gains), abs=2e-4)
    gold = _summary(root, "RRDB_amo_s0")["rows"]["Gold Standard"]["niqe"]
    assert float(_cells(text, "Gold Standard (best GT per group)")[0]) == pytest.approx(gold, abs=1e-4)
    plot = re.search(r"!\[perception-distortion\]\((\S+)\)", text).group(1)
    assert (folder / "experiments" / plot).read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_skips_every_finished_step_and_replaces_its_section(tiny_run: tuple[Path, str]):
    folder, first = tiny_run
    results = folder / "experiments" / "RESULTS_tiny.md"
    results.write_text(results.read_text() + "\nThe authors' reading, outside the markers.\n")
    again = run_cli("experiment", "--preset", "tiny", cwd=folder, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    steps = re.findall(r"\[\d+/(\d+)\] \S+ \S+: done, skipped", again.stderr)
    assert steps and len(steps) == int(steps[0])  # every step, none run again
    assert "train -opt" not in again.stderr
    text = results.read_text()
    assert text.count("<!-- begin experiment_tiny -->") == 1
    assert text.rstrip().endswith("The authors' reading, outside the markers.")


@pytest.mark.parametrize(("mean", "half_width", "equal", "expected"), [
    (1.0, 0.5, False, "reproduced"),
    (-1.0, 0.5, False, "not reproduced: the opposite holds"),
    (0.2, 0.5, False, "not decidable at this size (the interval contains 0)"),
    (0.2, 0.5, True, "consistent (the interval contains 0)"),
    (1.0, 0.5, True, "not reproduced (they differ)"),
    (1.0, math.nan, False, "not decidable (fewer than two seeds with a score)"),
])
def test_the_verdict_reads_the_interval_of_the_paired_differences(mean, half_width, equal, expected):
    assert verdict(SeedSummary(mean, half_width, 3, 0), equal) == expected


def test_a_section_is_replaced_and_the_rest_of_the_file_kept(tmp_path: Path):
    path = tmp_path / "RESULTS.md"
    replace_section(path, "a", "first A")
    replace_section(path, "b", "only B")
    path.write_text(path.read_text() + "notes\n")
    replace_section(path, "a", "second A")
    text = path.read_text()
    assert "first A" not in text and text.index("second A") < text.index("only B") < text.index("notes")


def test_the_cpu_preset_plans_every_variant_on_its_stage_1_model():
    experiment = load_experiment(REPO / "options" / "experiment" / "cpu.yml")
    steps, methods = plan(experiment.ablation, REPO)
    bases = {m.label: m.base for m in methods if m.seed == 0 and m.base}
    assert bases == {"RRDB UPos+FT": "RRDB UPos", "RRDB UPos+FT_HP": "RRDB UPos", "RRDB UPos+FT_IG": "RRDB UPos",
                     "RRDB AMO+FT": "RRDB AMO", "RRDB AMO+full FT": "RRDB AMO"}
    assert len([s for s in steps if s.kind == "stage1"]) == 6 * 3 and len(
        [s for s in steps if s.kind == "stage2"]) == 5 * 3
    by_run = {(s.run, s.kind): s.command for s in steps}
    stage1_run = "experiments/experiment_cpu/RRDB_upos_s1"
    assert f"path.pretrain_network_d={stage1_run}" in by_run[("RRDB_upos_s1_ft_ig", "stage2")]
    assert f"path.pretrain_network_d={stage1_run}" not in by_run[("RRDB_upos_s1_ft", "stage2")]
    assert "train.perceptual_opt.perceptual_weight=2.0" in by_run[("RRDB_upos_s1_ft_hp", "stage2")]
    full = by_run[("RRDB_amo_s1_full_ft", "eval")]
    assert "lora.enabled=false" in by_run[("RRDB_amo_s1_full_ft", "stage2")] and "--adapter" not in full
    assert full[full.index("--checkpoint") + 1] == "experiments/experiment_cpu/RRDB_amo_s1_full_ft"
    lora = by_run[("RRDB_amo_s1_ft", "eval")]
    assert lora[lora.index("--checkpoint") + 1] == "experiments/experiment_cpu/RRDB_amo_s1"


def test_a_misspelt_experiment_key_and_a_metric_left_out_are_named(tmp_path: Path):
    preset = yaml.safe_load((REPO / "options" / "experiment" / "tiny.yml").read_text())
    preset["experiment"]["monitros"] = preset["experiment"].pop("monitors")
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(preset))
    with pytest.raises(OptionsError, match="'experiment.monitros'.*monitors"):
        load_experiment(path)
    preset["experiment"]["monitors"] = preset["experiment"].pop("monitros") + ["entropy"]
    path.write_text(yaml.safe_dump(preset))
    with pytest.raises(OptionsError, match="'ablation.metrics' lacks entropy"):
        load_experiment(path)
    result = run_cli("experiment", "--preset", "nonesuch", cwd=tmp_path)
    assert result.returncode == 2 and "no preset 'nonesuch'" in result.stderr
