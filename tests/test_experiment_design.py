"""The experiment's instruments, each checked outside its own code: tiled Q against the metric called tile by tile,
the validity gate against Q measured by hand on each group (what it moves out, what the set's index still lists),
the positive control's labels on a hand-made case, the one-sided t-test and Holm's rule on textbook values, the
untrained network against the pretrained file it is cut from, and the lambda_Q probe's proportionality."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import REPO, SMALL_SPEC, tiny_options, write_options

from sr_iqa.ablation.claims import holm, one_sided_p
from sr_iqa.ablation.lambda_probe import probe_lambda
from sr_iqa.ablation.positive_control import control_labels, write_control_labels
from sr_iqa.ablation.prepared_data import save_untrained
from sr_iqa.ablation.validity_gate import DROPPED, GateReport, GateRule, GroupRecord, gate_lines, run_gate, tiled_q
from sr_iqa.data.check import discover_splits
from sr_iqa.data.demo_set import build_demo_set, load_photo
from sr_iqa.data.image_io import array_to_tensor, read_rgb_tensor
from sr_iqa.errors import OptionsError
from sr_iqa.iqa.metrics import create_metric


@pytest.fixture(scope="module")
def niqe() -> torch.nn.Module:
    return create_metric("niqe")


def test_tiled_q_is_the_mean_of_the_metric_on_each_tile(niqe: torch.nn.Module):
    image = array_to_tensor(load_photo("astronaut")[100:292, 150:342].copy())  # 192 px: four 96-px tiles
    by_hand = [float(niqe(image[None, :, y:y + 96, x:x + 96])) for y in (0, 96) for x in (0, 96)]
    assert tiled_q(niqe, image, "96:96") == pytest.approx(sum(by_hand) / 4, rel=1e-5)
    overlapping = [float(niqe(image[None, :, y:y + 96, x:x + 96])) for y in (0, 48, 96) for x in (0, 48, 96)]
    assert tiled_q(niqe, image, "96:48") == pytest.approx(sum(overlapping) / 9, rel=1e-5)


def test_tiled_q_covers_a_crop_that_is_not_a_whole_number_of_tiles(niqe: torch.nn.Module):
    crop = array_to_tensor(load_photo("astronaut")[100:228, 150:278].copy())  # 128 px: 96-px tiles at 0 and 32
    by_hand = [float(niqe(crop[None, :, y:y + 96, x:x + 96])) for y in (0, 32) for x in (0, 32)]
    assert tiled_q(niqe, crop, "96:96") == pytest.approx(sum(by_hand) / 4, rel=1e-5)
    assert math.isnan(tiled_q(niqe, crop[:, :90], "96:96"))  # shorter than one tile: nothing to score


def test_a_gate_report_from_before_the_covering_tiles_says_so():
    report = GateReport("niqe", "96:96", True, GateRule(0, 12, 0), [])
    assert GateReport.from_json(report.to_json()).covering
    old = json.loads(report.to_json())
    del old["covering"]
    old_report = GateReport.from_json(json.dumps(old))
    assert not old_report.covering and "top-left" in gate_lines(old_report)[0]
    assert "top-left" not in gate_lines(report)[0]


@pytest.mark.parametrize(("original", "bicubic", "dropped"), [
    (7.0, 9.0, None),
    (9.5, 9.0, "does not rank the original"),
    (13.0, 20.0, "outside [0, 12]"),
    (math.nan, 9.0, "outside [0, 12]"),
])
def test_the_gate_rule_on_hand_made_scores(original: float, bicubic: float, dropped: str | None):
    reason = GateRule(0, 12, 0).reason_to_drop(original, bicubic, lower_better=True)
    assert reason is None if dropped is None else dropped in reason


def test_the_gate_moves_out_exactly_the_groups_the_rule_drops(tmp_path: Path, niqe: torch.nn.Module):
    paths = build_demo_set(tmp_path / "set", SMALL_SPEC)
    originals = {p.stem: tiled_q(niqe, read_rgb_tensor(p), "96:96")
                 for folder in (paths.train_images, paths.test_images) for p in (folder / "original").glob("*.png")}
    q_max = sorted(originals.values())[len(originals) // 2]  # about half the groups lie above it
    rule = GateRule(0, q_max, -1000)  # the range alone decides
    report = run_gate(paths, niqe, "niqe", rule, "96:96", 4, 0, say=lambda line: None)

    expected = {group for group, q in originals.items() if q > q_max}
    assert {r.group for r in report.records if r.dropped} == expected and expected
    remaining = {g.name for index in discover_splits(paths.root).values() for g in index.groups}
    assert remaining == set(originals) - expected
    for group in expected:  # every file of the group went, to the same place under gate_dropped
        moved = list((paths.root / DROPPED).rglob(f"{group}*"))
        assert len(moved) >= 5 + 3 and not list(paths.root.glob(f"[TV]*/**/{group}*"))
    assert GateReport.from_json((paths.root / "gate.json").read_text()) == report
    assert run_gate(paths, niqe, "niqe", rule, "96:96", 4, 0) == report  # a gated set is read back, not re-gated
    with pytest.raises(OptionsError, match="another rule"):
        run_gate(paths, niqe, "niqe", GateRule(0, 99, 0), "96:96", 4, 0)


def test_the_control_labels_only_the_enhancement_q_prefers(tmp_path: Path):
    gts = {"01": 7.0, "02": 6.0, "03": 8.0, "04": 20.0}

    def group(original: float) -> GroupRecord:
        return GroupRecord("train", "img1-0-0", "astronaut", original, 9.0, gts, {}, None)

    assert control_labels(group(6.5), lower_better=True) == {"01": "Similar", "02": "Positive", "03": "Similar",
                                                             "04": "Similar"}
    assert "Positive" not in control_labels(group(5.0), lower_better=True).values()  # the original is best
    assert control_labels(group(19.0), lower_better=False)["04"] == "Positive"  # higher-better: the largest
    record = group(6.5)
    report = GateReport("niqe", "96:96", True, GateRule(0, 12, 0), [record])
    root, with_positive = write_control_labels(report, tmp_path / "labels" / "demo")
    assert root == tmp_path / "labels" / "demo_qcontrol" and with_positive == 1
    for annotator in "ABC":  # HGGT's label files: Picture_3 is slot 02
        entries = json.loads((root / annotator / "img1-0-0.json").read_text())
        assert entries["Picture_3"]["Label"] == "Positive" and entries["Picture_2"]["Label"] == "Similar"


def test_one_sided_p_and_holm_on_textbook_values():
    # Differences 1, 2, 3: mean 2, s 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 degrees of freedom, whose upper tail
    # is 1/2 (1 - t / sqrt(t^2 + 2)) in closed form.
    t = 2 * math.sqrt(3)
    assert one_sided_p([1, 2, 3], 0.0) == pytest.approx(0.5 * (1 - t / math.sqrt(t * t + 2)), rel=1e-6)
    assert one_sided_p([1, 2, 3], 2.0) == pytest.approx(0.5)  # the minimum effect equals the mean
    assert math.isnan(one_sided_p([1.0, math.nan], 0.0))
    # Holm (1979): sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, math.nan, 0.01]) == pytest.approx([0.2, math.nan, 0.02], nan_ok=True)  # m counts 2


RRDB_ONE_BLOCK = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 1,
                  "num_grow_ch": 32}


@pytest.fixture(scope="module")
def cut_network(pretrained: Path, demo_set, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-block RRDB cut from Real-ESRGAN x4plus, as the experiment's untrained reference row is saved."""
    folder = tmp_path_factory.mktemp("cut")
    options = tiny_options(demo_set, folder, total_iter=1) | {"network_g": RRDB_ONE_BLOCK}
    options["path"] |= {"pretrain_network_g": "pretrained:realesrgan-x4plus", "strict_load_g": False}
    return save_untrained(write_options(folder / "stage1.yml", options), [], folder / "untrained.safetensors")


