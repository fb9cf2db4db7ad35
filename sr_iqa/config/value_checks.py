"""The values of a training option file, after its keys and types passed: ranges declared beside the schema's
fields (``schema.bounded``), the seed and run name, finite numbers, and the relations between blocks (crop and
scale, data sources, the sampler and what it needs, loss weights, stage 2, speed options)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from sr_iqa.config.q_metrics import choice_problems, q_metric_problems
from sr_iqa.config.schema import RANGE, DatasetLayout, Options, TrainOptions
from sr_iqa.config.suggest import did_you_mean
from sr_iqa.file_names import NAME_BYTES, is_plain_name

SEED_LIMIT = 2**31  # numpy takes seeds below 2**32; a margin for the per-rank offsets


def value_problems(options: Options, source: str) -> list[str]:
    """Ranges and relations of the schema's values: every problem of the file (the loader raises them as one
    error)."""
    problems = range_problems(options, "", source)
    if not 0 <= options.manual_seed < SEED_LIMIT:
        problems.append(f"{source}: 'manual_seed' must be in [0, {SEED_LIMIT}) (each process seeds with "
                           f"manual_seed + its rank, within numpy's range), got {options.manual_seed}")
    problems += _name_problems(options.name, source) + _non_finite_problems(options, "", source)
    if problems:
        return problems  # the checks below divide by these sizes
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
    problems += _channel_problems(options, source) + _scheduler_problems(options, source)
    problems += _tracker_problems(options, source)
    return problems


RGB_CHANNEL_KEYS = ("num_in_ch", "num_out_ch", "in_chans")  # RRDBNet's, the discriminators' and SwinIR's


def _channel_problems(options: Options, source: str) -> list[str]:
    """Every image sr_iqa reads and writes is RGB: a network of 1 or 4 channels fails at the first batch."""
    return [f"{source}: '{block_key}.{key}' must be 3 (sr_iqa reads and writes RGB images), got {block[key]!r}"
            for block_key, block in (("network_g", options.network_g), ("network_d", options.network_d or {}))
            for key in RGB_CHANNEL_KEYS if key in block and block[key] != 3]


def _scheduler_problems(options: Options, source: str) -> list[str]:
    """A decay factor at or below 0 gives a zero or negative learning rate (training towards a worse loss), one
    above 1 a growing one; torch's schedulers take both."""
    scheduler = options.train.scheduler or {}
    gamma = scheduler.get("gamma")
    if isinstance(gamma, int | float) and not isinstance(gamma, bool) and not 0 < gamma <= 1:
        return [f"{source}: 'train.scheduler.gamma' must be in (0, 1] (the factor the learning rate is multiplied "
                f"by at each milestone), got {gamma}"]
    return []


TRACKER_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")  # W&B projects and run ids: no '/', no control characters


def _tracker_problems(options: Options, source: str) -> list[str]:
    """W&B takes an empty project as none (no run, no word) and fails late on '/' or an over-long name."""
    wandb = options.logger.wandb
    if wandb is None:
        return []
    return [f"{source}: 'logger.wandb.{key}' must be 1 to 128 letters, digits, '.', '_' or '-', got {value!r}"
            for key, value in (("project", wandb.project), ("resume_id", wandb.resume_id))
            if value is not None and not TRACKER_NAME.fullmatch(str(value))]


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
        unread = "dataroot_gt" if needed == "manifest" else "manifest"
        if getattr(source_options, unread) is not None:  # was ignored without a word
            problems.append(f"{source}: 'datasets.{split}.{unread}' is not read with type "
                            f"{source_options.type.value}; set 'datasets.{split}.type: "
                            f"{'manifest' if unread == 'manifest' else 'hggt'}' or remove '{unread}'")
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
    if sampler.box_stride is not None and sampler.box_stride > options.datasets.train.gt_size:
        problems.append(f"{source}: 'sampler.box_stride' ({sampler.box_stride}) must be at most "
                        f"'datasets.train.gt_size' ({options.datasets.train.gt_size}): boxes further apart leave "
                        "pixels between them that no crop ever trains on")
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
    for block_key in ("pixel_opt", "perceptual_opt", "neg_opt", "rank_opt", "gan_opt"):
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
