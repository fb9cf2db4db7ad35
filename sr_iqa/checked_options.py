"""Option files loaded and checked whole: the config layer's key and value checks, then every ``{type: ...}``
block checked against the class it names and tried (the generator and discriminator on the meta device, the
optimizer on one parameter, the cheap losses built, the degradation against the crop size).

This sits above the builders it tries (models, losses, optim, data.degradations), so the config layer below
imports none of them; everything that loads an option file to run it comes through here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from sr_iqa.config.loader import InferenceOptions, raise_option_problems, read_inference_options, read_options
from sr_iqa.config.path_checks import path_problems
from sr_iqa.config.schema import Options, SamplerType
from sr_iqa.errors import OptionsError

log = logging.getLogger("sr_iqa.config")


def load_options(path: str | Path, overrides: Sequence[str] = (), check_paths: bool = False) -> Options:
    """Load, validate and type an option file; schema checks come before the torch-importing ones. Every key
    problem of the file and the overrides is reported at once. ``check_paths`` (a training about to start): the
    folders and files it names must exist, checked before anything heavy too."""
    options, source = read_options(path, overrides)
    if check_paths:
        raise_option_problems(path_problems(options, source))
    _check_call_blocks(options, source)
    _warn_about_labels(options, str(path))
    return options


def load_inference_options(path: str | Path, overrides: Sequence[str] = ()) -> InferenceOptions:
    """What `eval`, `infer` and `export` take from an option file, its ``network_g`` checked against its arch."""
    from sr_iqa.models.generators import generator_block

    options = read_inference_options(path, overrides)
    return replace(options, network_g=generator_block(options.network_g, options.scale, str(path)))


def _check_call_blocks(options: Options, source: str) -> None:
    """Check ``{type: ..., **kwargs}`` blocks against the classes they name, and try to build them (imports torch
    and basicsr, so a typo caught by ``read_options`` costs no torch import); every block's problem in one error."""
    raise_option_problems([*_generator_and_optimizer_problems(options, source), *_loss_problems(options, source),
                           *_gan_problems(options, source), *_degradation_problems(options, source)])


def _first_problem(*checks: Callable[[], object]) -> list[str]:
    """Run the checks of one block in order, up to its first problem: [that problem], or [] when all passed."""
    try:
        for check in checks:
            check()
    except OptionsError as error:
        return [str(error)]
    return []


def _generator_and_optimizer_problems(options: Options, source: str) -> list[str]:
    from sr_iqa.config.call_options import check_call_block
    from sr_iqa.models.generators import check_generator_builds, generator_block
    from sr_iqa.optim import OPTIMIZER_TYPES, SCHEDULER_TYPES, check_optimizer_and_scheduler

    def network_g() -> None:
        options.network_g = generator_block(options.network_g, options.scale, source)

    train = options.train
    return [*_first_problem(network_g, lambda: check_generator_builds(options.network_g, options.scale, source)),
            *_first_problem(
                lambda: check_call_block(train.optim_g, OPTIMIZER_TYPES, "train.optim_g", source, supplied=("params",)),
                lambda: train.scheduler is None or check_call_block(train.scheduler, SCHEDULER_TYPES,
                                                                    "train.scheduler", source, supplied=("optimizer",)),
                lambda: check_optimizer_and_scheduler(train.optim_g, train.scheduler, "train.optim_g", source))]


def _loss_problems(options: Options, source: str) -> list[str]:
    """The cheap losses are made once (an unknown `reduction` is refused by the constructor); the perceptual loss
    loads a backbone, so only its keys are checked."""
    from sr_iqa.config.call_options import build_from_block, check_call_block, trial_build
    from sr_iqa.losses import NEGATIVE_LOSS_TYPES, PERCEPTUAL_LOSS_TYPES, PIXEL_LOSS_TYPES, RANK_LOSS_TYPES

    train, problems = options.train, []
    for key, block, types, build in (("train.pixel_opt", train.pixel_opt, PIXEL_LOSS_TYPES, True),
                                     ("train.perceptual_opt", train.perceptual_opt, PERCEPTUAL_LOSS_TYPES, False),
                                     ("train.neg_opt", train.neg_opt, NEGATIVE_LOSS_TYPES, True),
                                     ("train.rank_opt", train.rank_opt, RANK_LOSS_TYPES, True)):
        if block is None:
            continue
        checks = [lambda key=key, block=block, types=types: check_call_block(block, types, key, source)]
        if build:
            checks.append(lambda key=key, block=block, types=types: trial_build(
                key, source, lambda: build_from_block(block, types)))
        problems += _first_problem(*checks)
    return problems


