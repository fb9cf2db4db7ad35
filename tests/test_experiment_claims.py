"""Declared experiment claims, the power pilot's seed count and the gate's held-out headroom (issue 36), on the
choice preset and on hand-worked numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from sr_iqa.ablation.claims import declared_claims
from sr_iqa.ablation.experiment_options import load_experiment
from sr_iqa.ablation.plan import plan
from sr_iqa.ablation.power import PowerOptions, plan_seeds, read_plan
from sr_iqa.ablation.validity_gate import GateRule
from sr_iqa.errors import OptionsError

CHOICE = REPO / "options" / "experiment" / "choice.yml"


def test_the_choice_preset_runs_every_arm_its_claims_compare():
    experiment = load_experiment(CHOICE)
    steps, methods = plan(experiment.ablation, REPO)
    labels = {m.label.removeprefix("RRDB ") for m in methods}
    claims = declared_claims(experiment.settings.claims)
    assert (claims.control.better, claims.control.worse, claims.control.measure) == ("Q-best", "Q-worst", "Q")
    for claim in (claims.control, *claims.primary, *claims.fine):
        assert {claim.better, claim.worse} <= labels, claim.text
    assert {c.measure for c in claims.primary} == {"brisque_pkg"}  # the judge no arm trains on
    commands = {s.run: s.command for s in steps if s.kind == "stage1"}
    assert "sampler.choose=worst" in commands["RRDB_q_worst_s0"]
    assert "sampler.shuffle_seed=7" in commands["RRDB_shuffled_s0"]
    for arm in ("q_best", "q_worst", "random", "shuffled"):  # the choice arms see the enhanced GTs only
        assert "sampler.include_original=false" in commands[f"RRDB_{arm}_s0"]
    assert "sampler.include_original=false" not in commands["RRDB_upos_s0"]
    assert not any(s.kind == "stage2" for s in steps)


def test_a_claim_on_an_arm_or_a_measure_the_experiment_lacks_is_named(tmp_path: Path):
    preset = yaml.safe_load(CHOICE.read_text())
    preset["experiment"]["claims"]["primary"][0]["worse"] = "Randon"
    preset["experiment"]["claims"]["fine"][0]["measure"] = "musiq"
    path = tmp_path / "choice.yml"
    path.write_text(yaml.safe_dump(preset))
    with pytest.raises(OptionsError) as problems:
        load_experiment(path)
    assert "'experiment.claims.primary[0]' names Randon, which this experiment does not run" in str(problems.value)
    assert "'experiment.claims.fine[0].measure' is 'musiq'" in str(problems.value)


@pytest.mark.parametrize(("effect", "expected"), [(0.2, 8), (0.16, 12), (0.1, 27)])
def test_the_pilot_asks_for_g_powers_seed_counts(effect: float, expected: int):
    """Pilot differences 0.1, 0.3, 0.5 have SD 0.2; effects 0.2, 0.16 and 0.1 are d = 1.0, 0.8 and 0.5, for which
    G*Power (one-sided paired t, alpha 0.05, power 0.8) gives 8, 12 and 27 pairs."""
    options = PowerOptions(effect=effect, pilot_seeds=[0, 1, 2], min_seeds=2, max_seeds=30)
    power = plan_seeds(options, "Q-best beats Q-worst", "Q", [0.1, 0.3, 0.5])
    assert power.sd == pytest.approx(0.2) and power.needed == expected
    assert power.seeds == list(range(expected))


def test_seeds_stay_within_the_files_bounds_and_say_so(tmp_path: Path):
    capped = plan_seeds(PowerOptions(effect=0.1, pilot_seeds=[3, 4, 5], max_seeds=12), "c", "Q", [0.1, 0.3, 0.5])
    assert capped.needed == 27 and capped.seeds == [3, 4, 5, 0, 1, 2, 6, 7, 8, 9, 10, 11]
    assert "the target needs 27, more than the 12 this file allows" in capped.line()
    floor = plan_seeds(PowerOptions(effect=5.0, pilot_seeds=[0, 1, 2]), "c", "Q", [0.1, 0.3, 0.5])
    assert floor.needed == 2 and len(floor.seeds) == 8  # min_seeds: never fewer than the file's floor
    record = tmp_path / "power.json"
    capped.save(record)
    assert read_plan(record) == capped and json.loads(record.read_text())["pilot_differences"] == [0.1, 0.3, 0.5]
    record.write_text("{not json")
    assert read_plan(record) is None


@pytest.mark.parametrize(("original", "bicubic", "headroom", "dropped"), [
    (7.0, 9.0, 0.4, None),
    (7.0, math.nan, 0.4, "cannot score the bicubic"),  # issue 37 item 7: was kept
    (7.0, 9.0, 0.0, "headroom 0.00"),
    (7.0, 9.0, math.nan, "headroom nan"),
    (7.0, 9.0, None, None),  # a training group has no headroom rule
])
def test_the_gate_drops_a_nan_bicubic_and_a_held_out_group_without_headroom(original, bicubic, headroom, dropped):
    rule = GateRule(0, 12, 0, min_headroom=0.1)
    reason = rule.reason_to_drop(original, bicubic, lower_better=True, headroom=headroom)
    assert reason is None if dropped is None else dropped in reason


def test_gaming_images_counts_where_q_beats_every_gt_and_no_judge_does(tmp_path: Path):
    """Three held-out images, NIQE as Q (lower better), BRISQUE (lower) and a higher-better judge, worked by hand:
    a: Q 3.0 beats the best GT (4.0), BRISQUE 20 is not below the best GT's 10, judge 0.5 not above 0.9: gaming.
    b: Q 3.0 beats 4.0 but BRISQUE 5 beats the best GT's 10: an honest gain. c: Q 5.0 does not beat 4.0."""
    from sr_iqa.ablation.gaming_images import gaming_fraction

    (tmp_path / "per_image.csv").write_text(
        "method,image,brisque_pkg,judge_up\n"
        "M,a,20,0.5\nM,b,5,0.5\nM,c,50,0.1\nOther,a,1,1\n")
    (tmp_path / "gt_scores.csv").write_text(
        "group,slot,label,brisque_pkg,judge_up\n"
        + "".join(f"{g},original,,10,0.9\n{g},01,Positive,30,0.2\n" for g in "abc"))
    lower = {"Q": True, "brisque_pkg": True, "judge_up": False}
    sr_q, best_q = {"a": 3.0, "b": 3.0, "c": 5.0}, {"a": 4.0, "b": 4.0, "c": 4.0}
    assert gaming_fraction(tmp_path, "M", sr_q, best_q, ["brisque_pkg", "judge_up"], lower) == pytest.approx(1 / 3)
    assert gaming_fraction(tmp_path, "Other", sr_q, best_q, ["brisque_pkg"], lower) == 0  # its judge beats the GT
    assert math.isnan(gaming_fraction(tmp_path, "M", sr_q, best_q, [], lower))  # no judge: no verdict
