"""Q made of several metrics, each normalised by its spread over the training GTs (issue 30, point 3): the
statistics, the samplers' choices and stage 2's objective, against values worked out by hand."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import lora_stage2_options, score_training_gts, tiny_options, write_options

from sr_iqa.checked_options import load_options
from sr_iqa.config.schema import AmoMode, SamplerOptions, SamplerType
from sr_iqa.data.groups import index_hggt
from sr_iqa.errors import DataError
from sr_iqa.iqa.combined_q import SCALES_FILE, CombinedQ, MetricScale, metric_scales
from sr_iqa.iqa.metrics import FrozenMetricLoss, create_metric
from sr_iqa.iqa.score_cache import ScoreCache
from sr_iqa.sampling.build import build_chooser
from sr_iqa.sampling.q_scales import run_scales
from sr_iqa.train.trainer import Trainer


def test_each_metric_is_divided_by_its_own_spread_so_a_wide_scale_does_not_win():
    # NIQE (lower-better) 4, 6, 8: oriented -4, -6, -8, median -6, absolute deviations 2, 0, 2, MAD 2, spread
    # 1.4826 x 2; PIQE (lower-better) 20, 40, 60: median -40, MAD 20. Two NIQE points are worth twenty PIQE points.
    lower = {"niqe": True, "piqe": True}
    scales = metric_scales({"niqe": 1.0, "piqe": 1.0}, {"niqe": [4, 6, 8], "piqe": [20, 40, 60]}, lower, "test")
    assert scales["niqe"] == MetricScale(1.0, True, -6.0, pytest.approx(2 * 1.4826), 3)
    assert scales["piqe"].centre == -40.0 and scales["piqe"].spread == pytest.approx(20 * 1.4826)
    q = lambda niqe, piqe: sum(s.normalised(np.float64(v)) for s, v in  # noqa: E731
                               ((scales["niqe"], niqe), (scales["piqe"], piqe)))
    assert q(4, 60) == pytest.approx(0.0)  # NIQE 2 better, PIQE 20 worse: they cancel
    assert q(6, 20) == pytest.approx(20 / (20 * 1.4826))
    assert q(6, 40) == pytest.approx(0.0)  # the training GTs' median is 0
    # one outlier GT does not set the scale (a standard deviation would be about 41 here)
    outlier = metric_scales({"niqe": 1.0}, {"niqe": [4, 5, 6, 7, 100]}, lower, "test")["niqe"]
    assert (outlier.centre, outlier.spread) == (-6.0, pytest.approx(1.4826))
    # NaN is left out of the statistics (an image the metric could not score)
    with_nan = metric_scales({"niqe": 2.0}, {"niqe": [4, math.nan, 8]}, lower, "test")
    assert with_nan["niqe"] == MetricScale(2.0, True, -6.0, pytest.approx(2 * 1.4826), 2)


def test_a_metric_whose_scores_do_not_spread_is_refused_by_name():
    with pytest.raises(DataError, match=r"sampler.metrics: 'piqe' cannot be normalised: its 3 finite score"):
        metric_scales({"piqe": 1.0}, {"piqe": [5, 5, 5]}, {"piqe": True}, "sampler.metrics")


def test_the_module_sums_the_real_metrics_terms_and_passes_gradients(demo_set):
    from sr_iqa.data.image_io import read_rgb_tensor

    image = read_rgb_tensor(next((demo_set.train_images / "original").glob("*.png")))[None]
    scales = {"niqe": MetricScale(1.0, True, 0.0, 1.0, 2), "piqe": MetricScale(2.0, True, -10.0, 5.0, 2)}
    q = CombinedQ({name: create_metric(name) for name in scales}, scales)
    niqe, piqe = (float(create_metric(name)(image)) for name in scales)
    assert float(q(image)) == pytest.approx(-niqe + 2 * (-piqe + 10) / 5, rel=1e-5)  # worked from the scales
    assert q.lower_better is False
    losses = CombinedQ({"niqe": FrozenMetricLoss("niqe", options={})}, {"niqe": scales["niqe"]})
    pixels = image.clone().requires_grad_(True)
    (-losses(pixels).sum()).backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0


def _planted_cache(path: Path, groups, musiq, niqe) -> Path:
    """GT j of every group scores musiq(j) (higher-better) and niqe(j) (lower-better), full image."""
    cache = ScoreCache(path)
    records = cache.records([gt.path for group in groups for gt in group.gts])
    rows, position = [], 0
    for group in groups:
        for j in range(len(group.gts)):
            r = records[position]
            rows += [(r.content_hash, "musiq", 0, 0, r.width, r.height, musiq(j), False),
                     (r.content_hash, "niqe", 0, 0, r.width, r.height, niqe(j), True)]
            position += 1
    cache.put(rows)
    cache.close()
    return path


def test_the_samplers_choose_by_the_normalised_sum(demo_set, tmp_path: Path):
    """MUSIQ prefers the last GT (10 j), NIQE the first (j), five GTs a group: MUSIQ's median is 20 and its MAD 10,
    NIQE's 2 and 1, so each normalised term is +-(j - 2) / 1.4826; equal weights make every GT equal, and the
    weights decide. A raw sum would follow MUSIQ's wider scale whatever the weights."""
    groups = index_hggt(demo_set.train_images, demo_set.train_labels).groups[:2]
    assert all(len(group.gts) == 5 for group in groups)
    path = _planted_cache(tmp_path / "scores.db", groups, lambda j: 10.0 * j, lambda j: float(j))
    options = tiny_options(demo_set, tmp_path)
    options["sampler"] = {"type": "sma", "metrics": {"musiq": 1.0, "niqe": 1.0}, "cache": str(path), "tau": 1.0}
    loaded = load_options(write_options(tmp_path / "sma.yml", options))
    sma = build_chooser(loaded.sampler, groups, 96, {}, run_scales(loaded, groups)["sampler"])
    assert np.allclose(sma.full[0], 0.0)  # equal weights: every GT the same Q, uniform choice

    weighted = SamplerOptions(type=SamplerType.sma, metrics={"musiq": 3.0, "niqe": 1.0}, cache=str(path))
    loaded.sampler = weighted
    scales = run_scales(loaded, groups)["sampler"]
    q = build_chooser(weighted, groups, 96, {}, scales).full[1]
    assert np.allclose(q, 2 * (np.arange(5) - 2) / 1.4826)  # (3 (j - 2) - (j - 2)) / 1.4826, by hand

    # AMO on a 96-px crop of a 96-px image: the one box is the full image; NIQE weighted 3:1 wins although its
    # raw scores spread ten times less than MUSIQ's.
    amo = SamplerOptions(type=SamplerType.amo, metrics={"musiq": 1.0, "niqe": 3.0}, cache=str(path), grid_stride=96)
    loaded.sampler = amo
    loaded.datasets.train.gt_size = 96  # AMO's crops, normalised on their own grid's boxes
    chooser = build_chooser(amo, groups, 96, {}, run_scales(loaded, groups)["sampler"])
    assert chooser.crops[0][:, 0, 0].argmax() == 0
    raw_sum = [10.0 * j - 3.0 * j for j in range(5)]
    assert int(np.argmax(raw_sum)) == 4  # what the weights would pick without the normalisation


