"""BasicSR and HGGT option files, read as they are: keys that mean the same here are moved to sr_iqa's place
(with HGGT's units), keys that mean nothing here are dropped with one warning line, HGGT's dataset types
become the sr_iqa settings that do what they did, and what cannot be honoured is a problem to report.

This runs on the raw YAML before the strict schema check, and knows only key names: the facts of BasicSR's,
Real-ESRGAN's and HGGT's option files (``PosNegGTSR/options/train/PosNegGTSR/*.yml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sr_iqa.basicsr_metric_names import METRIC_KINDS, basicsr_metric_name

# Keys of a BasicSR/HGGT run that have no meaning here, and the values they may have (None: any value).
# A value outside the set would change what the run does, so it is a problem instead.
IGNORED_TOP_LEVEL = {
    # BasicSR's model class; sr_iqa has one trainer, driven by the dataset type and losses (HGGT's model types
    # are checked first: HGGT_MODEL_TYPES)
    "model_type": None,
    "num_gpu": None,  # `accelerate launch` decides the processes
    "dist_params": None,
    "dist": None,
    "rank": None,
    "world_size": None,
    "is_train": None,
    "auto_resume": None,
    "pre_pad": None,  # HGGT's tiled validation: sr_iqa validates whole images (`sr-iqa eval --tile` for big ones)
    "tile_size": None,
    "tile_pad": None,
    "tile_process": None,
}
IGNORED_IN_DATASETS = {
    "dataset_enlarge_ratio": None,  # sr_iqa's sample order never ends: an epoch repeated changes nothing
    "prefetch_mode": {None, "cpu", "cuda"},  # sr_iqa's own: datasets.train.prefetch_to_device
    "pin_memory": None,
    "phase": None,
    "io_backend": {"disk"},  # only {type: disk}; lmdb is not read
    "filename_tmpl": {"{}"},  # paired sets: the LQ file has the GT's name
    "meta_info": None,
}
IGNORED_ELSEWHERE = {
    "val.pbar": None,
    "val.suffix": None,
    "path.strict_load_d": {True},
    "path.param_key_d": {"params"},
}
# Where HGGT and Real-ESRGAN keep their degradation keys: the model's (top level) and the dataset's.
DEGRADATION_TOP_LEVEL = ("resize_prob", "resize_range", "gaussian_noise_prob", "noise_range", "poisson_scale_range",
                         "gray_noise_prob", "jpeg_range", "second_blur_prob", "resize_prob2", "resize_range2",
                         "gaussian_noise_prob2", "noise_range2", "poisson_scale_range2", "gray_noise_prob2",
                         "jpeg_range2")
DEGRADATION_IN_TRAIN_SET = ("blur_kernel_size_min", "blur_kernel_size_max", "kernel_list", "kernel_prob", "sinc_prob",
                            "blur_sigma", "betag_range", "betap_range", "kernel_list2", "kernel_prob2", "sinc_prob2",
                            "blur_sigma2", "betag_range2", "betap_range2", "final_sinc_prob",
                            "blur_kernel_size_min2", "blur_kernel_size_max2")
SECOND_STAGE = {key for key in (*DEGRADATION_TOP_LEVEL, *DEGRADATION_IN_TRAIN_SET)
                if key.endswith("2") or key in ("second_blur_prob", "final_sinc_prob")}
# Real-ESRGAN pads every kernel to 21 (sizes 7..21); sr_iqa pads to the largest size itself.
REALESRGAN_PAD_KEYS = ("blur_kernel_size", "blur_kernel_size2")
RENAMED_IN_DATASETS = {"dataroot_all_gt": "dataroot_gt", "dataroot_all_json": "dataroot_label"}
# HGGT's training datasets and what they do, in sr_iqa's terms.
HGGT_TRAIN_TYPES = {
    "PosNegGTPosDataset": ({"positive_only": True}, "upos",
                           "groups with an effective Positive, the GT drawn uniformly among the Positives"),
    "PosNegGTPosNeg_Dataset": ({"effective_only": True}, "upos",
                               "groups with an effective Positive or Negative, the GT drawn among the Positives, "
                               "a Negative pushed away by neg_opt"),
    "PosNegGTOriDataset": ({}, "original", "every group, supervised by its original GT"),
    "TwoStageDegradation_PosNegGTPos_Dataset": ({"positive_only": True}, "upos",
                                                "groups with an effective Positive, the GT drawn uniformly among the "
                                                "Positives, Real-ESRGAN's two degradation stages"),
    "OneStageDegradation_DF2K_Dataset": ({}, "original", "a folder of single GTs (DF2K_OST), each its own group"),
    "TwoStageDegradation_DF2K_Dataset": ({}, "original", "a folder of single GTs (DF2K_OST), each its own group, "
                                                         "Real-ESRGAN's two degradation stages"),
}
# HGGT's model types (PosNegGTSR/basicsr/models) and what each does that sr_iqa does not; the ones not named here
# (Ours_Model, Ours_PosGT_Model, Ours_PosNegGT_Model, RealESRGAN_PosGT_Model) train as sr_iqa's one trainer does,
# their dataset types and losses deciding. Checked in HGGT's code: these read USM-sharpened GTs (gt_usm, or always),
# an artifact-map loss or a localisation network.
HGGT_MODEL_TYPES_MISSING = {
    "LDL_Model": "LDL's artifact-map loss (ldl_opt) and losses against the USM-sharpened GT",
    "LDL_PosGT_Model": "LDL's artifact-map loss (ldl_opt)",
    "LDL_noGAN_Model": "the USM-sharpened GT (gt_usm) as the target",
    "AdaTarget_Model": "AdaTarget's localisation network (network_loc) and its adaptive target",
    "AdaTarget_PosGT_Model": "AdaTarget's localisation network (network_loc) and its adaptive target",
    "RealESRGAN_Model": "Real-ESRGAN's USM-sharpened GT as the target of the L1, perceptual and GAN losses",
    "RealESRNet_Model": "the USM-sharpened GT (gt_usm) as the target",
}
# Generators of HGGT's baselines that sr_iqa does not build (their test files name them).
FOREIGN_GENERATORS = {"RRDBAdaNet": "AdaTarget's generator (HGGT's basicsr/archs/adatargetnet_arch.py)"}
# Keys HGGT's Ours_* models never read (they read Use_sharpen, which HGGT's files do not set): no meaning there.
UNREAD_BY_OURS_MODELS = ("gt_usm", "l1_gt_usm", "percep_gt_usm", "gan_gt_usm")
HGGT_MODEL_KEYS = (*UNREAD_BY_OURS_MODELS, "network_loc", "path_loc")  # top-level keys of HGGT's model classes
# Keys only a refused model reads (HGGT's AdaTarget files: its kernel sizes, load modes, the localisation network's
# optimizer and loss; LDL's artifact-map loss): dropped with the refusal, not guessed at as typos.
REFUSED_MODEL_KEYS = ("k_size", "s_size", "load_mode_g", "load_mode_loc")
REFUSED_MODEL_TRAIN_KEYS = ("optim_loc", "adatarget_opt", "ldl_opt")
PAIRED_TYPE = "PairedImageDataset"


@dataclass
class Translation:
    """The rewritten options and what the rewrite did: ``mapped`` and ``ignored`` become log lines, ``problems``
    errors (reported together with the schema's)."""

    config: DictConfig
    mapped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, DictConfig) or OmegaConf.is_list(value) else value


