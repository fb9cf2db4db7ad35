"""`sr-iqa experiment`: the tiny preset run end to end as a user runs it, its tables, control and claims checked
against the per-run evaluations by hand (mean, sample deviation, the published t quantile, the t distribution's
closed form at one degree of freedom, Holm's rule), the control and fine-tuning variants in the cpu plan, and the
results file keeping what is outside its section."""

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
from sr_iqa.ablation.page_sections import replace_section
from sr_iqa.ablation.plan import plan
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


def _saved_sr_niqe(run: Path, label: str) -> float:
    """Mean NIQE of a run's saved SR images (eval --save-sr), each scored whole by the metric."""
    from sr_iqa.data.image_io import read_rgb_tensor
    from sr_iqa.iqa.metrics import create_metric

    metric = create_metric("niqe")
    scores = [float(metric(read_rgb_tensor(path)[None]))
              for path in sorted((run / "eval" / "sr" / label.replace(" ", "_")).glob("*.png"))]
    assert scores
    return statistics.mean(scores)


def _summary(root: Path, run: str) -> dict:
    return json.loads((root / run / "eval" / "summary.json").read_text())


def test_the_tiny_preset_writes_its_tables_from_the_runs(tiny_run: tuple[Path, str]):
    folder, _ = tiny_run
    root = folder / "experiments" / "experiment_tiny"
    text = (folder / "experiments" / "RESULTS_tiny.md").read_text()
    assert text.count("<!-- begin experiment_tiny -->") == 1 and "<!-- end experiment_tiny -->" in text

    # Table 1: each cell is the mean over the two seeds' evaluations, ± t * s / sqrt(n); Q is NIQE of the saved
    # SR images (one 96-px tile each at this size), measured here image by image.
    for sampler, label in (("original", "RRDB Original"), ("upos", "RRDB UPos"), ("amo", "RRDB AMO")):
        niqe = [_saved_sr_niqe(root / f"RRDB_{sampler}_s{seed}", label) for seed in (0, 1)]
        psnr = [_summary(root, f"RRDB_{sampler}_s{seed}")["against_original"][label]["psnr"] for seed in (0, 1)]
        cells = _cells(text, label)
        for cell, values in ((cells[0], niqe), (cells[2], psnr)):
            measured, expected = _mean_and_half_width(cell), _by_hand(values)
            assert measured == pytest.approx(expected, abs=2e-4, rel=1e-4)  # float32 scores

    # The positive control against originals only: paired per-seed differences, its verdict from the interval.
    differences = [_saved_sr_niqe(root / f"RRDB_original_s{s}", "RRDB Original")
                   - _saved_sr_niqe(root / f"RRDB_control_s{s}", "RRDB Control") for s in (0, 1)]
    control = _cells(text, "RRDB: Positive control (UPos on labels that agree with Q) above originals only")
    mean, half_width = _mean_and_half_width(control[2])
    assert (mean, half_width) == pytest.approx(_by_hand(differences), abs=2e-4, rel=1e-4)
    assert control[3].startswith("decidable" if mean - half_width > 0.1 else "NOT decidable")

    # Primary claims: one-sided p of "difference > minimum effect" (t with 1 degree of freedom: p = 1/2 -
    # atan(t)/pi, the Cauchy distribution's tail), then Holm: the k-th smallest of m times (m - k + 1), running max.
    amo = [_saved_sr_niqe(root / f"RRDB_original_s{s}", "RRDB Original")
           - _saved_sr_niqe(root / f"RRDB_amo_s{s}", "RRDB AMO") for s in (0, 1)]
    primary = _cells(text, "RRDB: Q-guided sampling (AMO) above originals only")
    t = (statistics.mean(amo) - 0.1) / (statistics.stdev(amo) / math.sqrt(2))
    assert float(primary[3]) == pytest.approx(0.5 - math.atan(t) / math.pi, abs=1e-4)
    rows = [_cells(text, f"RRDB: {claim}") for claim in (
        "Q-guided sampling (AMO) above originals only", "The fine-tuning stage (LoRA) gains Q: AMO+FT above AMO",
        "LoRA adds less structured noise per unit of Q gain than full fine-tuning")]
    raw = sorted(float(row[3]) for row in rows if row[3])  # a claim without two finite seeds has no p
    holm = [min(1.0, (len(raw) - k) * p) for k, p in enumerate(raw)]
    holm = [max(holm[:k + 1]) for k in range(len(holm))]
    assert len(raw) >= 2 and sorted(float(row[4]) for row in rows if row[4]) == pytest.approx(holm, abs=2e-4)
    if not control[3].startswith("decidable"):  # a sampler claim is never "not reproduced" without the control
        assert primary[5].startswith("not testable with this data and Q")
    assert "RRDB: AMO above SMP" not in text  # SMP is not in the tiny grid: the fine ordering is left out

    # Stage 2: the Q gain of AMO+FT is its NIQE improvement over the AMO model of the same seed.
    gains = [_saved_sr_niqe(root / f"RRDB_amo_s{s}", "RRDB AMO")
             - _saved_sr_niqe(root / f"RRDB_amo_s{s}_ft", "RRDB AMO+FT") for s in (0, 1)]
    assert _mean_and_half_width(_cells(text, "RRDB AMO+FT")[1]) == pytest.approx(_by_hand(gains), abs=2e-4, rel=1e-4)
    gold = _summary(root, "RRDB_amo_s0")["rows"]["Gold Standard"]["niqe"]  # the tiny set's GTs are one tile each
    assert float(_cells(text, "Gold Standard (best GT per group)")[0]) == pytest.approx(gold, abs=1e-4)
    # The gate's table lists every held-out group with the rule's decision; the untrained network is a row.
    assert "3 of 3 groups kept" in text and len(re.findall(r"^\| img\d+-\d+-\d+ \|", text, re.M)) == 3
    untrained = _summary(root, "reference_0")["against_original"]["RRDB untrained"]["psnr"]
    assert float(_cells(text, "RRDB untrained")[2]) == pytest.approx(untrained, abs=1e-4)
    plot = re.search(r"!\[perception-distortion\]\((\S+)\)", text).group(1)
    assert (folder / "experiments" / plot).read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_skips_every_finished_step_and_replaces_its_section(tiny_run: tuple[Path, str]):
    folder, first = tiny_run
    results = folder / "experiments" / "RESULTS_tiny.md"
    results.write_text(results.read_text() + "\nThe authors' reading, outside the markers.\n")
    again = run_cli("experiment", "--preset", "tiny", cwd=folder, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    steps = re.findall(r"\[\d+/(\d+)\] \S+ \S+: done, skipped", again.stderr)
    totals = sorted(set(steps))  # two phases: stage 1 with the references, then every step
    assert len(totals) == 2 and all(steps.count(total) == int(total) for total in totals)  # none run again
    assert "train -opt" not in again.stderr
    text = results.read_text()
    assert text.count("<!-- begin experiment_tiny -->") == 1
    assert text.rstrip().endswith("The authors' reading, outside the markers.")


def test_a_section_is_replaced_and_the_rest_of_the_file_kept(tmp_path: Path):
    path = tmp_path / "RESULTS.md"
    replace_section(path, "a", "first A")
    replace_section(path, "b", "only B")
    path.write_text(path.read_text() + "notes\n")
    replace_section(path, "a", "second A")
    text = path.read_text()
    assert "first A" not in text and text.index("second A") < text.index("only B") < text.index("notes")


def test_the_cpu_preset_plans_the_control_and_both_fine_tunings_on_amo():
    experiment = load_experiment(REPO / "options" / "experiment" / "cpu.yml")
    steps, methods = plan(experiment.ablation, REPO)
    bases = {m.label: m.base for m in methods if m.seed == 0 and m.base}
    assert bases == {"RRDB AMO+FT": "RRDB AMO", "RRDB AMO+full FT": "RRDB AMO"}
    assert len([s for s in steps if s.kind == "stage1"]) == 7 * 3 and len(
        [s for s in steps if s.kind == "stage2"]) == 2 * 3
    by_run = {(s.run, s.kind): s.command for s in steps}
    control = by_run[("RRDB_control_s1", "stage1")]
    assert "sampler.type=upos" in control
    assert control[-1 - control[::-1].index(next(a for a in control[::-1] if a.startswith(
        "datasets.train.dataroot_label=")))] == \
        "datasets.train.dataroot_label=datasets/experiment_cpu_gated/Train/labels/demo_qcontrol"
    full = by_run[("RRDB_amo_s1_full_ft", "eval")]
    stage2 = by_run[("RRDB_amo_s1_full_ft", "stage2")]
    assert "lora.enabled=false" in stage2 and "train.optim_g.lr=3e-4" in stage2 and "--adapter" not in full
    assert full[full.index("--checkpoint") + 1] == "experiments/experiment_cpu_gated/RRDB_amo_s1_full_ft"
    lora = by_run[("RRDB_amo_s1_ft", "eval")]
    assert lora[lora.index("--checkpoint") + 1] == "experiments/experiment_cpu_gated/RRDB_amo_s1"


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
    preset["experiment"]["monitors"] = ["piqe"]
    preset["experiment"]["data"] |= {"train_photos": ["astronaut", "lena"]}
    path.write_text(yaml.safe_dump(preset))
    with pytest.raises(OptionsError, match="no photo named lena"):
        load_experiment(path)
    preset["experiment"]["data"] |= {"train_photos": ["astronaut", "chelsea"], "test_photos": ["chelsea"]}
    path.write_text(yaml.safe_dump(preset))
    with pytest.raises(OptionsError, match="trains on the held-out photos chelsea"):
        load_experiment(path)
    preset["experiment"]["data"] |= {"train_photos": ["astronaut"]}
    preset["experiment"] |= {"q_tiles": "96", "stage2_q_share": 0, "time_budget": {"seconds": -5},
                             "gate": {"q_min": 10, "q_max": 5}}
    path.write_text(yaml.safe_dump(preset))
    with pytest.raises(OptionsError) as problems:
        load_experiment(path)
    for expected in ("'experiment.q_tiles' is '96'", "'experiment.stage2_q_share' must be above 0",
                     "'experiment.time_budget.seconds' must be above 0", "'experiment.gate.q_min' (10.0) is above"):
        assert expected in str(problems.value)
    result = run_cli("experiment", "--preset", "nonesuch", cwd=tmp_path)
    assert result.returncode == 2 and "no preset 'nonesuch'" in result.stderr


def test_the_gpu_preset_runs_at_a_tiny_size_with_its_time_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """options/experiment/gpu.yml as it is, with only sizes made tiny: its keys, variants, the timing probe and the
    two phases run here, so that a GPU loan cannot fail on a typo."""
    from sr_iqa.cli import main

    preset = yaml.safe_load((REPO / "options" / "experiment" / "gpu.yml").read_text())
    settings, ablation = preset["experiment"], preset["ablation"]
    settings["data"] |= {"crop_size": 96, "test_crop_size": 96, "train_crops_per_photo": 1, "test_crops_per_photo": 1,
                         "train_photos": ["astronaut", "camera"], "test_photos": ["chelsea", "grace_hopper"]}
    settings |= {"pretrained": [], "gate": {"q_min": 0, "q_max": 1000, "margin": -1000}, "stage2_q_share": None,
                 "distortion": ["psnr", "ssim"], "monitors": ["piqe"], "results": "experiments/RESULTS_gpu_tiny.md"}
    settings["time_budget"] |= {"seconds": 10, "probe_iterations": 2, "min_iterations": 30}  # NIQE-scorable outputs
    # One seed: the statistics over seeds are the tiny preset's test; here the gpu file's keys and mechanics.
    ablation |= {"references": {}, "seeds": [0], "metrics": ["psnr", "ssim", "niqe", "piqe"],
                 "overrides": ["network_g.num_block=1", "network_g.num_feat=8", "network_g.num_grow_ch=4",
                               "train.perceptual_opt=null", "datasets.train.batch_size_per_gpu=2"],
                 "stage1_overrides": ["path.pretrain_network_g=null", "network_d.num_feat=8", "train.optim_g.lr=5e-3"]}
    (tmp_path / "options").symlink_to(REPO / "options")
    path = tmp_path / "gpu_tiny.yml"
    path.write_text(yaml.safe_dump(preset, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    assert main(["experiment", "-opt", str(path)]) == 0

    root = tmp_path / "experiments" / "experiment_gpu"
    time_plan = json.loads((root / "time_plan.json").read_text())
    stage1 = time_plan["stage1_iterations"]
    assert stage1 >= 30 and time_plan["stage2_iterations"] == stage1 // 2
    runs = 4  # Original, UPos, AMO and the control, one seed
    trainings, evaluations = runs + 2, runs + 2 + 1  # FT and full FT on AMO, and the untrained network's evaluation
    assert time_plan["seconds_spent"] > 0 and time_plan["seconds_per_analysis"] > 0  # data, gate, probe; tiled Q
    fixed = time_plan["seconds_spent"] + trainings * time_plan["seconds_per_training"] + \
        evaluations * (time_plan["seconds_per_eval"] + time_plan["seconds_per_analysis"])
    planned = fixed + time_plan["seconds_per_iteration"] * (runs * stage1 + 2 * time_plan["stage2_iterations"])
    assert time_plan["planned_seconds"] == pytest.approx(planned, rel=1e-6)
    assert planned <= 10 or stage1 == 30  # within the budget, or at the floor
    for run in ("RRDB_control_s0", "RRDB_amo_s0_full_ft"):
        assert (root / run / "training_states").is_dir()
    text = (tmp_path / "experiments" / "RESULTS_gpu_tiny.md").read_text()
    assert "| RRDB AMO+full FT |" in text and "| RRDB Control |" in text and not (root / "timing_probe").exists()


def test_the_per_seed_file_holds_the_values_each_claim_is_computed_from(tiny_run: tuple[Path, str]):
    """A reader recomputes the control claim from the CSV alone: its per-seed Q values are the saved SR images'
    NIQE, and their paired differences give the page's interval."""
    import csv

    folder, _ = tiny_run
    root = folder / "experiments" / "experiment_tiny"
    rows = list(csv.DictReader((folder / "experiments" / "results" / "experiment_tiny_per_seed.csv").open()))
    value = {(r["method"], int(r["seed"]), r["measure"]): float(r["value"]) for r in rows}
    assert {r["lower_better"] for r in rows if r["measure"] == "Q"} == {"True"}
    for sampler, label in (("original", "RRDB Original"), ("control", "RRDB Control")):
        for seed in (0, 1):
            assert value[(label, seed, "Q")] == pytest.approx(_saved_sr_niqe(root / f"RRDB_{sampler}_s{seed}", label),
                                                              abs=2e-4)
    differences = [value[("RRDB Original", s, "Q")] - value[("RRDB Control", s, "Q")] for s in (0, 1)]
    text = (folder / "experiments" / "RESULTS_tiny.md").read_text()
    control = _cells(text, "RRDB: Positive control (UPos on labels that agree with Q) above originals only")
    assert _mean_and_half_width(control[2]) == pytest.approx(_by_hand(differences), abs=2e-4, rel=1e-4)
    assert "experiment_tiny_per_seed.csv" in text and "ttest_1samp" in text
    gaming = [value[(label, seed, "gaming images")] for label in ("RRDB Original", "RRDB Control") for seed in (0, 1)]
    assert all(0 <= share <= 1 for share in gaming)  # a fraction of the held-out images, for every run
    assert "gaming images: the fraction of held-out images" in text and "Flagged as gaming" in text
