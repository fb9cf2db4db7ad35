"""Sampler correctness against their formulas: frequencies over many draws, with a stated tolerance."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from sr_iqa.config.schema import SamplerType
from sr_iqa.data.datasets import CropBox
from sr_iqa.data.groups import GroundTruth, Group
from sr_iqa.sampling.choosers import CachedScoreSampler, as_quality, probabilities, softmax

DRAWS = 20_000


def _group(labels: list[str | None]) -> Group:
    gts = [GroundTruth("original", Path("o.png"))]
    gts += [GroundTruth(f"{i:02d}", Path(f"{i}.png"), label) for i, label in enumerate(labels, start=1)]
    return Group("g", tuple(gts))


def _frequencies(chooser, group: Group, seed: int = 0) -> np.ndarray:
    counts = np.zeros(len(group.gts))
    box = CropBox(0, 0, 8)
    for i in range(DRAWS):
        counts[chooser.choose(0, group, box, np.random.default_rng([seed, i]))] += 1
    return counts / DRAWS


def _tolerance(p: np.ndarray) -> np.ndarray:
    """Five standard errors of a binomial proportion: a false alarm is rarer than 1 in 10^6 per entry."""
    return 5 * np.sqrt(p * (1 - p) / DRAWS) + 1e-9


GROUP = _group(["Positive", "Similar", "Positive", "Negative"])
SCORES = np.array([60.0, 62.5, 58.0, 61.0, 55.0])  # a higher-is-better metric, MUSIQ-like


@pytest.mark.parametrize("tau", [0.5, 2.0, 10.0])
def test_sma_frequencies_match_softmax_over_all(tau):
    expected = np.exp(SCORES / tau) / np.exp(SCORES / tau).sum()
    observed = _frequencies(CachedScoreSampler(SamplerType.sma, tau, full=[SCORES]), GROUP)
    assert np.all(np.abs(observed - expected) <= _tolerance(expected))


@pytest.mark.parametrize("tau", [0.5, 2.0, 10.0])
def test_smp_frequencies_match_softmax_over_positives(tau):
    positives = [1, 3]
    expected = np.zeros(5)
    expected[positives] = np.exp(SCORES[positives] / tau) / np.exp(SCORES[positives] / tau).sum()
    observed = _frequencies(CachedScoreSampler(SamplerType.smp, tau, full=[SCORES]), GROUP)
    assert np.all(np.abs(observed - expected) <= _tolerance(expected))
    assert observed[[0, 2, 4]].sum() == 0


def test_upos_is_uniform_over_positives_and_falls_back_to_the_original():
    expected = np.array([0, 0.5, 0, 0.5, 0])
    observed = _frequencies(CachedScoreSampler(SamplerType.upos), GROUP)
    assert np.all(np.abs(observed - expected) <= _tolerance(expected))
    no_positive = _group(["Similar", "Negative", "Similar", "Similar"])
    assert _frequencies(CachedScoreSampler(SamplerType.upos), no_positive)[0] == 1.0
    assert probabilities(SamplerType.smp, no_positive, SCORES, 1.0).tolist() == [1, 0, 0, 0, 0]


def test_rand_is_uniform_over_all_gts():
    expected = np.full(5, 0.2)
    observed = _frequencies(CachedScoreSampler(SamplerType.rand), GROUP)
    assert np.all(np.abs(observed - expected) <= _tolerance(expected))


@pytest.mark.parametrize(("lower_better", "best"), [(False, 1), (True, 4)])
def test_amo_is_the_argmax_at_the_crop_for_either_direction(lower_better, best):
    box = CropBox(top=32, left=16, size=96)  # on a stride-16 grid: row 2, column 1
    raw = np.zeros((5, 3, 3))
    raw[:, 2, 1] = [60.0, 70.0, 65.0, 62.0, 50.0]
    raw[:, 0, 0] = [90.0, 10.0, 10.0, 10.0, 10.0]  # another crop with another winner must not matter
    chooser = CachedScoreSampler(SamplerType.amo, crops=[as_quality(raw, lower_better)], box_stride=16,
                                 grid_stride=16)
    assert {chooser.choose(0, GROUP, box, np.random.default_rng(i)) for i in range(20)} == {best}
    assert chooser.quality(0, GROUP, box).tolist() == as_quality(raw[:, 2, 1], lower_better).tolist()


def test_ties_resolve_to_the_lowest_index():
    tied = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    assert probabilities(SamplerType.amo, GROUP, tied, 1.0).tolist() == [0, 1, 0, 0, 0]


def test_as_quality_turns_lower_better_scores_around():
    assert as_quality([3.0, 5.0], lower_better=True).tolist() == [-3.0, -5.0]
    assert np.allclose(softmax(np.array([0.0, 0.0]), 1.0), [0.5, 0.5])


def test_preview_probabilities_equal_softmax_of_the_exported_scores(tmp_path: Path):
    import csv

    from conftest import run_cli
    from hggt_tree import VOTES, write_hggt_split

    root = tmp_path / "HGGT"
    write_hggt_split(root / "Train" / "images" / "s", root / "Train" / "labels" / "s", VOTES, size=96)
    cache, exported, previewed = tmp_path / "c.db", tmp_path / "scores.csv", tmp_path / "preview.csv"
    assert run_cli("score", "--dataset", str(root), "--metric", "niqe", "--cache", str(cache)).returncode == 0
    assert run_cli("scores", "export", "--cache", str(cache), "--out", str(exported)).returncode == 0
    tau = 0.7
    result = run_cli("sampler", "preview", "--dataset", str(root), "--cache", str(cache), "--sampler", "sma",
                     "--metric", "niqe", "--tau", str(tau), "--out", str(previewed))
    assert result.returncode == 0, result.stderr
    assert "mean score of the expected chosen GT" in result.stdout

    with open(exported) as handle:
        score_of = {Path(row["image"]).name: float(row["score"]) for row in csv.DictReader(handle)}
    with open(previewed) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["slot"] for r in rows[:5]] == ["original", "01", "02", "03", "04"]
    for start in range(0, len(rows), 5):
        group = rows[start:start + 5]
        names = [f"{r['group']}.png" if r["slot"] == "original" else f"{r['group']}_{r['slot']}.png" for r in group]
        q = -np.array([score_of[name] for name in names])  # NIQE: lower is better
        expected = np.exp(q / tau) / np.exp(q / tau).sum()
        np.testing.assert_allclose([float(r["probability"]) for r in group], expected, rtol=1e-9)
        assert [float(r["score"]) for r in group] == [score_of[name] for name in names]


def test_preview_of_two_metrics_shows_their_normalised_sum(tmp_path: Path):
    """`--metric niqe:1 --metric piqe:2`: each GT's Q is 1 (-niqe - c_niqe) / r_niqe + 2 (-piqe - c_piqe) / r_piqe,
    c the median and r 1.4826 x the MAD of the oriented scores of every training GT (worked out here from the
    exported scores), and SMA's probabilities are the softmax of Q / tau."""
    import csv

    from conftest import run_cli
    from hggt_tree import VOTES, write_hggt_split

    root = tmp_path / "HGGT"
    write_hggt_split(root / "Train" / "images" / "s", root / "Train" / "labels" / "s", VOTES, size=96)
    cache, exported, previewed = tmp_path / "c.db", tmp_path / "scores.csv", tmp_path / "preview.csv"
    scored = run_cli("score", "--dataset", str(root), "--metric", "niqe", "--metric", "piqe", "--cache", str(cache))
    assert scored.returncode == 0, scored.stderr
    assert run_cli("scores", "export", "--cache", str(cache), "--out", str(exported)).returncode == 0
    result = run_cli("sampler", "preview", "--dataset", str(root), "--cache", str(cache), "--sampler", "sma",
                     "--metric", "niqe:1", "--metric", "piqe:2", "--tau", "0.5", "--out", str(previewed))
    assert result.returncode == 0, result.stderr
    with open(exported) as handle:
        score_of: dict[str, dict[str, float]] = {}
        for row in csv.DictReader(handle):
            score_of.setdefault(row["metric"], {})[Path(row["image"]).name] = float(row["score"])
    terms = {}
    for metric, weight in (("niqe", 1.0), ("piqe", 2.0)):
        oriented = {name: -value for name, value in score_of[metric].items()}  # both lower-better
        centre = float(np.median(list(oriented.values())))
        spread = 1.4826 * float(np.median([abs(v - centre) for v in oriented.values()]))
        terms[metric] = {name: weight * (value - centre) / spread for name, value in oriented.items()}
    with open(previewed) as handle:
        rows = list(csv.DictReader(handle))
    for start in range(0, len(rows), 5):
        group = rows[start:start + 5]
        names = [f"{r['group']}.png" if r["slot"] == "original" else f"{r['group']}_{r['slot']}.png" for r in group]
        q = np.array([terms["niqe"][name] + terms["piqe"][name] for name in names])
        np.testing.assert_allclose([float(r["score"]) for r in group], q, rtol=1e-9)
        np.testing.assert_allclose([float(r["probability"]) for r in group], np.exp(q / 0.5) / np.exp(q / 0.5).sum(),
                                   rtol=1e-9)
    assert "Q = 1 x (" in result.stdout and "higher is better" in result.stdout


