"""Generator and adapter files: what they hold, how to find them in a run folder, how to load them.

sr_iqa writes generators and LoRA adapters as safetensors whose metadata records the ``network_g``
block (JSON), so ``export``, evaluation and inference rebuild the network from the file alone.
BasicSR ``.pth`` files carry no such record; for them the caller passes ``network_g``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from sr_iqa.errors import NonFiniteError, OptionsError, first_line
from sr_iqa.json_text import parse_json
from sr_iqa.models.export_formats import spandrel_problem, write_onnx, write_pth
from sr_iqa.models.generators import build_generator, check_generator_builds, generator_scale
from sr_iqa.models.lora import AdapterSettings, adapter_state, merged_with_adapter
from sr_iqa.models.weight_paths import GENERATOR_STEMS, newest_weights_file
from sr_iqa.pretrained.install import network_g_of_installed
from sr_iqa.tensor_files import save_tensors, save_weights

NETWORK_KEY = "sr_iqa.network_g"  # safetensors metadata: the network_g block, JSON
LORA_KEY = "sr_iqa.lora"  # adapter files: the LoRA settings, JSON
BASE_KEY = "sr_iqa.base"  # adapter files: the base generator file the adapter was trained on
log = logging.getLogger("sr_iqa.models")


def generator_metadata(network_g: Mapping[str, Any]) -> dict[str, str]:
    return {NETWORK_KEY: json.dumps(dict(network_g), sort_keys=True)}


def resolve_weights_file(path: str | Path, stems: tuple[str, ...] = GENERATOR_STEMS) -> Path:
    """A weights file as given, or for a run folder its newest ``<stem>_<iteration>.safetensors``, trying
    ``stems`` in order; ``pretrained:<name>`` for an installed pretrained network."""
    from sr_iqa.pretrained.install import resolve_reference

    return newest_weights_file(resolve_reference(path), stems)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            names = handle.keys()  # a safe_open handle is not iterable
            return {key: handle.get_tensor(key) for key in names}, dict(handle.metadata() or {})
    except Exception as error:  # safetensors raises its own error types for truncated or foreign files
        raise OptionsError(f"{path}: not a readable safetensors file ({error})") from None


def read_weights_state(path: Path, param_key: str = "params") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of sr_iqa safetensors, or of a BasicSR ``.pth`` (``params`` / ``params_ema``)."""
    if path.suffix == ".safetensors":
        state, metadata = _read_safetensors(path)
    else:
        try:
            state, metadata = torch.load(path, map_location="cpu", weights_only=True), {}
        except Exception as error:  # noqa: BLE001 - pickle, zip and torch errors alike mean an unusable file
            raise OptionsError(f"{path}: not a weights file that loads without running code ({first_line(error)}); "
                               "give a .safetensors file or a .pth that holds tensors only") from None
        if param_key in state:
            others = [key for key in ("params", "params_ema") if key in state and key != param_key]
            log.info("%s: loaded its '%s'%s", path, param_key,
                     f" (it also holds '{others[0]}'; path.param_key_g={others[0]} loads that: BasicSR's and "
                     "HGGT's test files load params_ema, the EMA weights)" if others else "")
            state = state[param_key]
        elif other := next((key for key in ("params", "params_ema") if key in state), None):
            log.info("%s has no '%s'; loaded its '%s' (as BasicSR does)", path, param_key, other)
            state = state[other]
    return {k.removeprefix("module."): v for k, v in state.items()}, metadata


def load_network_weights(net: torch.nn.Module, path: str | Path, strict: bool = True, param_key: str = "params",
                         stems: tuple[str, ...] = GENERATOR_STEMS, network_key: str = "network_g") -> Path:
    """Load weights into ``net`` (a generator; with ``stems=("net_d",)`` a discriminator) from a file or a
    run folder; returns the file it read."""
    path = resolve_weights_file(path, stems)
    state, _ = read_weights_state(path, param_key)
    _load_state(net, state, path, strict, network_key)
    return path


# Keys that tell the generator archs' checkpoints apart (all of them present).
ARCH_SIGNATURES = {
    "RRDBPSNet": ("body.0.rdb1.conv1.weight", "upsample.0.weight"),
    "RRDBNet": ("body.0.rdb1.conv1.weight", "conv_up1.weight"),
    "SwinIR": ("layers.0.residual_group.blocks.0.attn.qkv.weight",),
}


def checkpoint_arch(state: Mapping[str, torch.Tensor]) -> str | None:
    """The generator arch whose keys a state dict has, when one matches."""
    return next((arch for arch, keys in ARCH_SIGNATURES.items() if all(key in state for key in keys)), None)


