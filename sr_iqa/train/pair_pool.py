"""The training-pair pool of HGGT and Real-ESRGAN: batches are swapped through a shuffled queue.

Synthesised LR images of one batch are correlated (one resize factor, one noise type per
batch); the pool mixes samples across batches. Unlike the original, the pool is part of
the checkpoint, so a resumed run continues with the same queue.
"""

from __future__ import annotations

import torch


class TrainingPairPool:
    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self.queue: dict[str, torch.Tensor] = {}
        self.filled = 0

    def exchange(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Until the queue is full the batch passes through and is stored; then a random stored batch comes out."""
        size = next(iter(batch.values())).size(0)
        if self.queue_size % size:
            raise ValueError(f"queue_size {self.queue_size} is not a multiple of the batch size {size}")
        if not self.queue:
            self.queue = {k: v.new_zeros((self.queue_size, *v.shape[1:])) for k, v in batch.items()}
        self.queue = {k: q.to(batch[k].device) for k, q in self.queue.items()}  # after a resume it comes from the CPU
        if self.filled < self.queue_size:
            for name, value in batch.items():
                self.queue[name][self.filled:self.filled + size] = value.detach()
            self.filled += size
            return batch
        order = torch.randperm(self.queue_size, device="cpu")
        out = {}
        for name, value in batch.items():
            shuffled = self.queue[name][order.to(value.device)]
            out[name] = shuffled[:size].clone()
            shuffled[:size] = value.detach()
            self.queue[name] = shuffled
        return out

    def state_dict(self) -> dict:
        return {"filled": self.filled, "queue": {k: v.cpu() for k, v in self.queue.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.filled = int(state["filled"])
        self.queue = dict(state["queue"])
