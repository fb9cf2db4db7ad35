"""Short stage-1 runs with each sampler: the logged choice statistics must match the sampler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_cli, tiny_options, write_options
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sr_iqa.checked_options import load_options
from sr_iqa.errors import DataError
from sr_iqa.train.trainer import Trainer


def _scored(demo_set, folder: Path, metric: str, grid: str) -> Path:
    """``sr-iqa score`` of every demo GT with ``metric``, full and on ``grid``."""
    cache = folder / "scores.db"
    result = run_cli("score", "--dataset", str(demo_set.root), "--metric", metric, "--grid", grid,
                     "--cache", str(cache), "--num-workers", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    return cache


@pytest.fixture(scope="module")
def scored(demo_set, tmp_path_factory) -> Path:
    """Entropy (offline, works on 32-pixel crops) on the 32:32 grid."""
    return _scored(demo_set, tmp_path_factory.mktemp("cache"), "entropy", "32:32")


def _run(tmp_path: Path, demo_set, cache: Path, sampler: dict) -> dict[str, list[float]]:
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["sampler"] = {"metric": "entropy", "cache": str(cache), "grid_stride": 32, "tau": 0.05, **sampler}
    options["train"]["total_iter"] = 20
    options["logger"] |= {"print_freq": 20, "use_tb_logger": True}
    options["datasets"].pop("val")
    run = Trainer(load_options(write_options(tmp_path / "o.yml", options))).train().root
    events = EventAccumulator(str(run / "logs" / "tb")).Reload()
    return {tag: [s.value for s in events.Scalars(tag)] for tag in events.Tags()["scalars"]
            if tag.startswith("sampler/")}


def test_original_always_supervises_with_the_original(tmp_path, demo_set, scored):
    stats = _run(tmp_path, demo_set, scored, {"type": "original"})
    assert stats["sampler/slot_original"] == [1.0]


@pytest.mark.parametrize("kind", ["upos", "smp"])
def test_positive_samplers_choose_positives_or_fall_back_to_the_original(tmp_path, demo_set, scored, kind):
    stats = _run(tmp_path, demo_set, scored, {"type": kind})
    assert stats["sampler/label_Positive"][0] + stats.get("sampler/label_original", [0.0])[0] == pytest.approx(1.0)
    assert stats["sampler/label_Positive"][0] > 0.5
    assert stats["sampler/label_Negative"] == [0.0] and stats["sampler/label_Similar"] == [0.0]


def test_rand_uses_every_slot(tmp_path, demo_set, scored):
    stats = _run(tmp_path, demo_set, scored, {"type": "rand"})
    assert all(stats[f"sampler/slot_{slot}"][0] > 0 for slot in ("original", "01", "02", "03", "04"))


def test_cached_amo_always_takes_the_best_q_at_the_crop(tmp_path, demo_set, scored):
    stats = _run(tmp_path, demo_set, scored, {"type": "amo"})
    assert stats["sampler/chosen_q"] == pytest.approx(stats["sampler/best_q"])


def test_sma_does_not_always_take_the_best(tmp_path, demo_set, scored):
    stats = _run(tmp_path, demo_set, scored, {"type": "sma", "tau": 100.0})  # nearly uniform
    assert stats["sampler/chosen_q"][0] < stats["sampler/best_q"][0]


def test_missing_scores_are_refused_before_training(tmp_path, demo_set, scored):
    options = tiny_options(demo_set, tmp_path / "experiments")
    options["sampler"] = {"type": "amo", "metric": "entropy", "cache": str(scored), "grid_stride": 16}
    with pytest.raises(DataError) as missing_grid:
        Trainer(load_options(write_options(tmp_path / "o.yml", options)))
    # The whole command that writes the grid: the data from the option file, the cache, the metric and the grid.
    assert f"`sr-iqa score -opt <this option file> --metric entropy --cache {scored} --grid 32:16`" in str(
        missing_grid.value)
    options["sampler"] = {"type": "sma", "metric": "musiq", "cache": str(scored)}
    with pytest.raises(DataError, match="holds no 'musiq' scores"):
        Trainer(load_options(write_options(tmp_path / "o.yml", options)))


def test_online_amo_trains_and_logs_its_choice_as_the_best_q(tmp_path, demo_set, scored):
    """The logged statistics agree with themselves; that the choice is the argmax of the metric's own scores is
    anchored against pyiqa called on each crop alone (tests/test_choice_contrast.py)."""
    stats = _run(tmp_path, demo_set, scored, {"type": "amo", "mode": "online", "cache": None})
    assert stats["sampler/chosen_q"] == pytest.approx(stats["sampler/best_q"])


@pytest.fixture(scope="module")
def niqe_scored(demo_set, tmp_path_factory) -> Path:
    """NIQE (which a flip or a transpose changes) on the 96:32 grid."""
    return _scored(demo_set, tmp_path_factory.mktemp("niqe"), "niqe", "96:32")


def _cached_and_online_choices(demo_set, cache: Path, metric_name: str, gt_size: int, stride: int
                               ) -> tuple[list[tuple[int, int]], int, set[tuple[int, int]]]:
    """Per sample of two epochs: (cached AMO's GT, online AMO's GT on the same unaugmented crop); how many samples
    were flipped; the crop boxes (top, left) seen."""
    from sr_iqa.config.schema import SamplerOptions, SamplerType
    from sr_iqa.data.datasets import MultiGTCropDataset, augment_tensors
    from sr_iqa.data.groups import index_hggt
    from sr_iqa.iqa.metrics import create_metric
    from sr_iqa.sampling.build import build_chooser
    from sr_iqa.sampling.online_amo import online_amo_choice

    index = index_hggt(demo_set.train_images, demo_set.train_labels)
    cached = build_chooser(SamplerOptions(type=SamplerType.amo, metric=metric_name, cache=str(cache),
                                          grid_stride=stride), index.groups, gt_size)
    dataset = MultiGTCropDataset(index, gt_size, seed=3, choose_gt=cached, with_candidates=True)
    metric = create_metric(metric_name)
    choices, flipped, boxes = [], 0, set()
    for key in [(epoch, position) for epoch in range(2) for position in range(len(dataset))]:
        sample = dataset[key]
        online, _ = online_amo_choice(sample["candidates"][None], sample["candidate_mask"][None], metric,
                                      metric.lower_better)
        choices.append((int(sample["gt_index"]), int(online[0])))
        flipped += bool(sample["flips"].any())
        boxes.add((int(sample["box"][0]), int(sample["box"][1])))
        chosen = augment_tensors(sample["candidates"][online], sample["flips"][None])[0]
        assert torch.equal(chosen, sample["gt"]) or int(online[0]) != int(sample["gt_index"])
    return choices, flipped, boxes


def test_cached_and_online_amo_choose_the_same_gt_under_flips(demo_set, niqe_scored):
    """Both choose on the unaugmented crop (the cache holds regions of the files); flips come after the choice.
    NIQE sees flips, so an online AMO that scored the flipped crops would disagree with the cache. (NIQE needs
    96 px: one crop box per 96-px GT; the next test moves the box.)"""
    choices, flipped, _ = _cached_and_online_choices(demo_set, niqe_scored, "niqe", 96, 32)
    assert all(a == b for a, b in choices)
    assert flipped > 0 and len({a for a, _ in choices}) > 1  # flips happened, and the winner varies


def test_cached_and_online_amo_choose_the_same_gt_on_grid_aligned_crops(demo_set, scored):
    """32-px crops of 96-px GTs on the cache's 32-px grid: nine boxes per image, so the cached score read must be
    the region the online metric scores; a box off by one grid step picks another GT somewhere."""
    choices, _, boxes = _cached_and_online_choices(demo_set, scored, "entropy", 32, 32)
    assert len(boxes) >= 5 and {top for top, _ in boxes} >= {0, 32, 64}
    assert all(a == b for a, b in choices)
    assert len({a for a, _ in choices}) > 1


def test_augment_tensors_is_basicsrs_augment_on_the_device():
    import numpy as np

    from sr_iqa.data.datasets import augment, augment_tensors

    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    for bits in np.ndindex(2, 2, 2):
        flips = np.array(bits, dtype=bool)
        expected = torch.from_numpy(augment(array, flips, True, True)).permute(2, 0, 1)
        got = augment_tensors(torch.from_numpy(array).permute(2, 0, 1)[None], torch.from_numpy(flips)[None])[0]
        assert torch.equal(got, expected), bits


@pytest.mark.parametrize("mode", ["cached", "online"])
def test_amo_never_chooses_an_excluded_label(tmp_path, demo_set, scored, mode):
    sampler = {"type": "amo", "mode": mode} | ({"cache": None} if mode == "online" else {})
    (tmp_path / "free").mkdir()
    (tmp_path / "excluded").mkdir()
    free = _run(tmp_path / "free", demo_set, scored, sampler)
    assert free["sampler/label_Negative"][0] > 0  # entropy likes the over-sharpened Negatives of the demo set
    excluded = _run(tmp_path / "excluded", demo_set, scored, {**sampler, "exclude_labels": ["Negative"]})
    assert excluded["sampler/label_Negative"] == [0.0]
    assert excluded["sampler/label_Positive"][0] + excluded["sampler/label_Similar"][0] > 0


def test_the_ranked_gt_loss_reads_each_gts_cached_q_at_the_crop(tmp_path, demo_set, scored):
    import math

    from sr_iqa.data.datasets import CropBox
    from sr_iqa.errors import OptionsError

    options = tiny_options(demo_set, tmp_path / "experiments")
    options["sampler"] = {"type": "amo", "metric": "entropy", "cache": str(scored), "grid_stride": 32}
    options["train"]["rank_opt"] = {"type": "RankedGTLoss", "loss_weight": 1.0, "exclude_labels": ["Negative"]}
    options["datasets"].pop("val")
    trainer = Trainer(load_options(write_options(tmp_path / "o.yml", options)))
    dataset = trainer.train_set
    for position in range(4):
        sample, group = dataset[(0, position)], dataset.groups[position]
        top, left, size = sample["box"].tolist()
        cached = dataset.choose_gt.quality(position, group, CropBox(top, left, size))  # the score cache's Q there
        expected = [-math.inf if i and gt.label == "Negative" else float(cached[i]) for i, gt in enumerate(group.gts)]
        assert sample["ranked_q"][:len(group.gts)].tolist() == pytest.approx(expected)
        assert torch.equal(sample["ranked_gts"][int(sample["gt_index"])], sample["gt"])  # augmented alike
        assert torch.equal(sample["ranked_gts"][0], sample["original"])
    output = trainer.run_iteration(trainer.training_batches())[0]
    assert torch.isfinite(output.losses["l_g_rank"]) and output.losses["l_g_rank"] >= 0
    options["sampler"] = {"type": "upos"}
    with pytest.raises(OptionsError, match="'train.rank_opt' ranks each sample's GTs by the score cache's Q: it "
                                           "needs sampler.type sma, smp or amo \\(cached\\), not upos"):
        load_options(write_options(tmp_path / "upos.yml", options))