def test_upos_start_up_log_counts_groups_that_fall_back(caplog):
    import logging

    from sr_iqa.config.schema import SamplerOptions
    from sr_iqa.sampling.build import build_chooser

    groups = [GROUP, _group(["Similar", "Negative", "Similar", "Similar"]), _group(["Negative"] * 4)]
    with caplog.at_level(logging.INFO, logger="sr_iqa.sampling"):
        build_chooser(SamplerOptions(type=SamplerType.upos), groups, gt_size=8)
    assert "upos: 2 of 3 groups have no Positive and fall back to the original GT" in caplog.text


def test_excluded_labels_are_never_candidates_and_the_rest_keep_the_formula():
    # GROUP: original, P, S, P, N; the Negative (index 4) is excluded.
    exclude = ("Negative",)
    rand = _frequencies(CachedScoreSampler(SamplerType.rand, exclude_labels=exclude), GROUP)
    uniform = np.array([0.25, 0.25, 0.25, 0.25, 0.0])
    assert np.all(np.abs(rand - uniform) <= _tolerance(uniform))
    tau = 2.0
    expected = np.zeros(5)
    expected[:4] = np.exp(SCORES[:4] / tau) / np.exp(SCORES[:4] / tau).sum()
    sma = _frequencies(CachedScoreSampler(SamplerType.sma, tau, full=[SCORES], exclude_labels=exclude), GROUP)
    assert np.all(np.abs(sma - expected) <= _tolerance(expected))
    best_is_negative = np.array([1.0, 2.0, 3.0, 4.0, 9.0])  # the Negative has the best score
    assert probabilities(SamplerType.amo, GROUP, best_is_negative, 1.0).argmax() == 4
    assert probabilities(SamplerType.amo, GROUP, best_is_negative, 1.0, exclude).tolist() == [0, 0, 0, 1, 0]


