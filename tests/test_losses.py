"""HGGT's negative-GT loss and the training-pair pool."""

from __future__ import annotations

import torch

from sr_iqa.losses import NegativeGTLoss, local_variance
from sr_iqa.train.pair_pool import TrainingPairPool


def test_local_variance_of_a_constant_is_zero_and_of_a_checkerboard_is_positive():
    assert torch.all(local_variance(torch.full((1, 1, 8, 8), 0.3), 3) < 1e-7)
    board = (torch.arange(64).view(8, 8) % 2 == torch.arange(8).view(8, 1) % 2).float()[None, None]
    assert torch.all(local_variance(board, 3) > 0.1)


def _one_pixel(y: int, x: int, value: float = 1.0) -> torch.Tensor:
    """A 3x3 RGB image that is zero but for ``value`` in the red channel at (y, x)."""
    image = torch.zeros(1, 3, 3, 3)
    image[0, 0, y, x] = value
    return image


# HGGT's local weight of a 3x3 residual map that is d at its centre and 0 elsewhere, worked out by hand: with
# reflected borders the 5x5 padded map holds d at rows and columns {0, 2, 4}, so a corner's 3x3 window sees d
# four times (unbiased variance (4 - 16/9) / 8 = 5/18 d^2), an edge's twice (7/36 d^2), the centre's once (1/9).
CENTRE_VARIANCE = torch.tensor([[5 / 18, 7 / 36, 5 / 18], [7 / 36, 1 / 9, 7 / 36], [5 / 18, 7 / 36, 5 / 18]])
# d at the corner (0, 0) instead: only the padded (1, 1) holds d, seen once by the windows of (0..1, 0..1).
CORNER_VARIANCE = torch.tensor([[1 / 9, 1 / 9, 0.0], [1 / 9, 1 / 9, 0.0], [0.0, 0.0, 0.0]])


def _loss(sr, original, reference, negative, reference_votes, negative_votes, has_positive, has_negative,
          weight=300.0):
    return NegativeGTLoss(loss_weight=weight)(
        sr, original, reference, negative, torch.tensor(reference_votes), torch.tensor(negative_votes),
        torch.tensor(has_positive), torch.tensor(has_negative))


def test_hggts_local_variance_on_hand_worked_maps():
    torch.testing.assert_close(local_variance(_one_pixel(1, 1)[:, :1], 3)[0, 0], CENTRE_VARIANCE)
    torch.testing.assert_close(local_variance(_one_pixel(0, 0)[:, :1], 3)[0, 0], CORNER_VARIANCE)


def test_negative_term_without_a_positive_uses_the_unrefined_negative_map():
    # No Positive: the original is the reference and the map is not refined. Negative with 2 of 3 votes:
    # m = 2/3 * V^(3/4); SR sits 0.1 above the Negative everywhere, so the term is -300 * 0.1 * mean(m).
    original, negative = torch.zeros(1, 3, 3, 3), _one_pixel(1, 1)
    sr = negative + 0.1
    loss = _loss(sr, original, original, negative, [3], [2], [False], [True])
    expected_map = 2 / 3 * CENTRE_VARIANCE ** 0.75
    torch.testing.assert_close(loss, torch.tensor(-300 * 0.1 * expected_map.mean().item()))


def test_negative_term_is_zeroed_where_the_positive_map_dominates():
    # The reference Positive (3 of 3 votes) changed the corner pixel: its map is (1/9)^(3/4) = 0.192 on the four
    # top-left pixels. The Negative's map there: corner 2/3 (5/18)^(3/4) = 0.255 and edges 2/3 (7/36)^(3/4) =
    # 0.195 stay; the centre 2/3 (1/9)^(3/4) = 0.128 is zeroed; elsewhere the Positive's map is 0 and the
    # Negative's stays.
    original, negative, reference = torch.zeros(1, 3, 3, 3), _one_pixel(1, 1), _one_pixel(0, 0)
    sr = negative + 0.1
    negative_map = 2 / 3 * CENTRE_VARIANCE ** 0.75
    refined = negative_map.clone()
    refined[1, 1] = 0.0
    loss = _loss(sr, original, reference, negative, [3], [2], [True], [True])
    torch.testing.assert_close(loss, torch.tensor(-300 * 0.1 * refined.mean().item()))
    # The same Positive with no refinement asked for (has_positive false) leaves the centre in.
    unrefined = _loss(sr, original, reference, negative, [3], [2], [False], [True])
    torch.testing.assert_close(unrefined, torch.tensor(-300 * 0.1 * negative_map.mean().item()))


def test_samples_without_a_negative_count_in_the_batch_and_add_nothing():
    original, negative = torch.zeros(2, 3, 3, 3), _one_pixel(1, 1).repeat(2, 1, 1, 1)
    sr = negative + 0.1
    both = _loss(sr, original, original, negative, [3, 3], [2, 2], [False, False], [True, True])
    first_only = _loss(sr, original, original, negative, [3, 3], [2, 2], [False, False], [True, False])
    alone = _loss(sr[:1], original[:1], original[:1], negative[:1], [3], [2], [False], [True])
    torch.testing.assert_close(first_only, alone / 2)  # HGGT divides by the batch size B
    torch.testing.assert_close(both, alone)


def test_the_negative_term_pushes_sr_away_from_the_negative_gt():
    original, negative = torch.zeros(1, 3, 3, 3), _one_pixel(1, 1)
    sr = (negative + 0.1).requires_grad_(True)
    _loss(sr, original, original, negative, [3], [3], [False], [True]).backward()
    assert torch.all(sr.grad <= 0) and torch.any(sr.grad < 0)  # a descent step raises SR further above it


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


def test_pair_pool_exchanges_rows_in_place_without_copying_the_queue():
    """At recipe sizes a queue tensor is about 140 MB: only the exchanged rows may move, not the whole queue."""
    pool = TrainingPairPool(queue_size=8)
    for i in range(4):
        pool.exchange({"lq": torch.full((2, 3), float(i))})
    storage = pool.queue["lq"].data_ptr()
    before = pool.queue["lq"].clone()
    out = pool.exchange({"lq": torch.full((2, 3), 9.0)})["lq"]
    assert pool.queue["lq"].data_ptr() == storage  # the same tensor, updated in place
    changed = (pool.queue["lq"] != before).any(dim=1)
    assert int(changed.sum()) == 2 and torch.all(pool.queue["lq"][changed] == 9.0)
    assert sorted(out[:, 0].tolist()) == sorted(before[changed][:, 0].tolist())  # what came out is what left