def _drop_ignored(node: DictConfig, prefix: str, allowed: dict[str, set | None], result: Translation) -> None:
    for key, values in allowed.items():
        if key not in node:
            continue
        value = _plain(node[key])
        checked = value.get("type") if isinstance(value, dict) and key == "io_backend" else value
        if values is not None and checked not in values:
            result.problems.append(f"'{prefix}{key}: {value!r}' cannot be honoured here (sr_iqa supports only "
                                   f"{', '.join(repr(v) for v in sorted(values, key=str))}); remove the key")
        else:
            result.ignored.append(f"{prefix}{key}")
        node.pop(key)


def _move(source: DictConfig, key: str, target_parent: DictConfig, target_key: str, source_name: str,
          target_name: str, result: Translation) -> None:
    value = source.pop(key)
    if target_key in target_parent and _plain(target_parent[target_key]) != _plain(value):
        result.problems.append(f"'{source_name}' ({_plain(value)!r}) and '{target_name}' "
                               f"({_plain(target_parent[target_key])!r}) disagree; keep one of them")
        return
    target_parent[target_key] = value
    result.mapped.append(f"{source_name} -> {target_name}")


def _degradation_keys(config: DictConfig, result: Translation) -> None:
    train = OmegaConf.select(config, "datasets.train")
    found = [("", key) for key in DEGRADATION_TOP_LEVEL if key in config]
    if isinstance(train, DictConfig):
        found += [("datasets.train.", key) for key in DEGRADATION_IN_TRAIN_SET if key in train]
        for key in REALESRGAN_PAD_KEYS:
            if key in train:
                train.pop(key)
                result.ignored.append(f"datasets.train.{key} (every kernel is padded to the largest size)")
    if not found:
        return
    if "degradation" not in config or config.degradation is None:
        config.degradation = {"type": "realesrgan" if any(key in SECOND_STAGE for _, key in found) else "hggt"}
    moved = Translation(config)
    for prefix, key in found:
        _move(train if prefix else config, key, config.degradation, key, f"{prefix}{key}", f"degradation.{key}",
              moved)
    result.problems += moved.problems
    result.mapped.append(f"{len(found)} degradation keys (top level and datasets.train: "
                         f"{', '.join(key for _, key in found)}) -> degradation (type {config.degradation.type})")


