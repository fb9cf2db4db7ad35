"""The ranked-GT preference loss (train.rank_opt) on cases worked out by hand: which pairs it forms, its value,
its sign, and the samples that add nothing."""

from __future__ import annotations

import math

import pytest
import torch

from sr_iqa.losses import RankedGTLoss


def _flat(*values: float) -> torch.Tensor:
    """One sample's GTs, each flat at a value: |SR - GT| is then that value's distance everywhere."""
    return torch.stack([torch.full((3, 4, 4), v) for v in values])[None]


def test_value_in_the_hinge_limit_worked_by_hand():
    """SR = 0; GTs at 0.1, 0.3, 0.5, 0.7 with Q 4, 1, 3, 2: best first 0.1 (Q 4), 0.5 (Q 3), 0.7 (Q 2), 0.3 (Q 1).
    Two pairs each way: tops {0.1, 0.5}, bottoms {0.7, 0.3}. Hinge costs max(0, d_top - d_bottom + 0.05):
    0.1-0.7, 0.1-0.3, 0.5-0.7 -> 0; 0.5-0.3 -> 0.25. Mean of the four pairs: 0.0625, times the weight 2."""
    loss = RankedGTLoss(loss_weight=2.0, pairs=2, margin=0.05, temperature=1e-5)
    value = loss(torch.zeros(1, 3, 4, 4), _flat(0.1, 0.3, 0.5, 0.7), torch.tensor([[4.0, 1.0, 3.0, 2.0]]))
    assert value.item() == pytest.approx(2 * 0.0625, abs=1e-5)


def test_value_with_its_temperature_worked_by_hand():
    """One pair (best 0.1 vs worst 0.3 from SR = 0), t = 0.1, no margin: 0.1 * log(1 + e^(-0.2 / 0.1))."""
    loss = RankedGTLoss(pairs=1, margin=0.0, temperature=0.1)
    value = loss(torch.zeros(1, 3, 4, 4), _flat(0.1, 0.3, 0.2), torch.tensor([[3.0, 1.0, 2.0]]))
    assert value.item() == pytest.approx(0.1 * math.log1p(math.exp(-2.0)), rel=1e-5)


def test_the_loss_falls_as_sr_moves_towards_the_best_gt():
    loss = RankedGTLoss(pairs=1, margin=0.1, temperature=0.05)
    gts, q = _flat(0.8, 0.2), torch.tensor([[2.0, 1.0]])  # the best GT is the bright one
    values = [loss(torch.full((1, 3, 4, 4), level), gts, q).item() for level in (0.2, 0.5, 0.8)]
    assert values[0] > values[1] > values[2]
    sr = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    loss(sr, gts, q).backward()
    assert (sr.grad < 0).all()  # a gradient step raises SR towards 0.8, away from 0.2


def test_excluded_and_lone_gts_add_nothing():
    loss = RankedGTLoss(pairs=1, margin=0.0, temperature=1e-5)
    sr = torch.zeros(2, 3, 4, 4)
    gts = torch.cat([_flat(0.5, 0.1, 0.9), _flat(0.5, 0.1, 0.9)])
    # Sample 0: the best (0.5) against the worst valid (0.1; 0.9 excluded): 0.5 - 0.1 = 0.4. Sample 1: one valid GT.
    q = torch.tensor([[2.0, 1.0, -math.inf], [2.0, -math.inf, -math.inf]])
    assert loss(sr, gts, q).item() == pytest.approx(0.4, abs=1e-5)  # sample 1 is not in the mean
    assert loss(sr[1:], gts[1:], q[1:]).item() == 0.0


@pytest.mark.parametrize("kwargs", [{"pairs": 0}, {"margin": -0.1}, {"temperature": 0.0},
                                    {"exclude_labels": ["Great"]}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RankedGTLoss(**kwargs)
