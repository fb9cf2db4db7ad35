"""The sample order is a pure function of (seed, step, rank); so is every crop."""

from __future__ import annotations

from itertools import islice

import torch

from sr_iqa.data.datasets import MultiGTCropDataset
from sr_iqa.data.groups import index_hggt
from sr_iqa.data.training_order import TrainingSampleOrder


def _keys(order: TrainingSampleOrder, steps: int) -> list[tuple[int, int]]:
    return list(islice(iter(order), steps * order.batch_size))


def test_ranks_split_each_epoch_without_overlap_and_cover_it():
    num_samples, batch, world = 12, 2, 3
    steps = num_samples // (batch * world)  # exactly one epoch
    per_rank = [_keys(TrainingSampleOrder(num_samples, batch, seed=5, rank=r, world_size=world), steps)
                for r in range(world)]
    seen = [key for keys in per_rank for key in keys]
    assert len(seen) == len(set(seen)) == num_samples
    assert {epoch for epoch, _ in seen} == {0}
    assert sorted(index for _, index in seen) == list(range(num_samples))


def test_every_epoch_is_a_fresh_permutation():
    keys = _keys(TrainingSampleOrder(10, 5, seed=1), steps=4)
    epoch0 = [index for epoch, index in keys if epoch == 0]
    epoch1 = [index for epoch, index in keys if epoch == 1]
    assert sorted(epoch0) == sorted(epoch1) == list(range(10))
    assert epoch0 != epoch1


def test_starting_at_step_n_continues_the_same_stream():
    full = _keys(TrainingSampleOrder(7, 3, seed=2, rank=1, world_size=2), steps=10)
    resumed = _keys(TrainingSampleOrder(7, 3, seed=2, rank=1, world_size=2, start_step=4), steps=6)
    assert resumed == full[4 * 3:]


def test_seed_changes_the_order():
    assert _keys(TrainingSampleOrder(50, 4, seed=1), 3) != _keys(TrainingSampleOrder(50, 4, seed=2), 3)


def test_crop_depends_only_on_seed_epoch_and_index(demo_set):
    dataset = MultiGTCropDataset(index_hggt(demo_set.train_images, demo_set.train_labels), gt_size=32, seed=3)
    first = dataset[(2, 1)]["gt"]
    dataset[(0, 0)]  # other draws in between must not matter
    torch.manual_seed(123)
    assert torch.equal(dataset[(2, 1)]["gt"], first)
    assert not torch.equal(dataset[(3, 1)]["gt"], first)
    assert first.shape == (3, 32, 32)