def _dataset_types(config: DictConfig, result: Translation) -> None:
    datasets = OmegaConf.select(config, "datasets")
    if not isinstance(datasets, DictConfig):
        return
    train = datasets.get("train")
    if isinstance(train, DictConfig) and train.get("type") in HGGT_TRAIN_TYPES:
        type_name = train.type
        settings, sampler, meaning = HGGT_TRAIN_TYPES[type_name]
        train.type = "hggt"
        for key, value in settings.items():
            train[key] = value
        if type_name == "PosNegGTOriDataset" and "dataroot_label" in train:  # HGGT lists the groups from them
            train.pop("dataroot_label")
        given_sampler = OmegaConf.select(config, "sampler.type")
        if given_sampler is None:
            config.sampler = {**(_plain(config.get("sampler")) or {}), "type": sampler}
        described = ", ".join(f"{k}: {str(v).lower()}" for k, v in settings.items())
        result.mapped.append(f"datasets.train.type {type_name} ({meaning}) -> type: hggt"
                             + (f", {described}" if described else "")
                             + (f", sampler.type: {sampler}" if given_sampler is None else
                                f"; sampler.type {given_sampler} as given (HGGT's is {sampler})"))
    elif isinstance(train, DictConfig) and train.get("type") == PAIRED_TYPE:
        result.problems.append(f"'datasets.train.type: {PAIRED_TYPE}': sr_iqa synthesises the training LR from "
                               "the original GT; point dataroot_gt at the GT folder and remove dataroot_lq and type")
    for split in [key for key in datasets if str(key).startswith(("val", "test"))]:  # val, val_2, test_1, ...
        node = datasets[split]
        if isinstance(node, DictConfig) and node.get("type") == PAIRED_TYPE:
            node.type = "hggt"  # a flat GT folder with its LQ folder is a paired set of single-GT groups
            result.mapped.append(f"datasets.{split}.type {PAIRED_TYPE} -> type: hggt (a flat GT folder, LR from "
                                 "dataroot_lq)")


def _negative_loss(config: DictConfig, result: Translation) -> None:
    """HGGT writes its negative-GT term as ``neg_opt: {type: L1Loss, loss_weight: 300, reduction: mean}``."""
    block = OmegaConf.select(config, "train.neg_opt")
    if not isinstance(block, DictConfig) or block.get("type") != "L1Loss":
        return
    if block.get("reduction", "mean") != "mean":
        result.problems.append(f"'train.neg_opt.reduction: {block.reduction}': HGGT's negative-GT term averages "
                               "(mean); remove the key")
        return
    config.train.neg_opt = {"type": "NegativeGTLoss", "loss_weight": block.get("loss_weight", 1.0)}
    result.mapped.append(f"train.neg_opt {{type: L1Loss, loss_weight: {block.get('loss_weight', 1.0)}}} -> "
                         f"{{type: NegativeGTLoss, loss_weight: {block.get('loss_weight', 1.0)}}} (HGGT's term)")


def _validation_metrics(config: DictConfig, result: Translation) -> None:
    """BasicSR's ``val.metrics: {psnr: {type: calculate_psnr, crop_border: 4, test_y_channel: false}, ...}``."""
    metrics = OmegaConf.select(config, "val.metrics")
    if not isinstance(metrics, DictConfig):
        return
    names = []
    for label, spec in metrics.items():
        spec = _plain(spec) or {}
        kind = METRIC_KINDS.get(spec.get("type"))
        crop, y_channel = spec.get("crop_border", 0), spec.get("test_y_channel", False)
        if kind is None or isinstance(crop, bool) or not isinstance(crop, int) or crop < 0 \
                or not isinstance(y_channel, bool) or set(spec) - {"type", "crop_border", "test_y_channel"}:
            result.problems.append(f"'val.metrics.{label}': {spec} has no sr_iqa counterpart (BasicSR's "
                                   f"{' and '.join(METRIC_KINDS)} with crop_border and test_y_channel are read); "
                                   "list pyiqa metric names instead")
            continue
        names.append(basicsr_metric_name(kind, crop, y_channel))
    config.val.metrics = names
    result.mapped.append(f"val.metrics (BasicSR's {', '.join(str(k) for k in metrics)}) -> {names}")


