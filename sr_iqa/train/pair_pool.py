"""The training-pair pool of HGGT and Real-ESRGAN: batches are swapped through a shuffled queue.

Synthesised LR images of one batch are correlated (one resize factor, one noise type per
batch); the pool mixes samples across batches. Unlike the original, the pool is part of
the checkpoint (each rank's own), so a resumed run continues with the same queues.
"""

from __future__ import annotations

from pathlib import Path

import torch


class TrainingPairPool:
    """One per process: each rank mixes its own samples. Saved per rank (``pair_pool_<rank>.pt`` in the training
    state), so a resumed multi-GPU run continues every rank's own queue."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self.queue: dict[str, torch.Tensor] = {}
        self.filled = 0

    def exchange(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Until the queue is full the batch passes through and is stored; then ``size`` random stored samples
        come out and the batch takes their places (HGGT's shuffle-and-take-the-first, without moving the rest
        of the queue: only the exchanged rows are copied)."""
        size = next(iter(batch.values())).size(0)
        if self.queue_size % size:
            raise ValueError(f"queue_size {self.queue_size} is not a multiple of the batch size {size}")
        if not self.queue:
            self.queue = {k: v.new_zeros((self.queue_size, *v.shape[1:])) for k, v in batch.items()}
        for name, value in batch.items():  # after a resume the queue comes from the CPU
            if self.queue[name].device != value.device:
                self.queue[name] = self.queue[name].to(value.device)
        if self.filled < self.queue_size:
            for name, value in batch.items():
                self.queue[name][self.filled:self.filled + size] = value.detach()
            self.filled += size
            return batch
        rows = torch.randperm(self.queue_size, device="cpu")[:size]
        out = {}
        for name, value in batch.items():
            index = rows.to(value.device)
            out[name] = self.queue[name].index_select(0, index)
            self.queue[name].index_copy_(0, index, value.detach())
        return out

    def state_dict(self) -> dict:
        """A snapshot: the queue is updated in place afterwards."""
        return {"filled": self.filled, "queue": {k: v.detach().cpu().clone() for k, v in self.queue.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.filled = int(state["filled"])
        self.queue = dict(state["queue"])

    def save(self, folder: Path, rank: int) -> None:
        torch.save(self.state_dict(), folder / f"pair_pool_{rank}.pt")

    def load(self, folder: Path, rank: int) -> bool:
        """This rank's queue from a training state (tensors only: read with ``weights_only``); False when the
        state has none for this rank (it was saved by fewer processes), in which case the queue starts empty."""
        path = folder / f"pair_pool_{rank}.pt"
        if not path.is_file():
            return False
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return True