def test_the_untrained_network_holds_the_pretrained_weights_it_is_cut_from(cut_network: Path, pretrained: Path):
    from safetensors.torch import load_file

    saved = load_file(cut_network)
    original = torch.load(next(pretrained.glob("RealESRGAN_x4plus*.pth")), weights_only=True)["params_ema"]
    for key in ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_last.bias"):
        assert torch.equal(saved[key], original[key])
    assert "body.1.rdb1.conv1.weight" not in saved  # one block of 23


def test_the_probe_scales_lambda_with_the_share_and_the_fidelity_weight(cut_network: Path, demo_set, tmp_path: Path):
    def stage2(pixel_weight: float) -> Path:
        options = tiny_options(demo_set, tmp_path, pixel_opt={"type": "L1Loss", "loss_weight": pixel_weight},
                               iqa_opt={"metric": "niqe", "loss_weight": 0.01})
        return write_options(tmp_path / f"ft_{pixel_weight}.yml", options | {"network_g": RRDB_ONE_BLOCK})

    originals = sorted((demo_set.train_images / "original").glob("*.png"))[:3]
    one = probe_lambda(stage2(1.0), [], cut_network, originals, 1.0, 96)
    assert one.images == 3 and one.loss_weight == pytest.approx(one.fidelity_grad / one.q_grad)
    assert probe_lambda(stage2(1.0), [], cut_network, originals, 0.5, 96).loss_weight == pytest.approx(
        one.loss_weight / 2, rel=1e-5)
    assert probe_lambda(stage2(2.0), [], cut_network, originals, 1.0, 96).loss_weight == pytest.approx(
        one.loss_weight * 2, rel=1e-5)  # L1 alone: twice its weight, twice its gradient
    assert one.generator == str(cut_network) and str(cut_network) in one.line("niqe")