MAX_WEIGHT = 1e6  # trained SR networks and adapters stay within +-100; 1e38 overflows the first convolution


def check_tensor_values(state: Mapping[str, torch.Tensor], path: Path,
                        integer_keys: frozenset[str] = frozenset()) -> None:
    """Weights are floating point and finite, within ``MAX_WEIGHT``: an int64 tensor would be cast without a word,
    NaN (a diverged run) or 1e30 (a tampered file) gives images of NaN or of one colour. ``integer_keys``: the
    network's own integer buffers (SwinIR's relative_position_index), which stay as they are."""
    for key, value in state.items():
        if key in integer_keys:
            continue
        if not value.is_floating_point():
            raise OptionsError(f"{path}: tensor {key} holds {value.dtype} values, not floating-point weights; a file "
                               "that is not an sr_iqa or BasicSR network")
        if not torch.isfinite(value).all():
            raise NonFiniteError(f"{path}: holds NaN or infinite weights (first in {key}), as a diverged run leaves "
                                 "them; use an earlier checkpoint")
        if value.numel() and value.abs().max() > MAX_WEIGHT:
            raise NonFiniteError(f"{path}: tensor {key} holds weights beyond +-{MAX_WEIGHT:g} "
                                 f"({value.abs().max().item():.3g}), which no trained network has; a damaged or "
                                 "tampered file: use another checkpoint")


def _load_state(net: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path, strict: bool = True,
                network_key: str = "network_g") -> None:
    own = net.state_dict()
    check_tensor_values(state, path, frozenset(key for key, value in own.items() if not value.is_floating_point()))
    wrong_shape = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    if strict and (missing or unexpected or wrong_shape):
        arch = checkpoint_arch(state)
        hint = (f"the checkpoint holds a {arch}: set {network_key}.type: {arch} with its sizes"
                if arch is not None and arch != type(net).__name__ else f"check {network_key} against the checkpoint")
        raise OptionsError(
            f"{path} does not fit {network_key} ({len(missing)} tensors missing such as {missing[:3]}, "
            f"{len(unexpected)} unexpected such as {unexpected[:3]}, {len(wrong_shape)} of another shape such as "
            f"{wrong_shape[:3]}); {hint}. Loading only the matching tensors would leave the others random"
        )
    if missing or wrong_shape:
        log.warning("%s: %d tensors of %s are not in the file and stay at their random initialisation (%s)", path,
                    len(missing) + len(wrong_shape), network_key, ", ".join((missing + wrong_shape)[:5]))
    net.load_state_dict({k: v for k, v in state.items() if k in own and k not in wrong_shape}, strict=False)


def _network_of(path: Path, metadata: dict[str, str], network_g: Mapping[str, Any] | None) -> dict[str, Any]:
    if network_g is not None:
        return dict(network_g)
    if NETWORK_KEY not in metadata and (recorded := network_g_of_installed(path)) is not None:
        return recorded  # an installed pretrained generator (sr-iqa weights install)
    if NETWORK_KEY not in metadata:
        raise OptionsError(f"{path} does not record its network_g (it was not written by sr_iqa); pass -opt with "
                           "the option file it was trained with")
    try:
        block = parse_json(metadata[NETWORK_KEY])
    except json.JSONDecodeError as error:
        block = f"not JSON ({error})"
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise OptionsError(f"{path}: its '{NETWORK_KEY}' metadata is not a network_g block ({str(block)[:80]}); "
                           "pass -opt with the option file it was trained with")
    return block


