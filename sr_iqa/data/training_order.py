"""Which sample every rank trains on at every step: a pure function of (seed, step, rank).

Each sample is addressed by a key ``(epoch, index)``. The dataset derives all of its
randomness (crop box, flips) from ``(seed, epoch, index)``, so a batch does not depend on
worker count, on RNG state, or on whether the run was resumed: resuming at step N simply
starts this stream at step N. Epoch e visits the dataset in the permutation seeded by
``(seed, e)``; consecutive global positions go to ranks in turn, so ranks never share a sample
within an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np
from torch.utils.data import Sampler


@lru_cache(maxsize=4)
def epoch_permutation(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_samples)


class TrainingSampleOrder(Sampler):
    """Infinite stream of ``(epoch, index)`` keys for one rank, ``batch_size`` keys per step: the order in which
    groups are visited (a torch ``Sampler`` for the DataLoader), not which GT supervises them (``sr_iqa.sampling``)."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 start_step: int = 0) -> None:
        if num_samples < 1:
            raise ValueError("the training set is empty")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step

    def keys_for_step(self, step: int) -> list[tuple[int, int]]:
        first = (step * self.world_size + self.rank) * self.batch_size
        keys = []
        for position in range(first, first + self.batch_size):
            epoch, offset = divmod(position, self.num_samples)
            keys.append((epoch, int(epoch_permutation(self.num_samples, self.seed, epoch)[offset])))
        return keys

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = self.start_step
        while True:
            yield from self.keys_for_step(step)
            step += 1