def _gan_problems(options: Options, source: str) -> list[str]:
    """network_d, train.optim_d and train.gan_opt come together, each checked and the discriminator built."""
    from sr_iqa.config.call_options import build_from_block, check_call_block, trial_build
    from sr_iqa.losses import GAN_LOSS_TYPES
    from sr_iqa.models.discriminators import DISCRIMINATOR_TYPES, check_discriminator_builds
    from sr_iqa.optim import OPTIMIZER_TYPES, check_optimizer_and_scheduler

    train = options.train
    gan_parts = {"network_d": options.network_d, "train.optim_d": train.optim_d, "train.gan_opt": train.gan_opt}
    if all(block is None for block in gan_parts.values()):
        return []
    absent = [key for key, block in gan_parts.items() if block is None]
    if absent:
        return [f"{source}: GAN training needs {', '.join(repr(k) for k in gan_parts)} together; "
                f"missing {', '.join(repr(k) for k in absent)}"]
    return [*_first_problem(lambda: check_call_block(options.network_d, DISCRIMINATOR_TYPES, "network_d", source),
                            lambda: check_discriminator_builds(options.network_d, options.datasets.train.gt_size,
                                                               source)),
            *_first_problem(lambda: check_call_block(train.optim_d, OPTIMIZER_TYPES, "train.optim_d", source,
                                                     supplied=("params",)),
                            lambda: check_optimizer_and_scheduler(train.optim_d, None, "train.optim_d", source)),
            *_first_problem(lambda: check_call_block(train.gan_opt, GAN_LOSS_TYPES, "train.gan_opt", source),
                            lambda: trial_build("train.gan_opt", source,
                                                lambda: build_from_block(train.gan_opt, GAN_LOSS_TYPES)))]


def _degradation_problems(options: Options, source: str) -> list[str]:
    """The degradation's block, and whether its kernels and resizes fit the training crop."""
    from sr_iqa.config.call_options import build_from_block, check_call_block
    from sr_iqa.data.degradations import DEGRADATION_TYPES

    def degradation_fits() -> None:
        try:
            smallest = build_from_block(options.degradation, DEGRADATION_TYPES).smallest_gt_size(options.scale)
        except ValueError as error:
            raise OptionsError(f"{source}: 'degradation': {error}") from None
        if options.datasets.train.gt_size < smallest:
            raise OptionsError(f"{source}: 'datasets.train.gt_size' is {options.datasets.train.gt_size}, but the "
                               f"'{options.degradation['type']}' degradation needs at least {smallest} at scale "
                               f"{options.scale} (its blur kernels and resizes must fit the crop)")

    return _first_problem(lambda: check_call_block(options.degradation, DEGRADATION_TYPES, "degradation", source),
                          degradation_fits)


def _warn_about_labels(options: Options, source: str) -> None:
    """Labels that decide nothing, or a label filter with a sampler that ignores labels: legal (an ablation may
    want it), but never silent (HGGT's Pos files, converted by hand, once trained on the originals this way).
    With rand, sma and amo, labels still feed the sampling statistics and sampler.exclude_labels."""
    train, sampler = options.datasets.train, options.sampler.type
    if sampler in (SamplerType.upos, SamplerType.smp):
        return
    uses = {SamplerType.original: "supervises every sample with the original GT",
            SamplerType.rand: "draws among all GTs uniformly", SamplerType.sma: "draws by score among all GTs",
            SamplerType.amo: "takes the best-scoring GT, whatever its label"}[sampler]
    filters = [name for name in ("positive_only", "effective_only") if getattr(train, name)]
    if filters:
        log.warning("%s: datasets.train.%s filters groups by their labels, but sampler '%s' %s; for HGGT's "
                    "Positive-GT training set sampler.type: upos (or smp with scores)", source, filters[0],
                    sampler.value, uses)
    elif sampler is SamplerType.original and train.dataroot_label is not None and options.train.neg_opt is None:
        log.warning("%s: labels are loaded (datasets.train.dataroot_label), but sampler 'original' %s and no "
                    "neg_opt uses them; set sampler.type: upos for HGGT's Positive-GT training, or leave out "
                    "dataroot_label", source, uses)