def generator_from_file(path: str | Path, network_g: Mapping[str, Any] | None = None, param_key: str = "params"
                        ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the generator a file (or run folder) holds and load it; also returns its network_g block.
    ``param_key``: the tensors inside a BasicSR ``.pth`` (``params_ema`` for HGGT's GAN models)."""
    path = resolve_weights_file(path)
    state, metadata = read_weights_state(path, param_key)  # read once: the metadata names the network, the tensors
    block = _network_of(path, metadata, network_g)
    check_generator_builds(block, generator_scale(block), str(path))  # sizes from a file's metadata are untrusted
    net = build_generator(block, generator_scale(block), str(path))
    _load_state(net, state, path)
    return net, block


def save_adapter(net: torch.nn.Module, path: Path, settings: AdapterSettings, network_g: Mapping[str, Any],
                 base: Path | None) -> None:
    """The LoRA tensors (PEFT's state-dict keys) with the settings, arch and base file in the metadata."""
    metadata = {**generator_metadata(network_g), LORA_KEY: settings.to_json()}
    if base is not None:
        metadata[BASE_KEY] = str(base)
    save_tensors(adapter_state(net), path, metadata)


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], AdapterSettings, dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise OptionsError(f"no adapter file at {path}")
    state, metadata = _read_safetensors(path)
    if LORA_KEY not in metadata:
        raise OptionsError(f"{path} is not an sr_iqa LoRA adapter (no '{LORA_KEY}' metadata); adapters are the "
                           "lora_*.safetensors files of a stage-2 run")
    check_tensor_values(state, path)
    try:
        settings = AdapterSettings.from_json(metadata[LORA_KEY])
    except ValueError as error:
        raise OptionsError(f"{path}: its '{LORA_KEY}' metadata is not an adapter's settings ({error}); use the "
                           "lora_*.safetensors file a stage-2 run wrote") from None
    return state, settings, metadata


def load_upscaler(checkpoint: str | Path, adapter: str | Path | None = None,
                  network_g: Mapping[str, Any] | None = None, param_key: str = "params",
                  strength: float = 1.0) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The generator of ``checkpoint``, with ``adapter`` merged into it at ``strength`` when given: what eval, infer
    and export run. Merging once gives the same output as base plus adapter, at the base network's speed."""
    net, block = generator_from_file(checkpoint, network_g, param_key)
    if adapter is None:
        return net, block
    state, settings, metadata = read_adapter(adapter)
    if NETWORK_KEY in metadata and parse_json(metadata[NETWORK_KEY]) != block:
        raise OptionsError(f"{adapter} was trained on a different network_g than {checkpoint}; pass the base "
                           f"checkpoint it names ({metadata.get(BASE_KEY, 'not recorded')})")
    return merged_with_adapter(net, settings, state, strength), block


PEFT_CONFIG, PEFT_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"  # PeftModel.save_pretrained's names
PEFT_PREFIX = "base_model.model."  # PeftModel's key prefix: its wrapper, then the wrapped network


def export_peft_adapter(adapter: str | Path, folder: Path, strength: float = 1.0) -> Path:
    """An sr_iqa adapter file as PEFT writes adapters (``adapter_config.json`` + ``adapter_model.safetensors``),
    so that ``PeftModel.from_pretrained(generator, folder)`` and other PEFT tools read it. Training keeps its
    single-file form, whose metadata names the base network and file that ``eval`` and ``export`` check.
    ``strength`` scales the update through ``lora_alpha`` (the update is alpha / rank * B A), as merging does."""
    state, settings, _ = read_adapter(adapter)
    folder.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(settings, alpha=settings.alpha * strength)
    settings.peft_config().save_pretrained(str(folder))  # PEFT's own adapter_config.json
    save_tensors({PEFT_PREFIX + name: tensor for name, tensor in state.items()}, folder / PEFT_WEIGHTS)
    return folder


def loaded_key(path: str | Path, param_key: str = "params") -> str:
    """Which BasicSR key the weights ``generator_from_file`` loads are, so that an export labels them truly:
    a ``.pth``'s key as ``read_weights_state`` picks it; sr_iqa's EMA file ``params_ema``, its other files
    ``params``."""
    path = resolve_weights_file(path)
    if path.suffix == ".safetensors":
        return "params_ema" if path.stem.startswith("net_g_ema") else "params"
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if param_key in state:
        return param_key
    return next((key for key in ("params", "params_ema") if key in state), "params")


def export_generator(checkpoint: str | Path, adapter: str | Path | None, out: Path,
                     network_g: Mapping[str, Any] | None = None, param_key: str = "params",
                     file_format: str = "safetensors", strength: float = 1.0) -> Path:
    """Write one generator file (adapter merged when given): sr_iqa's safetensors (any sr_iqa command loads it by
    itself), BasicSR's ``.pth`` or ONNX (models/export_formats.py)."""
    net, block = load_upscaler(checkpoint, adapter, network_g, param_key, strength)
    out.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "onnx":
        write_onnx(net, block, generator_scale(block), out)
        return out
    if file_format == "pth":
        key = loaded_key(checkpoint, param_key)
        write_pth(net, out, key)
        log.info("%s: the weights stored under '%s', the key they were loaded from%s", out, key,
                 " (BasicSR and HGGT's test files load params_ema and fall back to params)" if key == "params" else "")
    else:
        save_weights(net, out, generator_metadata(block))
    problem = spandrel_problem(block)
    if problem is not None:
        log.warning("%s: %s, so chaiNNer and ComfyUI (spandrel) will not run this file correctly; sr_iqa and "
                    "BasicSR load it (or export --format onnx)", out, problem)
    return out