@pytest.fixture(scope="module")
def scored_training_set(demo_set, tmp_path_factory: pytest.TempPathFactory, pretrained: Path) -> Path:
    """NIQE, PIQE and the brisque package's BRISQUE of every training GT, as `sr-iqa score` writes them."""
    return score_training_gts(demo_set, tmp_path_factory.mktemp("cache") / "scores.db", "niqe", "piqe",
                              "brisque_pkg")


def _stored_statistics(cache: Path, metric: str) -> tuple[float, float, int]:
    """Median and 1.4826 x MAD of -score (both metrics are lower-better), read from the SQLite file itself."""
    with sqlite3.connect(cache) as db:
        scores = -np.array([row[0] for row in db.execute(
            "SELECT score FROM scores WHERE metric = ? AND x = 0 AND y = 0 AND w = 96 AND h = 96", (metric,))])
    median = float(np.median(scores))
    return median, 1.4826 * float(np.median(np.abs(scores - median))), len(scores)


def test_stage2_optimises_the_normalised_sum_and_records_its_statistics(demo_set, tmp_path: Path,
                                                                       scored_training_set: Path):
    options = lora_stage2_options(demo_set, tmp_path, total_iter=2, ema_decay=0)
    options["sampler"] = {"type": "sma", "metrics": {"niqe": 1.0, "piqe": 0.5}, "cache": str(scored_training_set)}
    # PIQE cannot be a Q term (its gradient is zero); BRISQUE, differentiable here, is the second one.
    options["train"]["iqa_opt"] = {"metrics": {"niqe": 1.0, "brisque_pkg": 1.0}, "loss_weight": 0.05}
    options["val"] |= {"monitor_metrics": ["brisque_pkg", "entropy"]}
    options["logger"] |= {"print_freq": 1, "save_checkpoint_freq": 2}
    file = write_options(tmp_path / "ft.yml", options)
    run = Trainer(load_options(file)).train().root

    recorded = json.loads((run / SCALES_FILE).read_text())
    assert set(recorded) == {"sampler", "train.iqa_opt"}
    for metric in ("niqe", "brisque_pkg"):
        centre, spread, images = _stored_statistics(scored_training_set, metric)
        scale = recorded["train.iqa_opt"][metric]
        assert (scale["centre"], scale["spread"], scale["images"]) == (pytest.approx(centre), pytest.approx(spread),
                                                                      images)
        assert scale["lower_better"] is True and scale["weight"] == 1.0
    assert recorded["sampler"]["piqe"]["weight"] == 0.5
    log = (run / "logs" / "train.log").read_text()
    assert "q_combined" in log
    record = json.loads((run / "logs" / "validation.jsonl").read_text().splitlines()[-1])
    changes = record["results"]
    assert changes["optimised_change"] == pytest.approx((changes["change/niqe"] + changes["change/brisque_pkg"]) / 2)
    # brisque_pkg is optimised: the held-out change is entropy's alone
    assert changes["held_out_change"] == pytest.approx(changes["change/entropy"])

    # A resumed run divides by the statistics its folder recorded, not by a new reading of the cache.
    recorded["train.iqa_opt"]["niqe"]["spread"] = 123.0
    (run / SCALES_FILE).write_text(json.dumps(recorded))
    resumed = load_options(file, ["train.total_iter=4", "path.resume_state=auto"])
    trainer = Trainer(resumed)
    assert trainer.q_scales["train.iqa_opt"]["niqe"].spread == 123.0
    assert trainer.iqa_objective.metric.scales["niqe"].spread == 123.0
    trainer.train()
    assert json.loads((run / SCALES_FILE).read_text())["train.iqa_opt"]["niqe"]["spread"] == 123.0