def test_an_unscorable_gt_is_never_the_argmax_and_all_unscorable_is_uniform():
    q = as_quality([np.nan, 3.0, np.nan, 5.0, 4.0], lower_better=True)  # NIQE: lower is better; NaN: no score
    assert probabilities(SamplerType.amo, GROUP, q, 1.0).tolist() == [0, 1, 0, 0, 0]
    nothing = as_quality([np.nan] * 5, lower_better=False)
    assert probabilities(SamplerType.sma, GROUP, nothing, 1.0) == pytest.approx([0.2] * 5)


def test_one_crop_grid_for_every_sampler_makes_an_ablation_fair(demo_set, tmp_path: Path):
    """Cached AMO can only crop where the cache has scores; with sampler.box_stride every sampler crops there."""
    from conftest import tiny_options, write_options

    from sr_iqa.checked_options import load_options
    from sr_iqa.data.datasets import MultiGTCropDataset
    from sr_iqa.data.groups import index_hggt
    from sr_iqa.errors import OptionsError
    from sr_iqa.sampling.build import build_chooser

    index = index_hggt(demo_set.train_images, demo_set.train_labels)
    options = load_options(write_options(tmp_path / "o.yml", tiny_options(demo_set, tmp_path)),
                           ["sampler.type=upos", "sampler.box_stride=16"])

    def corners(chooser) -> set[int]:
        dataset = MultiGTCropDataset(index, 32, seed=0, choose_gt=chooser)
        return {int(v) for epoch in range(4) for i in range(len(dataset)) for v in dataset[(epoch, i)]["box"][:2]}

    assert all(v % 16 == 0 for v in corners(build_chooser(options.sampler, index.groups, 32)))
    anywhere = load_options(tmp_path / "o.yml", ["sampler.type=upos"]).sampler
    assert any(v % 16 for v in corners(build_chooser(anywhere, index.groups, 32)))
    with pytest.raises(OptionsError, match="a multiple of 'sampler.grid_stride'"):
        load_options(tmp_path / "o.yml", ["sampler={type: amo, metric: niqe, cache: c.db, grid_stride: 32}",
                                          "sampler.box_stride=48"])


