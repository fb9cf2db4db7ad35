"""YAML option file + ``key.sub=value`` overrides -> typed ``Options``, strictly.

Every problem becomes one ``OptionsError`` naming the file, the full dotted key and what
to do; the checks that need no torch import run first so a typo fails within a second.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException, ValidationError

from sr_iqa.config.basicsr_keys import translate
from sr_iqa.config.q_metrics import choice_problems, q_metric_problems
from sr_iqa.config.schema import (
    CALL_BLOCKS,
    RANGE,
    DatasetLayout,
    IqaOptions,
    Options,
    TrainOptions,
    ValDatasetOptions,
)
from sr_iqa.config.suggest import did_you_mean
from sr_iqa.errors import OptionsError
from sr_iqa.file_names import NAME_BYTES, is_plain_name

log = logging.getLogger("sr_iqa.config")
SEED_LIMIT = 2**31  # numpy takes seeds below 2**32; a margin for the per-rank offsets


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def check_keys(node: Any, schema: type, prefix: str, source: str) -> list[str]:
    """Every key the schema lacks, as problem lines; integral floats (BasicSR's ``!!float 5e3``) become ints."""
    if not isinstance(node, DictConfig):
        return []
    hints = typing.get_type_hints(schema)
    names = [f.name for f in dataclasses.fields(schema)]
    problems = []
    for key in list(node.keys()):
        dotted = f"{prefix}{key}"
        if key not in names:
            problems.append(f"{source}: unknown key '{dotted}'; {did_you_mean(str(key), names)}")
            continue
        annotation = _unwrap_optional(hints[key])
        if OmegaConf.is_missing(node, key):
            problems.append(f"{source}: '{dotted}' is '???'; give it a value")
            continue
        value = node[key]
        if dataclasses.is_dataclass(annotation):
            if value is not None and not isinstance(value, DictConfig):
                problems.append(f"{source}: '{dotted}' expects a block of keys, got {value!r}")
                continue
            problems += check_keys(value, annotation, f"{dotted}.", source)
        elif typing.get_origin(annotation) is dict and dataclasses.is_dataclass(typing.get_args(annotation)[1]):
            if value is not None and not isinstance(value, DictConfig):
                problems.append(f"{source}: '{dotted}' expects blocks by name, got {value!r}")
                continue
            for name in value or {}:  # datasets.extra_val: named blocks, written datasets.<name> (BasicSR's val_2)
                if not isinstance(value[name], DictConfig):
                    problems.append(f"{source}: '{prefix}{name}' expects a block of keys, got {value[name]!r}")
                    continue
                problems += check_keys(value[name], typing.get_args(annotation)[1], f"{prefix}{name}.", source)
        elif annotation is int and isinstance(value, float) and value.is_integer():
            node[key] = int(value)
        elif isinstance(annotation, type) and issubclass(annotation, Enum) and value is not None \
                and value is not False and str(value) not in [member.value for member in annotation]:
            choices = [member.value for member in annotation]  # (a bare YAML `no` is False: mixed_precision's "no")
            close = difflib.get_close_matches(str(value), choices, n=1)
            problems.append(f"{source}: '{dotted}' is '{value}', not one of {', '.join(choices)}"
                            + (f"; did you mean '{close[0]}'?" if close else ""))
    return problems


def raise_option_problems(problems: Sequence[str]) -> None:
    """All problems found, in one error (a single one as it is)."""
    if problems:
        raise OptionsError(problems[0] if len(problems) == 1 else
                           f"{len(problems)} problems in the options:\n" + "\n".join(problems))


def typed(schema: type, node: Any, source: str, prefix: str = "") -> Any:
    """``node`` merged into ``schema``'s defaults as its dataclass; a missing required key or a wrong type is one
    ``OptionsError`` naming the key (``prefix``: where the block sits in the file). Keys are checked before."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node or {}))
    except MissingMandatoryValue as error:
        raise OptionsError(f"{source}: required key '{prefix}{error.full_key}' is missing") from None
    except ValidationError as error:
        raise OptionsError(f"{source}: '{prefix}{error.full_key}' has the wrong type: "
                           f"{str(error.msg).splitlines()[0]}") from None


def read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise OptionsError(f"no option file at {path}")
    try:
        config = OmegaConf.load(path)
    except yaml.YAMLError as error:
        raise OptionsError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(config, DictConfig):
        raise OptionsError(f"{path}: expected a mapping of option keys at the top level")
    return config


def _read_overrides(overrides: Sequence[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise OptionsError(f"command line: override '{item}' is not of the form key.sub=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except (OmegaConfBaseException, yaml.YAMLError) as error:  # an unclosed bracket is YAML's error
        reason = " ".join(str(error).split())
        raise OptionsError(f"command line: cannot parse overrides {list(overrides)}: {reason}") from None


def _select(config: DictConfig, dotted: str) -> Any:
    return OmegaConf.select(config, dotted, default=None, throw_on_missing=False)


def _merge_into_schema(user: DictConfig, source: str) -> Options:
    blocks = {key: _select(user, key) for key in CALL_BLOCKS}
    rest = copy.deepcopy(user)
    for key, value in blocks.items():
        if value is not None:
            parent, _, leaf = key.rpartition(".")
            container = _select(rest, parent) if parent else rest
            container.pop(leaf)  # merged below without the defaults
    if _select(rest, "train.mixed_precision") is False:  # YAML reads a bare `no` as false
        rest.train.mixed_precision = "no"
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Options), rest)
        for key, value in blocks.items():
            if value is not None:
                OmegaConf.update(merged, key, value, merge=False)
        return OmegaConf.to_object(merged)
    except MissingMandatoryValue as error:
        raise OptionsError(f"{source}: required key '{error.full_key}' is missing") from None
    except ValidationError as error:
        reason = str(error.msg).splitlines()[0]
        raise OptionsError(f"{source}: '{error.full_key}' has the wrong type: {reason}") from None


def _check_values(options: Options, source: str) -> None:
    """Ranges and relations of the schema's values; every problem of the file in one error."""
    problems = range_problems(options, "", source)
    if not 0 <= options.manual_seed < SEED_LIMIT:
        problems.append(f"{source}: 'manual_seed' must be in [0, {SEED_LIMIT}) (each process seeds with "
                           f"manual_seed + its rank, within numpy's range), got {options.manual_seed}")
    problems += _name_problems(options.name, source) + _non_finite_problems(options, "", source)
    raise_option_problems(problems)  # the checks below divide by these sizes
    if options.datasets.train.gt_size % options.scale:
        problems.append(f"{source}: 'datasets.train.gt_size' ({options.datasets.train.gt_size}) "
                           f"must be a multiple of 'scale' ({options.scale})")
    problems += _data_source_problems(options, source)
    problems += _sampler_problems(options, source)
    problems += _negative_weight_problems(options.train, source)
    if options.train.warmup_iter < -1:
        problems.append(f"{source}: 'train.warmup_iter' must be -1 (no warm-up) or at least 0, got "
                        f"{options.train.warmup_iter}")
    if options.train.grad_clip_max_norm <= 0:
        problems.append(f"{source}: 'train.grad_clip_max_norm' must be positive, got "
                        f"{options.train.grad_clip_max_norm}")
    if not 0 <= options.train.ema_decay < 1:
        problems.append(f"{source}: 'train.ema_decay' must be in [0, 1), got {options.train.ema_decay}")
    problems += _stage2_problems(options, source) + _speed_problems(options, source)
    raise_option_problems(problems)


def range_problems(node: Any, prefix: str, source: str) -> list[str]:
    """Every field declared with ``schema.bounded`` against its range, through nested option blocks (and the
    ``extra_val`` blocks by name)."""
    problems = []
    for spec in dataclasses.fields(node):
        value = getattr(node, spec.name)
        if dataclasses.is_dataclass(value):
            problems += range_problems(value, f"{prefix}{spec.name}.", source)
        elif isinstance(value, dict):
            problems += [problem for key, block in value.items() if dataclasses.is_dataclass(block)
                         for problem in range_problems(block, f"{prefix}{spec.name}.{key}.", source)]
        low, high = spec.metadata.get(RANGE, (None, None))
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if low is not None and value < low:
            problems.append(f"{source}: '{prefix}{spec.name}' must be at least {low}, got {value}")
        if high is not None and value > high:
            problems.append(f"{source}: '{prefix}{spec.name}' must be at most {high}, got {value}")
    return problems


def _data_source_problems(options: Options, source: str) -> list[str]:
    """Each data block's folders are folders, its layout's required key is set, the pair pool holds whole batches."""
    problems = []
    splits = [("train", options.datasets.train), ("val", options.datasets.val),
              *options.datasets.extra_val.items()]
    for split, source_options in splits:
        if source_options is None:
            continue
        for key in ("dataroot_gt", "dataroot_label", "dataroot_lq"):
            value = getattr(source_options, key, None)
            folders = value if isinstance(value, list) else [value]
            if value is not None and not (folders and all(isinstance(folder, str) for folder in folders)):
                problems.append(f"{source}: 'datasets.{split}.{key}' must be a folder or a list of folders, "
                                   f"got {value!r}")
        needed = "manifest" if source_options.type is DatasetLayout.manifest else "dataroot_gt"
        if getattr(source_options, needed) is None:
            problems.append(f"{source}: 'datasets.{split}.{needed}' is required for type "
                               f"{source_options.type.value}")
    queue, batch = options.datasets.train.queue_size, options.datasets.train.batch_size_per_gpu
    if queue % batch:
        problems.append(f"{source}: 'datasets.train.queue_size' ({queue}) must be a multiple of "
                           f"'datasets.train.batch_size_per_gpu' ({batch})")
    return problems


def _sampler_problems(options: Options, source: str) -> list[str]:
    """The sampler's cache, metrics, grid and box strides, choice options and labels, and what rank_opt needs."""
    problems: list[str] = []
    sampler = options.sampler
    online = sampler.type.value == "amo" and sampler.mode.value == "online"
    if sampler.type.value in ("sma", "smp", "amo") and not online and sampler.cache is None:
        problems.append(f"{source}: the {sampler.type.value} sampler needs 'sampler.cache'")
    problems += q_metric_problems(options, source)
    if sampler.tau <= 0 or sampler.grid_stride < 1:
        problems.append(f"{source}: 'sampler.tau' must be positive and 'sampler.grid_stride' at least 1")
    cached_amo = sampler.type.value == "amo" and sampler.mode.value == "cached"
    if sampler.box_stride is not None and (
            sampler.box_stride < 1 or (cached_amo and sampler.box_stride % sampler.grid_stride)):
        problems.append(f"{source}: 'sampler.box_stride' ({sampler.box_stride}) must be at least 1, and with cached "
                           f"AMO a multiple of 'sampler.grid_stride' ({sampler.grid_stride}): its boxes need scores")
    if options.train.rank_opt is not None and not (sampler.type.value in ("sma", "smp") or cached_amo):
        problems.append(f"{source}: 'train.rank_opt' ranks each sample's GTs by the score cache's Q: it needs "
                        f"sampler.type sma, smp or amo (cached), not {sampler.type.value}"
                        + (" online" if online else ""))
    problems += choice_problems(sampler, online, source)
    unknown_labels = [label for label in sampler.exclude_labels if label not in ("Positive", "Similar", "Negative")]
    if unknown_labels:
        problems.append(f"{source}: 'sampler.exclude_labels' holds {unknown_labels}; labels are Positive, "
                           "Similar and Negative")
    return problems


def _name_problems(name: str, source: str) -> list[str]:
    """``name`` is one folder under ``path.experiments_root``, and its lock file is ``.<name>.lock`` beside it: a
    path (``./x``, ``../x``, ``/x``, ``.``) would give one run two lock names or leave the root."""
    return [] if is_plain_name(name) and not name.startswith(".") else [
        f"{source}: 'name' must be a plain folder name (no '/', not starting with '.', printable, at most "
        f"{NAME_BYTES} bytes), got {name!r}; it names the run folder under 'path.experiments_root'"]


def _non_finite_problems(node: Any, key: str, source: str) -> list[str]:
    """Every NaN or infinite number anywhere in the options (call blocks' kwargs included): NaN passes every
    range check (``nan <= 0`` is false) and surfaces later as a divergence or NaN probabilities."""
    if dataclasses.is_dataclass(node):
        return [problem for item in dataclasses.fields(node)
                for problem in _non_finite_problems(getattr(node, item.name), _joined(key, item.name), source)]
    if isinstance(node, dict):
        return [problem for name, value in node.items()
                for problem in _non_finite_problems(value, _joined(key, str(name)), source)]
    if isinstance(node, (list, tuple)):
        return [problem for index, value in enumerate(node)
                for problem in _non_finite_problems(value, f"{key}[{index}]", source)]
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{source}: '{key}' must be a finite number, got {node}"]
    return []


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _negative_weight_problems(train: TrainOptions, source: str) -> list[str]:
    """A negative weight in a loss block trains away from what the term measures (``pixel_opt.loss_weight: -1``
    moves SR away from the GT without a word); the negative-GT loss's own sign is inside the loss."""
    problems = []
    for block_key in ("pixel_opt", "perceptual_opt", "neg_opt", "gan_opt"):
        block = getattr(train, block_key) or {}
        for name, value in block.items():
            if str(name).endswith("weight") and isinstance(value, (int, float)) and value < 0:
                problems.append(f"{source}: 'train.{block_key}.{name}' must be >= 0 (a negative weight trains away "
                                f"from what the term measures; 0 turns the term off), got {value}")
    return problems


def _stage2_problems(options: Options, source: str) -> list[str]:
    problems: list[str] = []
    lora, iqa_opt = options.lora, options.train.iqa_opt
    if lora is not None and lora.enabled:
        if lora.rank < 1 or lora.alpha <= 0 or not 0 <= lora.dropout < 1:
            problems.append(f"{source}: 'lora' needs rank >= 1, alpha > 0 and dropout in [0, 1); got rank "
                               f"{lora.rank}, alpha {lora.alpha}, dropout {lora.dropout}")
        if options.path.pretrain_network_g is None:
            problems.append(f"{source}: LoRA adapts a trained generator; set 'path.pretrain_network_g' to the "
                               "stage-1 run folder or weights file (or lora.enabled: false)")
    if iqa_opt is not None and iqa_opt.loss_weight < 0:
        problems.append(f"{source}: 'train.iqa_opt.loss_weight' must be >= 0 (the sign follows the metric's "
                           f"direction), got {iqa_opt.loss_weight}")
    if options.path.pretrain_network_d is not None and options.network_d is None:
        problems.append(f"{source}: 'path.pretrain_network_d' is set but there is no 'network_d'")
    return problems


def _speed_problems(options: Options, source: str) -> list[str]:
    """torch.compile would only refuse a mode or backend after the run folder exists. Checked only with
    compile on: importing inductor's mode list costs over a second per process."""
    problems: list[str] = []
    train = options.train
    if train.compile:
        import torch._dynamo
        from torch._inductor import list_mode_options

        choices = {"train.compile_backend": (train.compile_backend, torch._dynamo.list_backends(exclude_tags=())),
                   "train.compile_mode": (train.compile_mode, list(list_mode_options()))}
        for key, (value, valid) in choices.items():
            if value is not None and value not in valid:
                problems.append(f"{source}: '{key}' is '{value}'; {did_you_mean(value, valid)}")
    if options.datasets.train.prefetch_factor < 1:
        problems.append(f"{source}: 'datasets.train.prefetch_factor' must be at least 1, "
                           f"got {options.datasets.train.prefetch_factor}")
    return problems


def _translated(config: DictConfig, source: str, problems: list[str], mapped: list[str],
                ignored: list[str]) -> DictConfig:
    """BasicSR/HGGT keys moved to sr_iqa's (``basicsr_keys``), then the schema's key check; problems collected."""
    translation = translate(config)
    problems += [f"{source}: {problem}" for problem in translation.problems]
    mapped += translation.mapped
    ignored += translation.ignored
    problems += check_keys(translation.config, Options, "", source)
    return translation.config


def _report_translation(source: str, mapped: list[str], ignored: list[str]) -> None:
    for line in mapped:
        log.info("%s: BasicSR/HGGT key %s", source, line)
    if ignored:
        log.warning("%s: ignored, no meaning in sr_iqa: %s", source, ", ".join(ignored))


def read_options(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Options, str]:
    """An option file and its overrides as typed ``Options`` with every key and value checked (what needs no
    other layer of sr_iqa), and the source name for messages. ``sr_iqa.checked_options.load_options`` adds the
    checks that build the named classes."""
    path = Path(path)
    problems: list[str] = []
    mapped: list[str] = []
    ignored: list[str] = []
    user = _translated(read_yaml(path), str(path), problems, mapped, ignored)
    for item in overrides:  # in order: a later override wins
        single = _translated(_read_overrides([item]), "command line", problems, mapped, ignored)
        key = item.split("=", 1)[0].strip()
        if key in CALL_BLOCKS:  # `train.scheduler={...}` replaces the block; `train.scheduler.gamma=...` edits it
            OmegaConf.update(user, key, _select(single, key), merge=False)
        else:
            user = OmegaConf.merge(user, single)
    raise_option_problems(problems)
    source = f"{path}" + (" (with command-line overrides)" if overrides else "")
    _report_translation(str(path), mapped, ignored)
    options = _merge_into_schema(user, source)
    _check_values(options, source)
    return options, source


@dataclass
class InferenceOptions:
    """What `eval`, `infer` and `export` take from an option file: a training file, or a BasicSR/HGGT test file
    (``datasets.test_*``, the checkpoint in ``path.pretrain_network_g``), or a file with ``network_g`` alone."""

    network_g: dict[str, Any]
    scale: int
    test_sets: list[ValDatasetOptions]  # datasets.val and every datasets.test_*, in the file's order
    iqa: IqaOptions
    checkpoint: str | None  # path.pretrain_network_g
    param_key: str  # path.param_key_g: the tensors inside a BasicSR .pth


def _typed_block(node: Any, schema: type, key: str, source: str, problems: list[str]) -> Any:
    problems += check_keys(node, schema, f"{key}.", source)
    if problems:
        return None
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node or {}))
    except ValidationError as error:
        problems.append(f"{source}: '{key}.{error.full_key}' has the wrong type: {str(error.msg).splitlines()[0]}")
        return None


