"""The choice contrast's arms (sampler.choose, include_original, shuffle_seed): arms that see enhanced targets
equally often and differ only in which GT they pick. Checked against hand-worked cases and their formulas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sr_iqa.config.schema import QChoice, SamplerOptions, SamplerType
from sr_iqa.data.datasets import CropBox
from sr_iqa.data.groups import GroundTruth, Group
from sr_iqa.errors import OptionsError
from sr_iqa.sampling.choosers import CachedScoreSampler, probabilities

DRAWS = 20_000


def _group(name: str = "g") -> Group:
    gts = [GroundTruth("original", Path("o.png"))]
    gts += [GroundTruth(f"{i:02d}", Path(f"{i}.png"), label)
            for i, label in enumerate(["Positive", "Similar", "Positive", "Negative"], start=1)]
    return Group(name, tuple(gts))


GROUP = _group()


def _frequencies(chooser: CachedScoreSampler) -> np.ndarray:
    counts = np.zeros(len(GROUP.gts))
    for i in range(DRAWS):
        counts[chooser.choose(0, GROUP, CropBox(0, 0, 8), np.random.default_rng([5, i]))] += 1
    return counts / DRAWS


def _tolerance(p: np.ndarray) -> np.ndarray:
    return 5 * np.sqrt(p * (1 - p) / DRAWS) + 1e-9


def test_amo_best_and_worst_on_a_crop_grid_hand_worked():
    # Q (higher is better) of GTs 0..4 at two boxes of a 1 x 2 grid with stride 32.
    grid = np.array([[[5.0, 1.0]], [[7.0, 2.0]], [[3.0, 9.0]], [[6.0, 0.5]], [[4.0, 8.0]]])
    best = CachedScoreSampler(SamplerType.amo, crops=[grid], grid_stride=32, box_stride=32)
    worst = CachedScoreSampler(SamplerType.amo, crops=[grid], grid_stride=32, box_stride=32, worst=True)
    enhanced_worst = CachedScoreSampler(SamplerType.amo, crops=[grid], grid_stride=32, box_stride=32, worst=True,
                                        include_original=False)
    rng = np.random.default_rng(0)
    left, right = CropBox(0, 0, 32), CropBox(0, 32, 32)
    assert [best.choose(0, GROUP, box, rng) for box in (left, right)] == [1, 2]
    assert [worst.choose(0, GROUP, box, rng) for box in (left, right)] == [2, 3]  # 3.0 at left, 0.5 at right
    # without the original: the worst among 01..04 (left: 3.0 of GT 2; right: 0.5 of GT 3)
    grid[:, 0, 0] = [1.0, 7.0, 3.0, 6.0, 4.0]  # the original is now the worst at the left box
    assert worst.choose(0, GROUP, left, rng) == 0
    assert enhanced_worst.choose(0, GROUP, left, rng) == 2


def test_worst_never_picks_an_unscorable_gt():
    q = np.array([4.0, -np.inf, 2.0, 3.0, -np.inf])  # GTs 1 and 4 could not be scored
    assert probabilities(SamplerType.amo, GROUP, q, 1.0, worst=True).tolist() == [0, 0, 1, 0, 0]


@pytest.mark.parametrize("tau", [0.5, 3.0])
def test_sma_worst_frequencies_are_the_softmax_of_minus_q(tau):
    scores = np.array([60.0, 62.5, 58.0, 61.0, 55.0])
    expected = np.exp(-scores / tau) / np.exp(-scores / tau).sum()
    observed = _frequencies(CachedScoreSampler(SamplerType.sma, tau, full=[scores], worst=True))
    assert np.all(np.abs(observed - expected) <= _tolerance(expected))


def test_rand_and_sma_without_the_original_choose_among_the_enhanced_gts_only():
    quarter = np.array([0.0, 0.25, 0.25, 0.25, 0.25])
    rand = _frequencies(CachedScoreSampler(SamplerType.rand, include_original=False))
    assert rand[0] == 0 and np.all(np.abs(rand - quarter) <= _tolerance(quarter))
    scores = np.array([70.0, 60.0, 61.0, 62.0, 63.0])  # the original would win most draws
    expected = np.r_[0.0, np.exp(scores[1:]) / np.exp(scores[1:]).sum()]
    sma = _frequencies(CachedScoreSampler(SamplerType.sma, 1.0, full=[scores], include_original=False))
    assert np.all(np.abs(sma - expected) <= _tolerance(expected))


def test_a_group_whose_every_enhanced_gt_is_excluded_falls_back_to_the_original():
    assert probabilities(SamplerType.rand, GROUP, None, 1.0, ("Positive", "Similar", "Negative"),
                         include_original=False).tolist() == [1, 0, 0, 0, 0]


def test_shuffled_scores_agree_with_amo_as_often_as_chance(tmp_path: Path):
    """The negative control: with scores permuted among each group's 4 enhanced GTs, its pick is AMO's in about a
    quarter of the groups (binomial, 5 standard errors), and it never picks the original."""
    from sr_iqa.sampling.build import _maybe_shuffled

    rng = np.random.default_rng(11)
    groups = 800
    qualities = [rng.normal(size=(5, 1, 1)) for _ in range(groups)]
    shuffled = _maybe_shuffled([q.copy() for q in qualities], seed=3)
    assert all(sorted(a.ravel()) == sorted(b.ravel()) for a, b in zip(qualities, shuffled, strict=True))
    box = CropBox(0, 0, 32)
    picks = {}
    for name, crops in (("amo", qualities), ("shuffled", shuffled)):
        chooser = CachedScoreSampler(SamplerType.amo, crops=crops, grid_stride=32, include_original=False)
        picks[name] = [chooser.choose(i, _group(str(i)), box, rng) for i in range(groups)]
    agreement = np.mean(np.equal(picks["amo"], picks["shuffled"]))
    assert abs(agreement - 0.25) <= 5 * np.sqrt(0.25 * 0.75 / groups)
    assert 0 not in picks["shuffled"] and 0 not in picks["amo"]
    again = _maybe_shuffled([q.copy() for q in qualities], seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(shuffled, again, strict=True))  # the seed fixes it


def test_online_amo_worst_is_the_argmin_of_pyiqas_own_scores():
    """Online AMO with choose: worst against PIQE called by pyiqa on each crop alone (not the tensor the choice
    returns): the lowest-quality crop, which for PIQE is the highest score; never the original when left out."""
    import pyiqa

    from sr_iqa.data.datasets import LABEL_CODES
    from sr_iqa.iqa.metrics import create_metric
    from sr_iqa.sampling.online_amo import OnlineAmo

    generator = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 96, 96, generator=generator)
    candidates = torch.stack([(base + noise * torch.randn(1, 3, 96, 96, generator=generator)).clamp(0, 1)[0]
                              for noise in (0.0, 0.02, 0.3, 0.08, 0.15)])[None]
    reference = pyiqa.create_metric("piqe", device="cpu")
    alone = [float(reference(candidates[0, i:i + 1])) for i in range(5)]
    batch = {"candidates": candidates, "candidate_mask": torch.ones(1, 5, dtype=torch.bool),
             "flips": torch.zeros(1, 3, dtype=torch.bool),
             "labels": torch.tensor([[-1] + [LABEL_CODES["Positive"]] * 4])}
    metric = create_metric("piqe")
    for include_original in (True, False):
        for worst in (False, True):
            chosen = int(OnlineAmo(metric, None, include_original, worst).choose(batch)["gt_index"][0])
            pool = range(5) if include_original else range(1, 5)
            expected = (max if worst else min)(pool, key=lambda i: alone[i])  # PIQE: lower is better
            assert chosen == expected


@pytest.mark.parametrize(("block", "message"), [
    ({"type": "rand", "choose": "worst"}, "'sampler.choose: worst' needs a Q-driven sampler"),
    ({"type": "amo", "mode": "online", "metric": "niqe", "shuffle_seed": 1}, "'sampler.shuffle_seed' permutes"),
    ({"type": "upos", "include_original": False}, "'sampler.include_original: false' applies to rand, sma"),
])
def test_a_choice_the_sampler_cannot_make_is_named(block, message, demo_set, tmp_path):
    from conftest import tiny_options, write_options

    from sr_iqa.checked_options import load_options

    options = tiny_options(demo_set, tmp_path)
    options["sampler"] = block | ({"cache": str(tmp_path / "s.db")} if block["type"] != "upos" else {})
    with pytest.raises(OptionsError, match=message.replace("(", r"\(")):
        load_options(write_options(tmp_path / "o.yml", options))


def test_the_choice_options_load_with_their_types(demo_set, tmp_path):
    from conftest import tiny_options, write_options

    from sr_iqa.checked_options import load_options

    options = tiny_options(demo_set, tmp_path)
    options["sampler"] = {"type": "amo", "metric": "niqe", "cache": str(tmp_path / "s.db"), "choose": "worst",
                          "include_original": False, "shuffle_seed": 7}
    loaded = load_options(write_options(tmp_path / "o.yml", options)).sampler
    assert (loaded.choose, loaded.include_original, loaded.shuffle_seed) == (QChoice.worst, False, 7)
    assert isinstance(SamplerOptions().choose, QChoice)