def test_sampler_metric_is_the_pyiqa_name_also_when_the_metric_has_options(demo_set, tmp_path: Path):
    """`score` stores a metric with options under ``name {options}``; `sampler.metric` is the name alone, as online
    AMO and `score --metric` spell it, and the options come from iqa.metric_options. A cache without those options'
    scores says which key it lacks and how to score it."""
    from sr_iqa.config.schema import SamplerOptions, SamplerType
    from sr_iqa.data.groups import index_hggt
    from sr_iqa.errors import DataError
    from sr_iqa.iqa.score_cache import ScoreCache, metric_key
    from sr_iqa.sampling.build import build_chooser

    groups = index_hggt(demo_set.train_images, demo_set.train_labels).groups[:3]
    options = {"pretrained_model_path": "/w/musiq.pth"}
    key = metric_key("musiq", options)
    assert key == 'musiq {"pretrained_model_path": "/w/musiq.pth"}'
    cache = ScoreCache(tmp_path / "scores.db")
    records = cache.records([gt.path for group in groups for gt in group.gts])
    cache.put([(r.content_hash, key, r.full.x, r.full.y, r.full.w, r.full.h, float(i % 5), False)
               for i, r in enumerate(records)])
    cache.close()

    sampler = SamplerOptions(type=SamplerType.sma, metric="musiq", cache=str(tmp_path / "scores.db"), tau=0.5)
    chooser = build_chooser(sampler, groups, 32, {"musiq": options})
    stored = iter(float(i % 5) for i in range(len(records)))  # MUSIQ is higher-better: Q is the stored score
    assert [list(q) for q in chooser.full] == [[next(stored) for _ in group.gts] for group in groups]
    # The command that writes them: the data and the metric options from the same option file, into this cache.
    command = re.escape(f"run `sr-iqa score -opt <this option file> --metric musiq --cache {tmp_path / 'scores.db'}`")
    with pytest.raises(DataError, match=r"holds no 'musiq' scores \(it has: musiq \{.*\}\); " + command + "$"):
        build_chooser(sampler, groups, 32)
    with pytest.raises(DataError, match=r"holds no 'musiq \{\"pretrained_model_path\": \"/other\"\}' scores .*"
                                        + command):
        build_chooser(sampler, groups, 32, {"musiq": {"pretrained_model_path": "/other"}})


def test_preview_of_a_release_root_shows_each_training_group_once(tmp_path: Path):
    """Test-100 repeats the training groups' names in the copy (as HGGT's layout allows); the preview is of what the
    sampler sees, the Train sets, each group once."""
    import csv

    from conftest import run_cli
    from hggt_tree import write_hggt_release

    root = write_hggt_release(tmp_path / "HGGT", size=96)
    cache, previewed = tmp_path / "c.db", tmp_path / "preview.csv"
    assert run_cli("score", "--dataset", str(root), "--metric", "niqe", "--cache", str(cache)).returncode == 0
    result = run_cli("sampler", "preview", "--dataset", str(root), "--cache", str(cache), "--sampler", "upos",
                     "--metric", "niqe", "--out", str(previewed))
    assert result.returncode == 0, result.stderr
    with open(previewed) as handle:
        groups = [row["group"] for row in csv.DictReader(handle) if row["slot"] == "original"]
    train = sorted(p.stem for p in (root / "Train" / "images").glob("*/original/*.png"))
    assert sorted(groups) == train and len(set(groups)) == len(groups)