def test_the_experiments_lambda_probe_asks_for_a_loss_weight_with_several_metrics(demo_set, tmp_path: Path):
    """The probe sets lambda_Q from one metric's gradient; with several it says what to set instead."""
    from sr_iqa.ablation.lambda_probe import probe_lambda
    from sr_iqa.errors import OptionsError

    options = tiny_options(demo_set, tmp_path)
    options["train"]["iqa_opt"] = {"metrics": {"niqe": 1.0, "piqe": 1.0}, "cache": str(tmp_path / "c.db")}
    stage2 = write_options(tmp_path / "ft.yml", options)
    with pytest.raises(OptionsError, match="set experiment.stage2_q_share: null and give train.iqa_opt.loss_weight"):
        probe_lambda(stage2, [], tmp_path / "unused.safetensors", [], 1.0, 96)


def test_online_amo_with_two_metrics_chooses_as_the_cache_does(demo_set, tmp_path: Path):
    """Online AMO scores every GT crop on the device with NIQE and PIQE and sums their normalised terms; on crops
    the cache holds, it must pick the GT the cached AMO picks from the stored scores, with the same statistics."""
    from sr_iqa.data.datasets import MultiGTCropDataset
    from sr_iqa.sampling.online_amo import OnlineAmo, online_amo_choice

    cache = score_training_gts(demo_set, tmp_path / "scores.db", "niqe", "piqe", grid="96:32")
    groups = index_hggt(demo_set.train_images, demo_set.train_labels)
    options = tiny_options(demo_set, tmp_path)
    options["sampler"] = {"type": "amo", "metrics": {"niqe": 1.0, "piqe": 2.0}, "cache": str(cache), "grid_stride": 32}
    options["datasets"]["train"]["gt_size"] = 96  # AMO's crops: the cached grid's boxes
    loaded = load_options(write_options(tmp_path / "amo.yml", options))
    scales = run_scales(loaded, groups.groups)["sampler"]
    cached = build_chooser(loaded.sampler, groups.groups, 96, {}, scales)
    loaded.sampler.mode = AmoMode.online
    online = OnlineAmo.from_options(loaded.sampler, loaded.iqa, torch.device("cpu"), scales)
    assert isinstance(online.metric, CombinedQ) and online.metric.scales == scales
    dataset = MultiGTCropDataset(groups, 96, seed=3, choose_gt=cached, with_candidates=True)
    choices = []
    for position in range(len(dataset)):
        sample = dataset[(0, position)]
        chosen, _ = online_amo_choice(sample["candidates"][None], sample["candidate_mask"][None], online.metric,
                                      online.metric.lower_better)
        choices.append((int(sample["gt_index"]), int(chosen[0])))
    assert all(a == b for a, b in choices) and len({a for a, _ in choices}) > 1  # the winner varies


def _spread_of_rows(cache: Path, metric: str, where: str) -> tuple[float, float, int]:
    """Median and 1.4826 x MAD of -score over the SQLite rows ``where`` selects (both metrics lower-better)."""
    with sqlite3.connect(cache) as db:
        scores = -np.array([row[0] for row in db.execute(f"SELECT score FROM scores WHERE metric = ? AND {where}",
                                                         (metric,))])
    median = float(np.median(scores))
    return median, 1.4826 * float(np.median(np.abs(scores - median))), len(scores)


