"""Tiled super-resolution: any image size in bounded memory.

The LR image is cut into ``tile`` x ``tile`` tiles that overlap by ``overlap`` pixels; each tile
is upscaled on its own and the outputs are blended with weights that ramp linearly across the
middle half of each overlap, so seams do not show. A network whose receptive field reaches less
than a quarter of the overlap past a pixel gives exactly the untiled result; a deeper one differs
only near the seams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> torch.Tensor:
    """Per-pixel weight along one axis of a tile's output. At an edge shared with another tile it is 0 over
    the outer quarter of the overlap (where zero padding corrupts the output), rises linearly over the middle
    half and is 1 inside; two tiles' weights in an overlap add up to 1."""
    weight = torch.ones(length, device=device)
    if overlap > 0:
        position = torch.arange(overlap, device=device, dtype=torch.float32) + 0.5
        ramp = ((position - overlap / 4) / (overlap / 2)).clamp(0, 1)
        if not at_start:
            weight[:overlap] = ramp
        if not at_end:
            weight[-overlap:] = ramp.flip(0)
    return weight


def tile_count(height: int, width: int, tile: int, overlap: int = 16) -> int:
    """How many tiles ``tiled_upscale`` cuts an LR image of this size into (1: whole)."""
    if tile <= 0 or (height <= tile and width <= tile):
        return 1
    return len(_starts(height, tile, tile - overlap)) * len(_starts(width, tile, tile - overlap))


@torch.no_grad()
def tiled_upscale(upscale: Callable[[torch.Tensor], torch.Tensor], lq: torch.Tensor, scale: int, tile: int,
                  overlap: int = 16, on_tile: Callable[[], object] | None = None) -> torch.Tensor:
    """``upscale`` (Nx3xhxw -> Nx3x(h*scale)x(w*scale)) applied tile by tile to ``lq``; ``tile`` <= 0: whole.
    ``on_tile`` is called after each tile (a progress bar)."""
    if tile <= 0 or (lq.shape[-2] <= tile and lq.shape[-1] <= tile):
        result = upscale(lq)
        if on_tile is not None:
            on_tile()
        return result
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile), got {overlap} for tile {tile}")
    batch, channels, height, width = lq.shape
    output = lq.new_zeros(batch, channels, height * scale, width * scale, dtype=torch.float32)
    weights = lq.new_zeros(1, 1, height * scale, width * scale, dtype=torch.float32)
    step = tile - overlap
    rows, columns = _starts(height, tile, step), _starts(width, tile, step)
    for top in rows:
        for left in columns:
            patch = lq[..., top: top + tile, left: left + tile]
            result = upscale(patch).float()
            out_h, out_w = result.shape[-2:]
            weight_y = _ramp(out_h, overlap * scale, top == rows[0], top == rows[-1], lq.device)
            weight_x = _ramp(out_w, overlap * scale, left == columns[0], left == columns[-1], lq.device)
            weight = (weight_y[:, None] * weight_x[None, :])[None, None]
            y, x = top * scale, left * scale
            output[..., y: y + out_h, x: x + out_w] += result * weight
            weights[..., y: y + out_h, x: x + out_w] += weight
            if on_tile is not None:
                on_tile()
    return output / weights
