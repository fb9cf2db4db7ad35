"""``sr-iqa infer``: upscale images of any size with a generator (plus an optional LoRA adapter), tiled."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from sr_iqa.data.image_io import list_images, read_rgb_tensor, write_rgb
from sr_iqa.errors import SrIqaError
from sr_iqa.models.generators import generator_scale
from sr_iqa.models.weight_files import load_upscaler
from sr_iqa.progress import progress_bar
from sr_iqa.tiling import tile_count, tiled_upscale

log = logging.getLogger("sr_iqa.infer")


def input_images(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if source.is_dir():
        images = list_images(source)
        if images:
            return images
        raise SrIqaError(f"--input {source}: no images in that folder")
    raise SrIqaError(f"--input {source}: no such file or folder")


def run_infer(checkpoint: Path, adapter: Path | None, source: Path, output: Path, tile: int = 0,
              tile_overlap: int = 16, network_g: dict | None = None, param_key: str = "params",
              strength: float = 1.0) -> list[Path]:
    """Writes ``output/<input stem>.png`` for every input image; returns the written paths. On a GPU the
    network runs in half precision (bf16 where supported, else fp16). ``strength``: the adapter's."""
    images = input_images(source)
    network, block = load_upscaler(checkpoint, adapter, network_g, param_key, strength)
    scale = generator_scale(block)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    network = network.to(device).eval()
    half = None
    if device.type == "cuda":
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def upscale(lq: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=half or torch.float32, enabled=half is not None):
            return network(lq).float()

    written = []
    for path in progress_bar(iterable=images, desc="infer", unit="image"):
        lq = read_rgb_tensor(path)[None].to(device)
        tiles = tile_count(lq.shape[-2], lq.shape[-1], tile, tile_overlap)
        with torch.no_grad(), progress_bar(total=tiles, desc=path.name, unit="tile", leave=False,
                                           disable=tiles == 1) as tile_bar:
            sr = tiled_upscale(upscale, lq, scale, tile, tile_overlap, on_tile=lambda: tile_bar.update(1))[0]
        sr = sr.clamp(0, 1)
        target = output / f"{path.stem}.png"
        write_rgb(target, sr)
        written.append(target)
    log.info("wrote %d images to %s", len(written), output)
    return written
