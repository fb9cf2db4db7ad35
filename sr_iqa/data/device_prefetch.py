"""Overlap of host-to-device copies with compute: batch n+1 is copied on a side CUDA stream while
batch n trains (pinned memory makes the copy asynchronous). Elsewhere it passes batches through."""

from __future__ import annotations

from collections.abc import Iterator

import torch

Batch = dict[str, torch.Tensor]


class DevicePrefetcher:
    def __init__(self, batches: Iterator[Batch], device: torch.device) -> None:
        self.batches, self.device = batches, device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.ready: Batch | None = None
        if self.stream is not None:
            self._start_copy()

    def _start_copy(self) -> None:
        batch = next(self.batches, None)
        if batch is None:
            self.ready = None
            return
        with torch.cuda.stream(self.stream):
            self.ready = {name: value.to(self.device, non_blocking=True) for name, value in batch.items()}

    def __iter__(self) -> DevicePrefetcher:
        return self

    def __next__(self) -> Batch:
        if self.stream is None:
            return next(self.batches)
        if self.ready is None:
            raise StopIteration
        compute = torch.cuda.current_stream(self.device)
        compute.wait_stream(self.stream)  # the copy must have landed before compute reads it
        batch = self.ready
        for value in batch.values():
            value.record_stream(compute)  # the allocator must not reuse it while compute still reads
        self._start_copy()
        return batch