def test_lambda_q_is_probed_on_the_stage1_model_the_first_stage2_starts_from(tmp_path: Path):
    from sr_iqa.ablation.experiment import first_stage2_base
    from sr_iqa.ablation.experiment_options import load_experiment
    from sr_iqa.ablation.lambda_probe import LambdaProbe, read_or_probe
    from sr_iqa.ablation.plan import plan

    ablation = load_experiment(REPO / "options" / "experiment" / "cpu.yml").ablation
    steps, _ = plan(ablation, REPO)
    base = first_stage2_base(ablation)
    trained_at = next(i for i, step in enumerate(steps) if step.kind == "stage1" and step.run == base.name)
    first_stage2 = next(i for i, step in enumerate(steps) if step.kind == "stage2")
    assert trained_at < first_stage2 and f"path.pretrain_network_g={base}" in steps[first_stage2].command
    probes = []

    def probe(generator: str) -> LambdaProbe:
        probes.append(generator)
        return LambdaProbe(1.0, 2.0, 4.0, 0.1, 5.0, 3, 0.5, generator)

    assert read_or_probe(tmp_path, 1.0, Path("a"), lambda: probe("a")).generator == "a"
    assert read_or_probe(tmp_path, 1.0, Path("a"), lambda: probe("a")).generator == "a"  # recorded: not again
    assert read_or_probe(tmp_path, 1.0, Path("b"), lambda: probe("b")).generator == "b"  # another model: again
    assert probes == ["a", "b"]


def _total_iter(command: list[str]) -> int:
    return int(next(part for part in command if part.startswith("train.total_iter=")).split("=")[1])


def test_the_time_plan_takes_one_time_costs_out_of_its_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A clock advanced by what each probe run would take: 40 s of one-time costs (imports, compilation) on the
    first run, then a training costs o = 3 s plus r = 0.5 s per iteration; an evaluation e = 2 s. Timed first,
    the one-time costs once made r zero and the plan ask for millions of iterations."""
    from sr_iqa.ablation import time_budget
    from sr_iqa.ablation.plan import Step
    from sr_iqa.ablation.time_budget import TimeBudgetOptions, measure_and_plan, probe_rate

    clock = [100.0]
    monkeypatch.setattr(time_budget.time, "monotonic", lambda: clock[0])
    calls: list[list[str]] = []

    def run_in_process(command: list[str]) -> int:
        calls.append(command)
        if "eval" in command:
            clock[0] += 2.0
        else:
            iterations = _total_iter(command)
            clock[0] += (40.0 if len(calls) == 1 else 0.0) + 3.0 + 0.5 * iterations
        return 0

    steps = [Step(f"run{i}", "stage1", ["sr-iqa", "train", "-opt", "s1.yml"], tmp_path / f"done{i}")
             for i in range(4)]
    steps += [Step("run0_ft", "stage2", ["sr-iqa", "train", "-opt", "s2.yml"], tmp_path / "ft"),
              Step("reference_untrained", "eval", ["sr-iqa", "eval", "--out", "o", "--save-sr", "s"], tmp_path / "e")]
    analysed: list[Path] = []

    def analyse_images(folder: Path) -> None:  # the analysis' Q of the probe evaluation's images: a = 1.5 s
        analysed.append(folder)
        clock[0] += 1.5

    budget = TimeBudgetOptions(seconds=200, probe_iterations=4, stage2_fraction=0.5, min_iterations=2)
    # The experiment began 20 s before the probe (data, gate, score cache).
    plan = measure_and_plan(budget, steps, tmp_path / "plan", run_in_process, say=lambda line: None,
                            started=clock[0] - 20, analyse_images=analyse_images)
    assert [_total_iter(command) for command in calls[:3]] == [4, 4, 8]  # warm-up, k, 2k
    assert analysed == [tmp_path / "plan" / "timing_probe" / "eval" / "sr"]  # the probe evaluation's --save-sr
    assert plan.seconds_per_iteration == pytest.approx(0.5) and plan.seconds_per_training == pytest.approx(3.0)
    assert (plan.seconds_per_eval, plan.seconds_per_analysis) == (pytest.approx(2.0), pytest.approx(1.5))
    # Spent: 20 + the probe (45 + 5 + 7 + 2 + 1.5) = 80.5 s; fixed: 80.5 + (4 + 1) * 3 + 1 * (2 + 1.5) = 99 s;
    # 0.5 * (4 N + 0.5 N) <= 101  ->  N = 44, stage 2 22; planned 99 + 0.5 * (4 * 44 + 22) = 198 s.
    assert plan.seconds_spent == pytest.approx(80.5)
    assert (plan.stage1_iterations, plan.stage2_iterations) == (44, 22)
    assert plan.planned_seconds == pytest.approx(198.0)

    assert probe_rate(6.0, 8.0, 4) == pytest.approx(0.5)
    assert probe_rate(8.0, 7.0, 4) == pytest.approx(7.0 / 8)  # the 2k-run not slower: its own rate, an upper bound
