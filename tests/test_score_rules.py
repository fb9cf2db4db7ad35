"""The two rules every table, sampler and loss shares, on hand-computed cases: a metric's direction, and NaN left
out of a mean and counted (also through the evaluation summary and its table)."""

from __future__ import annotations

import math

import numpy as np
import torch

from sr_iqa.evaluate.multi_gt import ImageResult, distance_to_gold, gold_standard
from sr_iqa.evaluate.tables import EvaluationSummary, summary_markdown
from sr_iqa.score_rules import arrow, best, is_better, nan_aware_mean, nan_aware_means, oriented

NAN = math.nan


def test_direction_on_floats_arrays_and_tensors():
    assert oriented(3.0, lower_better=True) == -3.0 and oriented(3.0, lower_better=False) == 3.0
    assert oriented(np.array([1.0, 2.0]), True).tolist() == [-1.0, -2.0]
    assert oriented(torch.tensor([1.0, -2.0]), True).tolist() == [-1.0, 2.0]
    assert is_better(4.1, 5.0, lower_better=True) and not is_better(4.1, 5.0, lower_better=False)
    assert best([NAN, 5.0, 3.0], lower_better=True) == 3.0 and best([NAN, 5.0, 3.0], lower_better=False) == 5.0
    assert math.isnan(best([NAN, NAN], lower_better=True))
    assert (arrow(True), arrow(False)) == ("↓", "↑")


def test_a_nan_is_left_out_of_the_mean_and_counted():
    average = nan_aware_mean([1.0, NAN, 3.0])
    assert (average.mean, average.values, average.nan_values) == (2.0, 2, 1)
    empty = nan_aware_mean([NAN])
    assert math.isnan(empty.mean) and (empty.values, empty.nan_values) == (0, 1)
    means, left_out = nan_aware_means([{"niqe": 4.0, "psnr": 20.0}, {"niqe": NAN, "psnr": 22.0}])
    assert means == {"niqe": 4.0, "psnr": 21.0} and left_out == {"niqe": 1}
    # Issue 37 item 8: an infinite score is left out as best() leaves it out, not averaged into an infinite mean.
    infinite = nan_aware_mean([1.0, math.inf, 3.0, -math.inf])
    assert (infinite.mean, infinite.values, infinite.nan_values) == (2.0, 2, 2)
    assert best([1.0, math.inf, 3.0], lower_better=False) == 3.0


def test_the_gold_standard_and_the_distance_to_it_follow_each_metrics_direction():
    # Two groups of three GTs: NIQE lower is better, MUSIQ higher; the second group's NIQE could not be scored.
    groups = [[{"niqe": 5.0, "musiq": 60.0}, {"niqe": 4.0, "musiq": 70.0}, {"niqe": 6.0, "musiq": 65.0}],
              [{"niqe": NAN, "musiq": 50.0}, {"niqe": NAN, "musiq": 40.0}, {"niqe": NAN, "musiq": 45.0}]]
    gold = gold_standard(groups, {"niqe": True, "musiq": False})
    assert gold == {"niqe": 4.0, "musiq": 60.0}  # (70 + 50) / 2; the unscorable group left out of NIQE's mean
    distance = distance_to_gold({"niqe": 5.5, "musiq": 61.0}, gold, {"niqe": True, "musiq": False})
    assert distance == {"niqe": 1.5, "musiq": -1.0}  # positive: worse than the best GTs


def test_an_unscorable_image_is_counted_in_the_evaluation_table():
    results = [ImageResult("A", "img1", {"psnr": 20.0, "niqe": 5.0}, {"psnr": 21.0}, 2),
               ImageResult("A", "img2", {"psnr": 24.0, "niqe": NAN}, {"psnr": 23.0}, 2)]
    summary = EvaluationSummary.from_results(results, {"niqe": 4.0}, {"psnr": False, "niqe": True}, {})
    assert summary.rows["A"] == {"psnr": 22.0, "niqe": 5.0}
    assert summary.nan_images == {"A": {"niqe": 1}}
    assert "A: niqe 1" in summary_markdown(summary)
