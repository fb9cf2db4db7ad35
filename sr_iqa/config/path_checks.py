"""The paths a training's option file names, checked before anything heavy is imported or indexed.

A wrong data folder, manifest, score cache or weight file used to answer after torch, basicsr and pyiqa were
imported and the training data indexed (8 s on an idle 2-core machine, minutes under load) while a typo answered
at once; these checks read only the file system. ``sr-iqa train`` makes them; a plan (``ablate --dry-run``) does
not, as its data may live elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sr_iqa.config.q_metrics import objective_cache, weighted_metrics
from sr_iqa.config.schema import AmoMode, DatasetLayout, Options, SamplerOptions, SamplerType

PRETRAINED_PREFIX = "pretrained:"  # pretrained:<name>: an installed network (sr-iqa weights install), not a path
PLACEHOLDER = "CHANGE_ME"  # what options/templates/ put where a path of the user's goes


def _missing(key: str, value: str, what: str) -> str:
    """A path that is not there; a template's placeholder is named as such."""
    if PLACEHOLDER in value:
        return f"'{key}' is still the template's placeholder {value}: set it to your {what}"
    return f"'{key}': no such {what} {value}"


def missing_score_cache(key: str, path: str | Path, metrics: Sequence[str] = (), grid: str = "") -> str:
    """The error for a score cache that is not there, with the command that writes it."""
    if PLACEHOLDER in str(path):
        return f"'{key}' is still the template's placeholder {path}: set it to your score cache"
    named = "".join(f" --metric {metric.partition(' ')[0]}" for metric in metrics) or " --metric NAME"
    return (f"{key}: no score cache at {path}; write it with `sr-iqa score -opt <this option file>{named} "
            f"--cache {path}{grid}`")


def score_grid_flag(sampler: SamplerOptions, gt_size: int) -> str:
    """The ``--grid SIZE:STRIDE`` that `sr-iqa score` needs for what this sampler reads (cached AMO: the crop
    grid), else nothing."""
    return f" --grid {gt_size}:{sampler.grid_stride}" if sampler.type is SamplerType.amo else ""


def path_problems(options: Options, source: str) -> list[str]:
    """Every missing folder or file the options name, one line each."""
    return [*_data_path_problems(options, source), *_cache_problems(options, source),
            *_weight_path_problems(options, source)]


def _data_path_problems(options: Options, source: str) -> list[str]:
    problems = []
    splits = [("train", options.datasets.train), ("val", options.datasets.val), *options.datasets.extra_val.items()]
    for split, block in splits:
        if block is None:
            continue
        if block.type is DatasetLayout.manifest:
            if block.manifest is not None and not Path(block.manifest).is_file():
                problems.append(f"{source}: " + _missing(f"datasets.{split}.manifest", block.manifest,
                                                         "manifest file (.jsonl)"))
            continue
        for key in ("dataroot_gt", "dataroot_label", "dataroot_lq"):
            value = getattr(block, key, None)
            for folder in value if isinstance(value, list) else [value]:
                if isinstance(folder, str) and not Path(folder).is_dir():
                    problems.append(f"{source}: " + _missing(f"datasets.{split}.{key}", folder, "folder"))
    return problems


def _cache_problems(options: Options, source: str) -> list[str]:
    sampler = options.sampler
    cached = sampler.type in (SamplerType.sma, SamplerType.smp) or (
        sampler.type is SamplerType.amo and sampler.mode is AmoMode.cached)
    problems = []
    if cached and sampler.cache is not None and not Path(sampler.cache).is_file():
        grid = score_grid_flag(sampler, options.datasets.train.gt_size)
        problems.append(f"{source}: " + missing_score_cache("sampler.cache", sampler.cache,
                                                            list(weighted_metrics(sampler)), grid))
    iqa_opt = options.train.iqa_opt
    normalised_on = objective_cache(options) if iqa_opt is not None and iqa_opt.metrics else None
    reported = cached and normalised_on == sampler.cache
    if normalised_on is not None and not reported and not Path(normalised_on).is_file():
        problems.append(f"{source}: " + missing_score_cache("train.iqa_opt.cache", normalised_on,
                                                            list(weighted_metrics(iqa_opt))))
    return problems


def _weight_path_problems(options: Options, source: str) -> list[str]:
    problems = []
    for key in ("pretrain_network_g", "pretrain_network_d"):
        value = getattr(options.path, key)
        if value and not value.startswith(PRETRAINED_PREFIX) and not Path(value).exists():
            problems.append(f"{source}: " + _missing(f"path.{key}", value, "file or run folder"))
    resume = options.path.resume_state
    if resume and resume != "auto" and not Path(resume).is_dir():
        problems.append(f"{source}: 'path.resume_state': no such training_states folder {resume} (or use auto)")
    return problems