def _extra_validation_sets(config: DictConfig, result: Translation) -> None:
    """BasicSR validates every ``datasets.val*`` block (``val``, ``val_2``, ``val_set14``, ...); sr_iqa keeps
    ``datasets.val`` and the others in ``datasets.extra_val`` under their keys (without a ``val``, the first of
    them is the main set: train/validation.py)."""
    datasets = OmegaConf.select(config, "datasets")
    if not isinstance(datasets, DictConfig):
        return
    keys = [key for key in datasets if str(key).startswith("val") and key != "val"]
    if not keys:
        return
    extra = _plain(datasets.get("extra_val")) or {}
    for key in keys:
        if key in extra:
            result.problems.append(f"'datasets.{key}' and 'datasets.extra_val.{key}' are both given; keep one")
            continue
        extra[key] = _plain(datasets.pop(key))
    if extra:
        datasets.extra_val = extra
        result.mapped.append(f"datasets.{', datasets.'.join(keys)} -> datasets.extra_val (validated too)")


def _hggt_model_type(config: DictConfig, result: Translation) -> None:
    """HGGT's model types that need what sr_iqa lacks are refused (their own keys dropped, so that no further line
    guesses at them); the sharpening keys HGGT's Ours_* models never read are ignored, saying so; their
    ``pixel_opt_o`` is the pixel loss against the supervising GT, sr_iqa's ``pixel_opt``."""
    model_type = config.get("model_type")
    missing = HGGT_MODEL_TYPES_MISSING.get(model_type)
    own_keys = [key for key in HGGT_MODEL_KEYS if key in config]
    if missing is not None:
        result.problems.append(f"'model_type: {model_type}' is HGGT's {model_type}, which needs {missing}; sr_iqa "
                               "has none of it and would train something else: use HGGT's code for this baseline")
        for key in [*own_keys, *(key for key in REFUSED_MODEL_KEYS if key in config)]:
            config.pop(key)
        train = config.get("train")
        for key in (key for key in REFUSED_MODEL_TRAIN_KEYS if isinstance(train, DictConfig) and key in train):
            train.pop(key)
        return
    for key in own_keys:
        if key in UNREAD_BY_OURS_MODELS:
            config.pop(key)
            result.ignored.append(f"{key} (HGGT's {model_type or 'model'} does not read it)")
    train = config.get("train")
    if isinstance(train, DictConfig) and "pixel_opt_o" in train:
        _move(train, "pixel_opt_o", train, "pixel_opt", "train.pixel_opt_o", "train.pixel_opt", result)


def translate(config: DictConfig, training: bool = True) -> Translation:
    """Rewrite BasicSR/HGGT keys in place of a copy; see the module docstring. ``training``: a file to train (HGGT's
    model types matter); otherwise one whose network and test sets ``eval`` / ``infer`` read."""
    result = Translation(OmegaConf.create(OmegaConf.to_container(config)))
    config = result.config
    generator = OmegaConf.select(config, "network_g.type")
    if generator in FOREIGN_GENERATORS:
        result.problems.append(f"'network_g.type: {generator}' is {FOREIGN_GENERATORS[generator]}, which sr_iqa does "
                               "not build; evaluate the SR images it saved with `sr-iqa eval --sr-dir`")
    if training:
        _hggt_model_type(config, result)
        if "model_type" in config and OmegaConf.select(config, "train.mixed_precision") is None:
            result.mapped.append("model_type (BasicSR and HGGT train in fp32) -> train.mixed_precision: auto, bf16 "
                                 "autocast and TF32 on Ampere-or-newer GPUs; set train.mixed_precision: no and "
                                 "train.tf32: false for their arithmetic")
    else:
        for key in HGGT_MODEL_KEYS:  # training's keys: no meaning here
            config.pop(key, None)
    _drop_ignored(config, "", IGNORED_TOP_LEVEL, result)
    for dotted, values in IGNORED_ELSEWHERE.items():
        parent_key, _, key = dotted.rpartition(".")
        parent = OmegaConf.select(config, parent_key)
        if isinstance(parent, DictConfig):
            _drop_ignored(parent, f"{parent_key}.", {key: values}, result)
    datasets = OmegaConf.select(config, "datasets")
    for split in list(datasets.keys()) if isinstance(datasets, DictConfig) else []:  # train, val, BasicSR's test_*
        node = datasets[split]
        if not isinstance(node, DictConfig):
            continue
        _drop_ignored(node, f"datasets.{split}.", IGNORED_IN_DATASETS, result)
        for old, new in RENAMED_IN_DATASETS.items():
            if old in node:
                _move(node, old, node, new, f"datasets.{split}.{old}", f"datasets.{split}.{new}", result)
    train = OmegaConf.select(config, "datasets.train")
    for key in ("gt_size", "queue_size"):
        if key in config:
            if not isinstance(train, DictConfig):
                config.datasets = {**(_plain(config.get("datasets")) or {}), "train": {}}
                train = config.datasets.train
            _move(config, key, train, key, key, f"datasets.train.{key}", result)
    _degradation_keys(config, result)
    _dataset_types(config, result)  # before val_2, val_set14, ... move to extra_val: each is mapped as val is
    _extra_validation_sets(config, result)
    _negative_loss(config, result)
    _validation_metrics(config, result)
    return result