def read_inference_options(path: str | Path, overrides: Sequence[str] = ()) -> InferenceOptions:
    """The network, the test sets and the metric options of an option file; its training keys are not needed
    (nor checked beyond their names being known to BasicSR or sr_iqa). ``network_g`` as written:
    ``sr_iqa.checked_options.load_inference_options`` checks it against its arch."""
    path = Path(path)
    config = read_yaml(path)
    for item in overrides:
        config = OmegaConf.merge(config, _read_overrides([item]))
    translation = translate(config, training=False)
    config, problems = translation.config, [f"{path}: {problem}" for problem in translation.problems]
    network_g = _plain(config.get("network_g"))
    if not isinstance(network_g, dict):
        problems.append(f"{path}: needs a network_g block (the generator the checkpoint holds)")
    datasets = config.get("datasets") or {}
    test_sets = [_typed_block(datasets[key], ValDatasetOptions, f"datasets.{key}", str(path), problems)
                 for key in datasets if key == "val" or str(key).startswith("test")]
    extra_val = datasets.get("extra_val") or {}  # BasicSR's val_2, ... : test sets too
    test_sets += [_typed_block(extra_val[key], ValDatasetOptions, f"datasets.extra_val.{key}", str(path), problems)
                  for key in extra_val]
    iqa = _typed_block(config.get("iqa"), IqaOptions, "iqa", str(path), problems)
    raise_option_problems(problems)
    _report_translation(str(path), translation.mapped, translation.ignored)
    scale = int(config.get("scale", 4))
    return InferenceOptions(network_g, scale, test_sets, iqa,
                            OmegaConf.select(config, "path.pretrain_network_g"),
                            OmegaConf.select(config, "path.param_key_g") or "params")


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, DictConfig) else value


def options_to_yaml(options: Options) -> str:
    """The resolved options, loadable again with ``read_options`` / ``load_options``."""
    return OmegaConf.to_yaml(OmegaConf.structured(options))


def flat_options(node: Options | dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf of resolved options (or of their YAML read back as a dict); an empty
    block is a leaf. What a resume compares and the trackers take as hyper-parameters."""
    if isinstance(node, Options):
        node = OmegaConf.to_container(OmegaConf.structured(node), enum_to_str=True)
    if not isinstance(node, dict) or not node:
        return {prefix.rstrip("."): node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flat_options(value, f"{prefix}{key}."))
    return flat
