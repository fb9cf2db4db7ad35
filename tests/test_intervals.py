"""Seed summaries against hand-computed cases and the published t table (two-sided 95%: t_{0.975, 2} = 4.303,
t_{0.975, 4} = 2.776), with NaN seeds left out and counted."""

from __future__ import annotations

import math

import pytest

from sr_iqa.ablation.intervals import summarise_seeds


def test_three_seeds_use_t_with_two_degrees_of_freedom():
    # 1, 2, 3: mean 2, sample standard deviation 1, half width 4.303 / sqrt(3) = 2.484
    summary = summarise_seeds([1.0, 2.0, 3.0])
    assert summary.mean == 2.0 and summary.seeds == 3 and summary.nan_seeds == 0
    assert summary.half_width == pytest.approx(4.303 / math.sqrt(3), abs=5e-4)


def test_five_seeds_and_a_nan_left_out_and_counted():
    # 10, 12, 14, 16, 18: mean 14, s = sqrt(10), half width 2.776 * sqrt(10) / sqrt(5) = 2.776 * sqrt(2) = 3.926
    summary = summarise_seeds([10.0, 12.0, math.nan, 14.0, 16.0, 18.0])
    assert summary.mean == 14.0 and summary.seeds == 5 and summary.nan_seeds == 1
    assert summary.half_width == pytest.approx(2.776 * math.sqrt(2), abs=1e-3)  # the table rounds t to 0.001
    assert summary.cell() == f"14.0000 ± {summary.half_width:.4f} (1 NaN)"


def test_one_seed_has_no_interval_and_no_finite_seed_no_mean():
    one = summarise_seeds([5.0])
    assert one.mean == 5.0 and math.isnan(one.half_width) and one.cell() == "5.0000"
    none = summarise_seeds([math.nan, math.nan])
    assert math.isnan(none.mean) and none.nan_seeds == 2 and none.cell() == "nan"


def test_the_ablation_table_gives_each_method_its_interval_over_seeds(tmp_path):
    """Three seeds' eval summaries (written by eval's own writer) -> the table's interval row, worked out by hand:
    psnr 20, 21, 22 -> 21 ± 4.303 / sqrt(3); niqe 5, NaN, 7 -> 6 ± 12.706 * sqrt(2) / sqrt(2), one NaN counted; psnr
    against the original 16, 17, 18 -> 17 with psnr's half width."""
    import json

    from sr_iqa.ablation.aggregate import aggregate
    from sr_iqa.ablation.plan import AblationRow
    from sr_iqa.evaluate.multi_gt import GOLD_STANDARD
    from sr_iqa.evaluate.tables import EvaluationSummary, write_summary_json

    methods = []
    for seed, (psnr, niqe) in enumerate([(20.0, 5.0), (21.0, math.nan), (22.0, 7.0)]):
        folder = tmp_path / f"s{seed}" / "eval"
        folder.mkdir(parents=True)
        write_summary_json(folder, EvaluationSummary(
            rows={"RRDB UPos": {"psnr": psnr, "niqe": niqe}, GOLD_STANDARD: {"niqe": 4.0}},
            against_original={"RRDB UPos": {"psnr": psnr - 4}}, distance_to_gold={},
            lower_better={"psnr": False, "niqe": True}, no_reference=["niqe"]))
        methods.append(AblationRow("RRDB UPos", seed, folder))
    record = aggregate(methods, tmp_path, "niqe", "unused", 0)
    psnr, niqe = record["intervals"]["RRDB UPos"]["psnr"], record["intervals"]["RRDB UPos"]["niqe"]
    assert psnr["mean"] == 21.0 and psnr["half_width"] == pytest.approx(4.303 / math.sqrt(3), abs=5e-4)
    assert niqe["mean"] == 6.0 and niqe["seeds"] == 2 and niqe["nan_seeds"] == 1
    assert niqe["half_width"] == pytest.approx(12.706, abs=1e-3)  # t_{0.975, 1} * sqrt(2) / sqrt(2)
    original = record["intervals"]["RRDB UPos"]["psnr vs original"]  # 16, 17, 18: the distortion axis
    assert original["mean"] == 17.0 and original["half_width"] == pytest.approx(psnr["half_width"])
    table = (tmp_path / "ablation_table.md").read_text()
    assert "| Method | psnr ↑ | niqe ↓ | psnr vs original ↑ |" in table
    assert (f"| RRDB UPos | 21.0000 ± {psnr['half_width']:.4f} | 6.0000 ± {niqe['half_width']:.4f} (1 NaN) | "
            f"17.0000 ± {original['half_width']:.4f} |") in table
    assert json.loads((tmp_path / "ablation.json").read_text())["rows"]["RRDB UPos"]["psnr"] == 21.0
