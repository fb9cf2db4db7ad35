"""Generator and adapter files made here for tests: random weights, and an adapter with non-zero B (so merging
changes the weights), as training writes them (safetensors with their network_g and LoRA metadata)."""

from __future__ import annotations

from pathlib import Path

import torch

from sr_iqa.models.generators import build_generator, generator_block
from sr_iqa.models.lora import AdapterSettings, add_adapters
from sr_iqa.models.weight_files import generator_metadata, save_adapter
from sr_iqa.tensor_files import save_weights

RRDB = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 32}
SWINIR = {"type": "SwinIR", "in_chans": 3, "img_size": 16, "window_size": 4, "img_range": 1.0, "depths": [2],
          "embed_dim": 12, "num_heads": [2], "mlp_ratio": 2, "upsampler": "pixelshuffle", "resi_connection": "1conv"}
TARGETS = {"RRDBNet": ("conv1", "conv2"), "SwinIR": ("qkv", "fc1")}


def generator_with_adapter(folder: Path, block: dict, with_adapter: bool) -> tuple[Path, Path | None]:
    """A random generator file and, when asked, an adapter on it with non-zero B (so merging changes weights)."""
    torch.manual_seed(3)
    block = generator_block(block, 4, "test")  # with the arch's scale key, as training records it
    network = build_generator(block, 4)
    base = folder / f"{block['type']}.safetensors"
    save_weights(network, base, generator_metadata(block))
    if not with_adapter:
        return base, None
    settings = AdapterSettings(rank=2, alpha=2.0, dropout=0.0, target_modules=TARGETS[block["type"]])
    adapted = add_adapters(network, settings)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    adapter = folder / f"lora_{block['type']}.safetensors"
    save_adapter(adapted, adapter, settings, block, base)
    return base, adapter
