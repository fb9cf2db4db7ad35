"""HGGT's negative-GT loss and the training-pair pool."""

from __future__ import annotations

import torch

from sr_iqa.losses import NegativeGTLoss, local_variance, negative_weight_map
from sr_iqa.train.pair_pool import TrainingPairPool


def test_local_variance_of_a_constant_is_zero_and_of_a_checkerboard_is_positive():
    assert torch.all(local_variance(torch.full((1, 1, 8, 8), 0.3), 3) < 1e-7)
    board = (torch.arange(64).view(8, 8) % 2 == torch.arange(8).view(8, 1) % 2).float()[None, None]
    assert torch.all(local_variance(board, 3) > 0.1)


def test_negative_loss_is_zero_where_the_mask_is_zero():
    original = torch.rand(2, 3, 16, 16)
    positive, negative = original.clone(), original.clone()  # nothing differs: the weight map is all zero
    sr = torch.rand(2, 3, 16, 16, requires_grad=True)
    loss = NegativeGTLoss(loss_weight=1.0)(sr, original, positive, negative, torch.tensor([True, True]))
    assert loss.item() == 0
    loss.backward()
    assert torch.all(sr.grad == 0)


def test_negative_loss_matches_its_formula_on_a_hand_made_case():
    original = torch.zeros(1, 3, 8, 8)
    positive = original.clone()
    negative = original.clone()
    negative[..., 2:6, 2:6] = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(2, 2)  # a textured artefact
    sr = torch.full((1, 3, 8, 8), 0.25)
    window, weight_factor = 3, 0.5

    difference = negative.mean(1, keepdim=True)  # |original - negative|, channel mean
    pooled = torch.nn.functional.avg_pool2d
    mean = pooled(difference, window, 1, window // 2, count_include_pad=False)
    variance = pooled(difference**2, window, 1, window // 2, count_include_pad=False) - mean**2
    weight = variance / variance.max()
    expected = -weight_factor * (weight * (sr - negative).abs()).mean()

    loss = NegativeGTLoss(loss_weight=weight_factor, window_size=window)(sr, original, positive, negative,
                                                                        torch.tensor([True]))
    torch.testing.assert_close(loss, expected)
    assert torch.equal(negative_weight_map(original, positive, negative, window)[0, 0, 0, 0], torch.tensor(0.0))


def test_samples_without_a_negative_contribute_nothing():
    original = torch.zeros(2, 3, 8, 8)
    negative = torch.rand(2, 3, 8, 8)
    sr = torch.rand(2, 3, 8, 8)
    loss_fn = NegativeGTLoss(loss_weight=1.0)
    both = loss_fn(sr, original, original, negative, torch.tensor([True, True]))
    first_only = loss_fn(sr, original, original, negative, torch.tensor([True, False]))
    first_alone = loss_fn(sr[:1], original[:1], original[:1], negative[:1], torch.tensor([True]))
    assert both < first_only < 0
    torch.testing.assert_close(first_only, first_alone / 2)


def test_pair_pool_passes_batches_until_full_then_returns_earlier_samples():
    pool = TrainingPairPool(queue_size=4)
    batches = [{"lq": torch.full((2, 1), float(i * 2)) + torch.tensor([[0.0], [1.0]])} for i in range(4)]
    assert torch.equal(pool.exchange(batches[0])["lq"], batches[0]["lq"])
    assert torch.equal(pool.exchange(batches[1])["lq"], batches[1]["lq"])
    torch.manual_seed(0)
    out = pool.exchange(batches[2])["lq"].flatten().tolist()
    assert set(out) <= {0.0, 1.0, 2.0, 3.0} and len(set(out)) == 2  # two of the four stored samples
    stored = sorted(pool.queue["lq"].flatten().tolist())
    assert stored == sorted({0.0, 1.0, 2.0, 3.0, 4.0, 5.0} - set(out))  # the new batch took their place

    restored = TrainingPairPool(queue_size=4)
    restored.load_state_dict(pool.state_dict())
    torch.manual_seed(1)
    expected = pool.exchange(batches[3])["lq"]
    torch.manual_seed(1)
    assert torch.equal(restored.exchange(batches[3])["lq"], expected)
