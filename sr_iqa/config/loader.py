"""YAML option file + ``key.sub=value`` overrides -> typed ``Options``, strictly.

Every problem becomes one ``OptionsError`` naming the file, the full dotted key and what
to do; the checks that need no torch import run first so a typo fails within a second.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import io
import logging
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException, ValidationError

from sr_iqa.config.basicsr_keys import translate
from sr_iqa.config.schema import (
    CALL_BLOCKS,
    IqaOptions,
    Options,
    ValDatasetOptions,
)
from sr_iqa.config.suggest import did_you_mean
from sr_iqa.config.value_checks import value_problems
from sr_iqa.errors import OptionsError

log = logging.getLogger("sr_iqa.config")


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
        elif typing.get_origin(annotation) in (dict, list) and value is not None:
            problems += _container_problems(value, annotation, dotted, source)
        elif annotation is int and isinstance(value, float) and value.is_integer():
            node[key] = int(value)
        elif isinstance(annotation, type) and issubclass(annotation, Enum) and value is not None \
                and value is not False and str(value) not in [member.value for member in annotation]:
            choices = [member.value for member in annotation]  # (a bare YAML `no` is False: mixed_precision's "no")
            close = difflib.get_close_matches(str(value), choices, n=1)
            problems.append(f"{source}: '{dotted}' is '{value}', not one of {', '.join(choices)}"
                            + (f"; did you mean '{close[0]}'?" if close else ""))
    return problems


def _container_problems(value: Any, annotation: Any, dotted: str, source: str) -> list[str]:
    """A mapping or list where the schema has one, with numbers or names inside where it wants them (OmegaConf's
    own refusal names no key)."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    expected, kind = (DictConfig, "a mapping of names to values") if origin is dict else (ListConfig, "a list")
    if not isinstance(value, expected):
        return [f"{source}: '{dotted}' expects {kind}, got {value!r}"]
    items = value.items() if origin is dict else enumerate(value)
    item_type = arguments[-1] if arguments else Any
    if item_type in (int, float, str):
        return [f"{source}: '{dotted}.{key}' expects a {item_type.__name__}, got {item!r}"
                for key, item in items if isinstance(item, DictConfig | ListConfig)]
    return []


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


MAX_OPTION_FILE_BYTES = 4 << 20  # HGGT's largest option file is 5 KiB; a FIFO or /dev/zero never ends


def read_yaml(path: Path) -> DictConfig:
    """An option file as OmegaConf reads it (aliases expanded up to its node limit), or one ``OptionsError``
    saying what is wrong with it: not a plain file, too large, not UTF-8, a YAML tag or number it cannot hold."""
    if not path.is_file():
        raise OptionsError(f"no option file at {path}")
    with open(path, "rb") as handle:  # a FIFO is not is_file(); a link to /dev/zero is read up to the cap alone
        data = handle.read(MAX_OPTION_FILE_BYTES + 1)
    if len(data) > MAX_OPTION_FILE_BYTES:
        raise OptionsError(f"{path}: larger than {MAX_OPTION_FILE_BYTES >> 20} MiB; not an option file")
    try:
        config = OmegaConf.load(io.StringIO(data.decode("utf-8")))
    except UnicodeDecodeError:
        raise OptionsError(f"{path}: not UTF-8 text (saved as UTF-16?); save it as UTF-8") from None
    except yaml.YAMLError as error:  # also an alias bomb, past OmegaConf's expansion limit
        raise OptionsError(f"{path}: not valid YAML: {' '.join(str(error).split())[:300]}") from None
    except (OmegaConfBaseException, ValueError, RecursionError) as error:  # !!set, a 5000-digit number
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OptionsError(f"{path}: holds a value an option file cannot: {reason}") from None
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
    raise_option_problems(value_problems(options, source))
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