def test_q_on_crops_is_normalised_on_the_crops_not_the_whole_images(demo_set, tmp_path: Path, caplog):
    """Issue 37 item 2: GTs of 192 px, Q applied to 96-px crops (cached AMO, stage 2). The statistics must be
    those of the 16 grid boxes of every GT, read here from the SQLite rows; the whole images' differ."""
    import logging

    from hggt_tree import VOTES, write_hggt_split

    from sr_iqa.cli import main

    images, labels, cache = tmp_path / "images", tmp_path / "labels", tmp_path / "scores.db"
    write_hggt_split(images, labels, VOTES, size=192)
    assert main(["score", "--dataset", str(images), "--metric", "niqe", "--metric", "piqe", "--grid", "96:32",
                 "--cache", str(cache), "--num-workers", "0"]) == 0
    options = tiny_options(demo_set, tmp_path)
    options["datasets"]["train"] |= {"dataroot_gt": str(images), "dataroot_label": str(labels), "gt_size": 96}
    weights = {"niqe": 1.0, "piqe": 1.0}
    options["sampler"] = {"type": "amo", "metrics": weights, "cache": str(cache), "grid_stride": 32}
    options["train"]["iqa_opt"] = {"metrics": weights, "loss_weight": 0.05}
    loaded = load_options(write_options(tmp_path / "amo.yml", options))
    groups = index_hggt(images, labels).groups
    scales = run_scales(loaded, groups)
    for metric in weights:
        on_crops = _spread_of_rows(cache, metric, "w = 96 AND h = 96")
        whole = _spread_of_rows(cache, metric, "w = 192 AND h = 192")
        assert on_crops[2] == 15 * 16 and whole[2] == 15
        for section in ("sampler", "train.iqa_opt"):
            scale = scales[section][metric]
            assert (scale.centre, scale.spread, scale.images) == (pytest.approx(on_crops[0]),
                                                                  pytest.approx(on_crops[1]), on_crops[2])
        assert scales["sampler"][metric].spread != pytest.approx(whole[1], rel=0.05)
    # SMA's Q is whole-image: its statistics stay those of the whole GTs
    loaded.sampler.type = SamplerType.sma
    loaded.train.iqa_opt = None
    assert run_scales(loaded, groups)["sampler"]["piqe"].images == 15
    # Stage 2 without a crop grid in the cache: whole images, said in a warning with the command
    whole_only = tmp_path / "whole.db"
    assert main(["score", "--dataset", str(images), "--metric", "niqe", "--metric", "piqe", "--cache",
                 str(whole_only), "--num-workers", "0"]) == 0
    options["sampler"] = {"type": "sma", "metrics": weights, "cache": str(whole_only)}
    loaded = load_options(write_options(tmp_path / "sma.yml", options))
    with caplog.at_level(logging.WARNING, logger="sr_iqa"):
        assert run_scales(loaded, groups)["train.iqa_opt"]["niqe"].images == 15
    assert "run `sr-iqa score --grid 96:32` for the crops' own" in caplog.text


def test_a_damaged_statistics_file_of_a_resumed_run_is_named_with_what_to_do(demo_set, tmp_path: Path):
    groups = index_hggt(demo_set.train_images, demo_set.train_labels).groups[:2]
    path = _planted_cache(tmp_path / "scores.db", groups, lambda j: 10.0 * j, lambda j: float(j))
    options = tiny_options(demo_set, tmp_path)
    options["sampler"] = {"type": "sma", "metrics": {"musiq": 1.0, "niqe": 1.0}, "cache": str(path)}
    loaded = load_options(write_options(tmp_path / "sma.yml", options))
    fields = '"weight": 1, "lower_better": true, "centre": 0, "images": 2'
    lies = ('"weight": 1, "lower_better": true, "centre": 1e308, "images": 2, "spread": 1',
            '"weight": 1, "lower_better": "yes", "centre": 0, "images": 2, "spread": 1',
            '"weight": 1, "lower_better": true, "centre": 0, "images": 0, "spread": 1',
            '"weight": 1e300, "lower_better": true, "centre": 0, "images": 2, "spread": 1')
    for damage in ("{not json", '{"sampler": {"niqe": {"weight": 1}}}', "[1, 2]",
                   f'{{"sampler": {{"niqe": {{{fields}, "spread": 0}}}}}}',
                   f'{{"sampler": {{"niqe": {{{fields}, "spread": "wide"}}}}}}',
                   *(f'{{"sampler": {{"niqe": {{{lie}}}}}}}' for lie in lies)):
        recorded = tmp_path / SCALES_FILE
        recorded.write_text(damage)
        with pytest.raises(DataError, match=f"{recorded}: not a Q normalisation file written by sr_iqa .*delete it"):
            run_scales(loaded, groups, recorded)
